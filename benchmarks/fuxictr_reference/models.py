"""FuxiCTR 2.3.10 reference models: DeepFM, DCN, PNN (inner product) and FiBiNET.

The fuxictr wheel ships the library (layers, ``BaseModel``, data loaders) but not its
``model_zoo``. These classes rebuild the four model_zoo architectures from FuxiCTR's own layers
and ``BaseModel``, with the same layers, wiring, initialisation (``BaseModel.reset_parameters``)
and training loop (``BaseModel.fit``), so the comparison in ``benchmarks/bench_models.py`` measures
FuxiCTR as its users run it. Runs only inside the FuxiCTR virtual environment (see
``benchmarks/README.md``).
"""

from __future__ import annotations

from typing import Any

import torch
from fuxictr.features import FeatureMap
from fuxictr.pytorch.layers import (
    BilinearInteractionV2,
    CrossNet,
    FactorizationMachine,
    FeatureEmbedding,
    InnerProductInteraction,
    LogisticRegression,
    MLP_Block,
    SqueezeExcitation,
)
from fuxictr.pytorch.models import BaseModel
from torch import nn


class _ReferenceModel(BaseModel):
    """``BaseModel`` plus the three calls every model_zoo constructor ends with."""

    def _finish(self, learning_rate: float, kwargs: dict[str, Any]) -> None:
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()

    def _mlp(self, input_dim: int, hidden_units: list[int], output_dim: int | None,
             output_activation: nn.Module | None = None) -> MLP_Block:
        return MLP_Block(input_dim=input_dim, output_dim=output_dim, hidden_units=hidden_units,
                         hidden_activations="ReLU", output_activation=output_activation,
                         dropout_rates=0, batch_norm=False)


class DeepFM(_ReferenceModel):
    """FM (first order + pairwise, with bias) plus an MLP on the flattened embeddings."""

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, hidden_units: list[int],
                 learning_rate: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(feature_map, model_id="DeepFM", **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.fm = FactorizationMachine(feature_map)
        self.mlp = self._mlp(feature_map.sum_emb_out_dim(), hidden_units, output_dim=1)
        self._finish(learning_rate, kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X)
        logit = self.fm(X, emb) + self.mlp(emb.flatten(start_dim=1))
        return {"y_pred": self.output_activation(logit)}


class DCN(_ReferenceModel):
    """Cross network and MLP in parallel on the flattened embeddings, one linear readout."""

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, hidden_units: list[int],
                 num_cross_layers: int = 3, learning_rate: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(feature_map, model_id="DCN", **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        input_dim = feature_map.sum_emb_out_dim()
        self.dnn = self._mlp(input_dim, hidden_units, output_dim=None)
        self.crossnet = CrossNet(input_dim, num_cross_layers)
        self.fc = nn.Linear(input_dim + hidden_units[-1], 1)
        self._finish(learning_rate, kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X, flatten_emb=True)
        logit = self.fc(torch.cat([self.crossnet(emb), self.dnn(emb)], dim=-1))
        return {"y_pred": self.output_activation(logit)}


class PNN(_ReferenceModel):
    """Inner-product PNN: MLP over [flattened embeddings, all pairwise inner products]."""

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, hidden_units: list[int],
                 learning_rate: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(feature_map, model_id="PNN", **kwargs)
        num_fields = feature_map.num_fields
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.inner_product_layer = InnerProductInteraction(num_fields, output="inner_product")
        input_dim = num_fields * (num_fields - 1) // 2 + num_fields * embedding_dim
        self.dnn = self._mlp(input_dim, hidden_units, output_dim=1,
                             output_activation=self.output_activation)
        self._finish(learning_rate, kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X)
        products = self.inner_product_layer(emb)
        return {"y_pred": self.dnn(torch.cat([emb.flatten(start_dim=1), products], dim=1))}


class FiBiNET(_ReferenceModel):
    """SENET re-weighting, bilinear interactions of raw and re-weighted embeddings, MLP, plus a
    bias-free first-order term."""

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, hidden_units: list[int],
                 reduction_ratio: int = 3, bilinear_type: str = "field_interaction",
                 learning_rate: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(feature_map, model_id="FiBiNET", **kwargs)
        num_fields = feature_map.num_fields
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.senet_layer = SqueezeExcitation(num_fields, reduction_ratio, "ReLU")
        self.bilinear_interaction1 = BilinearInteractionV2(num_fields, embedding_dim, bilinear_type)
        self.bilinear_interaction2 = BilinearInteractionV2(num_fields, embedding_dim, bilinear_type)
        self.lr_layer = LogisticRegression(feature_map, use_bias=False)
        input_dim = num_fields * (num_fields - 1) * embedding_dim
        self.dnn = self._mlp(input_dim, hidden_units, output_dim=1)
        self._finish(learning_rate, kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X)
        p = self.bilinear_interaction1(emb)
        q = self.bilinear_interaction2(self.senet_layer(emb))
        logit = self.lr_layer(X) + self.dnn(torch.flatten(torch.cat([p, q], dim=1), start_dim=1))
        return {"y_pred": self.output_activation(logit)}


MODELS: dict[str, type[_ReferenceModel]] = {
    "deepfm": DeepFM, "dcn": DCN, "pnn": PNN, "fibinet": FiBiNET,
}

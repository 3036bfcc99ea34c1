"""FuxiCTR 2.3.10 reference models: DeepFM, DCN, PNN (inner product), FiBiNET, DIN and DIEN.

The fuxictr wheel ships the library (layers, ``BaseModel``, data loaders) but not its
``model_zoo``. These classes rebuild the model_zoo architectures from FuxiCTR's own layers
and ``BaseModel``, with the same layers, wiring, initialisation (``BaseModel.reset_parameters``)
and training loop (``BaseModel.fit``), so the comparisons in ``benchmarks/bench_models.py`` and
``benchmarks/bench_sequence_models.py`` measure FuxiCTR as its users run it. DIEN's GRU with
attentional update gate and its packed-sequence loop live in model_zoo/DIEN itself, not in the
library; :class:`DynamicAUGRU` rebuilds them. Runs only inside the FuxiCTR virtual environment
(see ``benchmarks/README.md``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from fuxictr.features import FeatureMap
from fuxictr.pytorch.layers import (
    BilinearInteractionV2,
    CrossNet,
    DIN_Attention,
    FactorizationMachine,
    FeatureEmbedding,
    FeatureEmbeddingDict,
    InnerProductInteraction,
    LogisticRegression,
    MLP_Block,
    SqueezeExcitation,
)
from fuxictr.pytorch.models import BaseModel
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


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


def behaviour_pairs(feature_map: FeatureMap) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The target fields and the sequence fields sharing their embeddings, as the tuples that
    model_zoo DIN's ``din_target_field``/``din_sequence_field`` (and DIEN's) take."""
    features = feature_map.features
    pairs = [(spec["share_embedding"], name) for name, spec in features.items()
             if spec["type"] == "sequence"
             and features.get(spec.get("share_embedding", ""), {}).get("type") == "categorical"]
    return tuple(t for t, _ in pairs), tuple(s for _, s in pairs)


def _concat(fields: tuple[str, ...], emb: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([emb[f] for f in fields], dim=-1)


class DIN(_ReferenceModel):
    """model_zoo DIN with one tuple of targets and one of sequences: ``DIN_Attention`` over the
    concatenated histories replaces their embeddings, then an MLP over all fields."""

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, hidden_units: list[int],
                 attention_units: list[int], learning_rate: float = 1e-3,
                 **kwargs: Any) -> None:
        super().__init__(feature_map, model_id="DIN", **kwargs)
        self.targets, self.sequences = behaviour_pairs(feature_map)
        self.embedding_dim = embedding_dim
        self.embedding_layer = FeatureEmbeddingDict(feature_map, embedding_dim)
        self.attention = DIN_Attention(embedding_dim * len(self.targets),
                                       attention_units=attention_units,
                                       hidden_activations="Dice", use_softmax=False)
        self.dnn = self._mlp(feature_map.sum_emb_out_dim(), hidden_units, output_dim=1,
                             output_activation=self.output_activation)
        self._finish(learning_rate, kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X)
        mask = X[self.sequences[0]].long() != 0
        pooled = self.attention(_concat(self.targets, emb), _concat(self.sequences, emb), mask)
        for field, part in zip(self.sequences, pooled.split(self.embedding_dim, dim=-1),
                               strict=True):
            emb[field] = part
        return {"y_pred": self.dnn(self.embedding_layer.dict2tensor(emb, flatten_emb=True))}


class DynamicAUGRU(nn.Module):
    """model_zoo DIEN's ``DynamicGRU`` with its ``AUGRUCell``: over a ``PackedSequence``, one
    cell step per time step on the rows still running; ``h = h + a u (n - h)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.x2h = nn.Linear(dim, 3 * dim)
        self.h2h = nn.Linear(dim, 3 * dim)
        self.dim = dim

    def cell(self, x: torch.Tensor, h: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        x_u, x_r, x_n = self.x2h(x).chunk(3, 1)
        h_u, h_r, h_n = self.h2h(h).chunk(3, 1)
        update = torch.sigmoid(x_u + h_u) * attention.unsqueeze(-1)
        reset = torch.sigmoid(x_r + h_r)
        return h + update * (torch.tanh(x_n + reset * h_n) - h)

    def forward(self, packed: PackedSequence, scores: PackedSequence) -> torch.Tensor:
        x, batch_sizes, _, unsorted = packed
        h = x.new_zeros(int(batch_sizes[0]), self.dim)
        final = x.new_zeros(int(batch_sizes[0]), self.dim)
        start = 0
        for size in batch_sizes.tolist():
            h = self.cell(x[start:start + size], h[:size], scores.data[start:start + size])
            final[:size] = h
            start += size
        return final[unsorted]


class DIEN(_ReferenceModel):
    """model_zoo DIEN (AUGRU, bilinear attention with softmax, no sum pooling): ``nn.GRU`` over
    the packed histories of the rows that have one, attention of each interest to the target,
    ``DynamicAUGRU``'s final state (zeros for an empty history), then an MLP (batch norm) over it
    and the 2-D field embeddings.

    Auxiliary loss: model_zoo DIEN reads negatives from extra data fields and its ``add_loss``
    multiplies ``2 M`` losses by ``M`` mask entries, which cannot broadcast, so it runs only with
    ``aux_loss_alpha = 0`` (its default). With ``aux_loss_alpha > 0`` this reference adds the
    loss as intended (masked mean of BCE over next behaviours and negatives, the auxiliary
    ``MLP_Block`` with sigmoid output) with mutualctr's negatives: the previous row's behaviour
    at the same position.
    """

    def __init__(self, feature_map: FeatureMap, embedding_dim: int, hidden_units: list[int],
                 aux_loss_alpha: float = 0.0, aux_hidden_units: list[int] | None = None,
                 learning_rate: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(feature_map, model_id="DIEN", **kwargs)
        self.targets, self.sequences = behaviour_pairs(feature_map)
        dim = embedding_dim * len(self.targets)
        self.embedding_layer = FeatureEmbeddingDict(feature_map, embedding_dim)
        self.extractor = nn.GRU(input_size=dim, hidden_size=dim, batch_first=True)
        self.evolution = DynamicAUGRU(dim)
        self.W_kernel = nn.Parameter(torch.eye(dim))
        self.dnn = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1,
                             hidden_units=hidden_units, hidden_activations="ReLU",
                             output_activation=self.output_activation, dropout_rates=0,
                             batch_norm=True)
        self.aux_loss_alpha = aux_loss_alpha
        if aux_loss_alpha > 0:
            self.aux_net = MLP_Block(input_dim=2 * dim, output_dim=1,
                                     hidden_units=aux_hidden_units or [100, 50],
                                     hidden_activations="ReLU", output_activation="Sigmoid")
        self._finish(learning_rate, kwargs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X)
        target, history = _concat(self.targets, emb), _concat(self.sequences, emb)
        mask = X[self.sequences[0]].long() > 0
        rows = mask.sum(dim=1) > 0
        lengths = mask[rows].sum(dim=1).cpu()
        packed = self.extractor(pack_padded_sequence(history[rows], lengths, batch_first=True,
                                                     enforce_sorted=False))[0]
        interests, _ = pad_packed_sequence(packed, batch_first=True,
                                           total_length=mask.size(1))
        scores = ((interests @ self.W_kernel) @ target[rows].unsqueeze(-1)).squeeze(-1)
        scores = scores * mask[rows] - 1.0e9 * (~mask[rows])
        packed_scores = pack_padded_sequence(scores.softmax(dim=-1), lengths, batch_first=True,
                                             enforce_sorted=False)
        evolved = history.new_zeros(history.size(0), history.size(-1))
        evolved[rows] = self.evolution(packed, packed_scores)
        flat = [evolved] + [e for e in emb.values() if e.ndim == 2]
        all_interests = history.new_zeros(history.shape)
        all_interests[rows] = interests
        return {"y_pred": self.dnn(torch.cat(flat, dim=-1)), "interests": all_interests,
                "history": history, "mask": mask}

    def add_loss(self, return_dict: dict[str, torch.Tensor], y_true: torch.Tensor
                 ) -> torch.Tensor:
        loss = self.loss_fn(return_dict["y_pred"], y_true, reduction="mean")
        if self.aux_loss_alpha <= 0:
            return loss
        interests, history, mask = (return_dict[k] for k in ("interests", "history", "mask"))
        before = interests[:, :-1]
        negatives, negative_mask = history.roll(1, dims=0), mask.roll(1, dims=0)
        positive = self.aux_net(torch.cat([before, history[:, 1:]], dim=-1))
        negative = self.aux_net(torch.cat([before, negatives[:, 1:]], dim=-1))
        terms = (F.binary_cross_entropy(positive, torch.ones_like(positive), reduction="none")
                 + F.binary_cross_entropy(negative, torch.zeros_like(negative), reduction="none"))
        valid = (mask[:, 1:] & negative_mask[:, 1:]).unsqueeze(-1).float()
        return loss + self.aux_loss_alpha * (terms * valid).sum() / valid.sum().clamp_min(1.0)


MODELS: dict[str, type[_ReferenceModel]] = {
    "deepfm": DeepFM, "dcn": DCN, "pnn": PNN, "fibinet": FiBiNET, "din": DIN, "dien": DIEN,
}

"""The multi-embedding (ME) paradigm of Guo et al., ICML 2024, "On the Embedding Collapse when
Scaling up Recommendation Models".

Scaling a model's single embedding (SE) to ``K * D`` columns tends to collapse: the table
spans a low-dimensional subspace. ME instead keeps ``K`` tables of ``D`` columns, applies an
*embedding-set-specific* interaction to each, and averages the interactions' outputs before the
shared prediction part (their Eq. 10; reference code thuml/Multi-Embedding).

Here the "interaction" of table ``k`` is the whole backbone of the base model (its
``represent``: e.g. DCNv2's cross and deep layers, FinalMLP's two streams), so
``h = mean_k represent_k(E_k(x))`` and the shared head reads ``h``. The reference code shares
the MLP layers after the first one across tables for DNN/IPNN/DCNv2; sharing the whole backbone
per table instead keeps this module generic over the model zoo (every registered model gets an
ME variant without model-specific code) at the price of more backbone parameters. Residual
("wide") logits are averaged the same way.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.models.base import CTRModel
from mutualctr.models.embedding import Embedded, FeatureEmbedding, NumericInit
from mutualctr.models.inputs import ModelInputs

ME_PREFIX = "me_"


class MultiTableEmbedding(nn.Module):
    """``K`` independent :class:`FeatureEmbedding` tables -> ``[B, F, K, D]``."""

    def __init__(self, inputs: FeatureMap | ModelInputs, dim: int, tables: int,
                 init_std: float, numeric_init: NumericInit = "normal") -> None:
        super().__init__()
        self.tables = nn.ModuleList(
            FeatureEmbedding(inputs, dim, init_std, numeric_init) for _ in range(tables)
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.embed(batch).fields

    def embed(self, batch: Batch) -> Embedded:
        """``fields`` ``[B, F, K, D]``; the ME variants' backbones read pooled fields only."""
        return Embedded(torch.stack([table(batch) for table in self.tables], dim=2))


class MultiEmbeddingModel(CTRModel):
    """Base class of the ME variants; :func:`multi_embedding_variant` makes one per model.

    The config is the base model's config plus ``num_embeddings`` (``K``); ``embedding_dim``
    is the size of each table, so ME at "Kx" has ``K`` tables of the SE model's ``D``.
    """

    base_class: ClassVar[type[CTRModel]]

    def build_embedding(self) -> nn.Module:
        c = self.config
        return MultiTableEmbedding(self.inputs, c.embedding_dim, c.num_embeddings,
                                   c.embedding_init_std, c.numeric_init)

    def build(self) -> int:
        base_config = self.base_class.config_class(
            **{
                f.name: getattr(self.config, f.name)
                for f in dataclasses.fields(self.base_class.config_class)
            }
        )
        # on the store's fields, less the same exclude_fields (base_config holds them)
        self.interactions = nn.ModuleList(
            _backbone(self.base_class(self.inputs.store, base_config))
            for _ in range(self.config.num_embeddings)
        )
        return self.interactions[0].representation_dim

    def represent(
        self, batch: Batch, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs = [
            backbone.represent(batch, emb[:, :, k])
            for k, backbone in enumerate(self.interactions)
        ]
        h = torch.stack([h for h, _ in outputs]).mean(0)
        residuals = [r for _, r in outputs if r is not None]
        residual = torch.stack(residuals).mean(0) if residuals else None
        return h, residual


def _backbone(model: CTRModel) -> CTRModel:
    """Keep only the interaction layers: the ME model owns the tables and the head."""
    del model.embedding
    del model.head
    return model


def multi_embedding_variant(base: type[CTRModel]) -> type[MultiEmbeddingModel]:
    """The ME variant of ``base``, registered as ``me_<base.name>``."""
    config_class = dataclasses.make_dataclass(
        f"MultiEmbedding{base.config_class.__name__}",
        [("num_embeddings", int, param(2, ge=1))],
        bases=(base.config_class,),
    )
    config_class.__doc__ = f"{base.config_class.__name__} plus the number of embedding tables."
    return type(
        f"MultiEmbedding{base.__name__}",
        (MultiEmbeddingModel,),
        {
            "name": f"{ME_PREFIX}{base.name}",
            "config_class": config_class,
            "base_class": base,
            "__doc__": f"{base.__name__} in the multi-embedding paradigm (Guo et al. 2024).",
            "__module__": __name__,
        },
    )



ME_BASES: tuple[str, ...] = ("dnn", "pnn", "dcnv2", "finalmlp")  # pnn = IPNN by default


def multi_embedding_variants(
    models: dict[str, type[CTRModel]],
) -> dict[str, type[MultiEmbeddingModel]]:
    """ME variants, by registry name, of the models in ``ME_BASES`` found in ``models``."""
    return {
        variant.name: variant
        for variant in (multi_embedding_variant(models[b]) for b in ME_BASES if b in models)
    }

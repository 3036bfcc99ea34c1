"""CETNet groups: N registry models with their own (or, as an ablation, one shared) embedding
table, and the objective that fuses them; the paper's ablations as named variants.

Liu et al., "A Collaborative Ensemble Framework for CTR Prediction", Table 3. The group only
needs models that emit ``h`` and a logit, so sequence models (DIN, DIEN, InterFormer, DHEN) join
by name once they are registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.registry import build_model
from mutualctr.training.group import ModelGroup
from mutualctr.training.objectives.cetnet import CETNetObjective, FusionMode
from mutualctr.training.shared_embedding import SharedEmbeddingGroup


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table: how the group is built and which loss terms it keeps."""

    label: str
    shared_embedding: bool = False
    fusion: FusionMode = "confidence"
    use_kl: bool = True
    stop_gradient: bool = True
    member_losses: bool = True


CETNET = Variant("CETNet")
ABLATIONS: tuple[Variant, ...] = (
    CETNET,
    Variant("w/o confidence fusion", fusion="concat"),
    Variant("w/o KL", use_kl=False),
    Variant("w/o multi-embedding", shared_embedding=True),
    Variant("w/o stop-gradient", stop_gradient=False),
    # The two ensemble baselines: one fused prediction over concatenated representations,
    # trained on its own BCE only, over one shared table (SE) or one table per model (ME).
    Variant("SE + concat", shared_embedding=True, fusion="concat", use_kl=False,
            member_losses=False),
    Variant("ME + concat", fusion="concat", use_kl=False, member_losses=False),
)


def member_names(models: Sequence[str]) -> list[str]:
    """``<model>_<position>`` (1-based): ``dcnv2_1, finalmlp_2``."""
    return [f"{name}_{i}" for i, name in enumerate(models, start=1)]


def build_cetnet(
    feature_map: FeatureMap,
    models: Sequence[str],
    *,
    embedding_dim: int,
    alpha: float,
    variant: Variant = CETNET,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[ModelGroup, CETNetObjective]:
    """The group of ``models`` (registry names, repeats allowed) and its CETNet objective.

    Every model gets an ``embedding_dim``-column table of its own (one shared table when the
    variant says so); ``overrides`` maps a registry name to its other hyperparameters.
    """
    if len(models) < 2:
        raise ConfigError(f"CETNet needs at least two models, got {list(models)}")
    overrides = overrides or {}
    built = [
        build_model(name, feature_map, {**overrides.get(name, {}), "embedding_dim": embedding_dim})
        for name in models
    ]
    names = member_names(models)
    group_class = SharedEmbeddingGroup if variant.shared_embedding else ModelGroup
    group = group_class(built, names)
    objective = CETNetObjective(
        names,
        [m.representation_dim for m in built],
        alpha=alpha if variant.use_kl else 0.0,
        fusion=variant.fusion,
        stop_gradient=variant.stop_gradient,
        member_losses=variant.member_losses,
    )
    return group, objective

"""CETNet (Liu et al., "A Collaborative Ensemble Framework for CTR Prediction"): N registry
models with their own (or, as an ablation, one shared) embedding table, fused by confidence;
the paper's ablations (its Table 3) as named :class:`Variant` s.

The group only needs models that emit ``h`` and a logit, so sequence models join by name once
they are registered. Its gAUCs (``gauc_impressions``, ``gauc_users``) are every run's: the
trainer's final metrics of a store with a user field (``train.user_field``,
:mod:`mutualctr.training.users`). ``metrics.json`` adds, per prediction on the test split, the
normalized entropy against the training split's positive rate; then the monitored prediction
and the trainable parameter count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mutualctr import metrics as metric_fns
from mutualctr.config import Validated, param
from mutualctr.data.schema import FeatureMap
from mutualctr.data.store import EncodedStore, training_positive_rate
from mutualctr.errors import ConfigError
from mutualctr.flags import Flag
from mutualctr.methods.base import Built, Method
from mutualctr.methods.members import (
    MemberConfig,
    build_member,
    from_scratch,
    positional_names,
)
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup
from mutualctr.training.objectives.cetnet import CETNetObjective, FusionMode
from mutualctr.training.trainer import Finalize, Metrics
from mutualctr.training.users import user_column, user_ids


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table: how the group is built and which loss terms it keeps."""

    label: str
    shared_embedding: bool = False
    fusion: FusionMode = "confidence"
    use_kl: bool = True
    stop_gradient: bool = True
    member_losses: bool = True

    def switches(self) -> dict[str, Any]:
        """The variant as :class:`CETNetConfig` keys."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "label"}


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


@dataclass
class CETNetConfig(Validated):
    """What ``mutualctr cetnet`` runs.

    Attributes:
        data: encoded store folder, from `mutualctr data prepare`.
        members: the models, each a registry model with its hyperparameters and a table of
            its own (embedding_dim 16 unless its model_config says otherwise), trained from
            scratch.
        alpha: weight of the symmetric KL.
        fusion: how the members' representations are fused.
        use_kl: keep the symmetric KL term.
        stop_gradient: confidences detached from the graph (the paper).
        member_losses: sum_n BCE(p_n); false: the fused prediction's BCE only (the
            '+ concat' baselines).
        shared_embedding: ablation: one table shared by all models.
        train: the trainer's settings (train.user_field: gAUC's groups).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "models": "write members: [{model: NAME}, ...] (--models sets it)",
        "model_config": "write each member's own model_config in members",
        "embedding_dim": "write each member's model_config.embedding_dim (--embedding-dim sets "
                         "it in every member)",
        "group_field": "write train.user_field (gAUC's groups, the same in every method)",
    }

    data: str = ""
    members: list[MemberConfig] = field(default_factory=list)
    alpha: float = param(0.1, ge=0.0)
    fusion: FusionMode = "confidence"
    use_kl: bool = True
    stop_gradient: bool = True
    member_losses: bool = True
    shared_embedding: bool = False
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        from_scratch(self.members, "CETNet's members")


def build_cetnet(
    feature_map: FeatureMap, members: Sequence[MemberConfig], *, alpha: float,
    variant: Variant = CETNET,
) -> Built:
    """The group of ``members`` (repeated models allowed) and its CETNet objective: each
    member with a table of its own, or one shared table when the variant says so (their
    ``embedding_dim`` must then agree)."""
    if len(members) < 2:
        raise ConfigError(f"CETNet needs at least two members, got {len(members)}")
    built = [build_member(member, feature_map) for member in members]
    names = positional_names(members)
    params = {
        "representation_dims": [m.representation_dim for m in built],
        "alpha": alpha if variant.use_kl else 0.0,
        "fusion": variant.fusion,
        "stop_gradient": variant.stop_gradient,
        "member_losses": variant.member_losses,
    }
    objective = CETNetObjective(names, **params)
    group_class = SharedEmbeddingGroup if variant.shared_embedding else ModelGroup
    return Built(group_class(built, names), objective, params, built, names)


def build(config: CETNetConfig, store: EncodedStore) -> Built:
    variant = Variant("config", **{k: getattr(config, k) for k in CETNET.switches()})
    return build_cetnet(store.feature_map, config.members, alpha=config.alpha, variant=variant)


def group_ids(store: EncodedStore, field_name: str) -> np.ndarray | None:
    """The test split's user ids under the ``train.user_field`` setting ``field_name``
    (:mod:`mutualctr.training.users`), or None without a user field."""
    return user_ids(store.split("test"), user_column(store, field_name))


def with_ranking_metrics(
    test: Metrics, predictions: dict[str, np.ndarray], labels: np.ndarray,
    groups: np.ndarray | None, background_rate: float,
) -> Metrics:
    """``test`` (metrics by prediction) with every prediction's
    :func:`mutualctr.metrics.ranking_metrics`."""
    return {name: {**values, **metric_fns.ranking_metrics(labels, predictions[name], groups,
                                                          background_rate)}
            for name, values in test.items()}


def scored(config: CETNetConfig, store: EncodedStore, built: Built) -> Finalize:
    """NE of every test prediction (its gAUCs are the trainer's), the monitored prediction and
    the parameter count."""
    background_rate = training_positive_rate(store)
    parameters = sum(p.numel() for p in built.group.parameters()) + sum(
        p.numel() for p in built.objective.parameters())

    def finalize(metrics: Metrics, predictions: dict[str, np.ndarray]) -> Metrics:
        out = {**metrics, "monitor": built.objective.monitor, "parameters": parameters}
        if "test" in metrics:
            labels = np.asarray(store.split("test").label, dtype=np.float64)
            out["test"] = with_ranking_metrics(metrics["test"], predictions, labels, None,
                                               background_rate)
        return out

    return finalize


METHOD = Method(
    "cetnet", CETNetConfig, build, finalize=scored,
    help="train a CETNet group: per-model embeddings, confidence fusion, symmetric KL",
    description="Train N models with their own embeddings under CETNet's objective: "
                "BCE(fused) + sum_n BCE(p_n) + alpha * symmetric KL.",
    flags=(
        Flag("--models", "members", nargs="+", metavar="MODEL",
             help="registry models, e.g. dcnv2 finalmlp (alias of `members: [{model: MODEL}, "
                  "...]`)",
             value=lambda models, _: [{"model": m} for m in models]),
        Flag("--alpha", "alpha"),
        Flag("--embedding-dim", "members[].model_config.embedding_dim", type=int,
             help="each member's table size (alias of every member's "
                  "model_config.embedding_dim; default 16)"),
        Flag("--fusion", "fusion"),
        Flag("--shared-embedding", "shared_embedding", const=True),
        Flag("--no-stop-gradient", "stop_gradient", const=False,
             help="ablation: let gradients flow through the confidences"),
        Flag("--no-member-losses", "member_losses", const=False,
             help="train only the fused prediction (the '+ concat' baselines)"),
    ),
)

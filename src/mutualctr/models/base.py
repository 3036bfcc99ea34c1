"""The shape every CTR model shares: embedding -> backbone -> representation h -> linear head.

``forward`` returns both the logit and the representation, so fusion (CETNet) and distillation
(mutual learning, EKTF) need no special cases. Models with an additive "wide" part (FM's
first-order term, DeepFM's linear + FM component, the linear parts of Wide & Deep, xDeepFM and
FiBiNET) return it as ``residual_logit`` from :meth:`CTRModel.represent`; it is added to the
head's output so the model stays the paper's. docs/models.md says what ``h`` is per model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from mutualctr.config import Validated, param
from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.embedding import Embedded, FeatureEmbedding, NumericInit
from mutualctr.models.inputs import EXCLUDE_KEY, ModelInputs
from mutualctr.models.layers.mlp import MLP

AuxiliaryLoss = Literal["none", "self_distillation", "tri_bce"]


def init_linear_layers(model: nn.Module) -> None:
    """Xavier-normal weights and zero biases for every plain ``nn.Linear``, then each layer's
    own ``init_weights()``: FuxiCTR's ``BaseModel.reset_parameters``, which the BARS benchmark
    configs (the zoo's defaults) were tuned with.

    Why not PyTorch's default (uniform, std ``1/sqrt(3 fan_in)``): for wide inputs it starts
    much smaller, e.g. FiBiNET's first MLP layer (23,712 inputs on 39 fields) at std 0.0037
    against Xavier's 0.0091; docs/benchmarks.md has the parity runs with both. Embeddings and
    layers holding their own ``nn.Parameter`` weights (bilinear, DAGFM, FinalMLP's fusion)
    initialise themselves.
    """
    for module in model.modules():
        if type(module) is nn.Linear:  # as FuxiCTR: subclasses (attention's out_proj) keep theirs
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for module in model.modules():
        if module is not model and callable(getattr(module, "init_weights", None)):
            module.init_weights()


@dataclass
class ModelOutput:
    """``logit`` [B] and representation ``h`` [B, H]; models whose paper trains with an extra
    loss on sub-network predictions also give those sub-logits ``[S, B]`` and name the loss,
    and a model whose paper's extra loss reads its internals gives that loss itself, weighted,
    as the scalar ``extra_loss`` (DIEN's next-behaviour loss, in training mode only); see
    :mod:`mutualctr.training.objectives.auxiliary`."""

    logit: torch.Tensor
    h: torch.Tensor
    aux_logits: torch.Tensor | None = None
    aux_loss: AuxiliaryLoss = "none"
    extra_loss: torch.Tensor | None = None


@dataclass
class ModelConfig(Validated):
    """Hyperparameters every model has. Subclasses add their own fields with paper defaults.

    Types and :func:`~mutualctr.config.param` ranges are checked when a config is built, in
    Python as from YAML (:class:`~mutualctr.config.Validated`); a subclass redeclaring a field
    with a new default keeps the range declared here.
    """

    embedding_dim: int = param(16, ge=1)
    embedding_init_std: float = param(1e-4, gt=0.0)
    numeric_init: NumericInit = "normal"  # see embedding.numeric_init_std
    # the store's fields the model does not read: no embedding rows, no input (models/inputs.py)
    exclude_fields: tuple[str, ...] = ()


@dataclass
class MLPModelConfig(ModelConfig):
    """A model with one DNN tower. Default: the mutual-learning paper's MLP [400, 200, 100]."""

    hidden_units: tuple[int, ...] = param((400, 200, 100), ge=1)  # every width >= 1
    activation: str = "relu"
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False

    def make_mlp(self, in_dim: int) -> MLP:
        return MLP(in_dim, self.hidden_units, self.activation, self.dropout, self.batch_norm)


class CTRModel(nn.Module):
    """Base class: subclasses set ``name``, ``config_class`` and implement ``build``/``represent``.

    ``feature_map`` is the store's; the model reads its fields but ``config.exclude_fields``
    (:attr:`inputs`), and :attr:`feature_map` is those it reads.

    Attributes:
        inputs: the store's fields the model reads and where its batches hold them.
        representation_dim: size of ``h``; set by ``build``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # attends over behaviour histories (DIN, DIEN, InterFormer): excluding all of a store's
    # histories would leave a plainer model than its name says, so it is refused
    needs_histories: ClassVar[bool] = False

    def __init__(self, feature_map: FeatureMap, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.config_class()
        self.inputs = ModelInputs.of(feature_map, self.config.exclude_fields)
        if self.needs_histories:
            _check_histories_kept(self.name, self.inputs)
        self.feature_map = self.inputs.feature_map
        self.embedding = self.build_embedding()
        self.representation_dim = self.build()
        self.head = nn.Linear(self.representation_dim, 1)
        init_linear_layers(self)
        self.reset_head()

    @property
    def num_fields(self) -> int:
        """Number of field embeddings ``F`` the backbone receives."""
        return self.feature_map.num_fields

    @property
    def flat_dim(self) -> int:
        """``F * D``: the size of the flattened field embeddings."""
        return self.feature_map.num_fields * self.config.embedding_dim

    def field_index(self, name: str) -> int:
        """Position of feature ``name`` in the embedding's field order."""
        order = [f.name for f in self.feature_map.categorical + self.feature_map.sequence]
        order += [f.name for f in self.feature_map.numeric]
        if name not in order:
            raise ValueError(f"unknown feature {name!r}; features are {order}")
        return order.index(name)

    def build_embedding(self) -> nn.Module:
        c = self.config
        return FeatureEmbedding(self.inputs, c.embedding_dim, c.embedding_init_std,
                                c.numeric_init)

    def build(self) -> int:
        """Create the backbone's layers; return the representation size."""
        raise NotImplementedError

    def reset_head(self) -> None:
        """Initialise the linear head; PyTorch's default unless a model needs otherwise."""

    def represent(
        self, batch: Batch, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(h [B, H], residual_logit [B] or None)`` from field embeddings ``[B, F, D]``."""
        raise NotImplementedError

    def auxiliary(self) -> tuple[AuxiliaryLoss, tuple[int, ...]]:
        """The paper's extra training loss and the widths of the parts of ``h`` it scores.

        Default: none. FINAL's two blocks and DCNv3's two cross networks each predict on their
        own part of ``h``; see :func:`split_head_logits`.
        """
        return "none", ()

    def represent_embedded(
        self, batch: Batch, embedded: Embedded
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``represent`` from all of a batch's embeddings. Models that read behaviour
        sequences position by position (DIN, DIEN, ...) override this; the others see the field
        embeddings only, sequences mean-pooled."""
        return self.represent(batch, embedded.fields)

    def forward(self, batch: Batch) -> ModelOutput:
        return self.forward_embedded(batch, self.embedding.embed(batch))

    def forward_embedded(self, batch: Batch, embedded: Embedded) -> ModelOutput:
        """``forward`` from embeddings looked up elsewhere (EKTF's students share one
        embedding)."""
        h, residual = self.represent_embedded(batch, embedded)
        logit = self.head(h).squeeze(-1)
        if residual is not None:
            logit = logit + residual
        kind, widths = self.auxiliary()
        if kind == "none":
            return ModelOutput(logit=logit, h=h)
        return ModelOutput(logit=logit, h=h, aux_logits=split_head_logits(self.head, h, widths),
                           aux_loss=kind)


def histories(feature_map: FeatureMap) -> tuple[str, ...]:
    """The behaviour histories of ``feature_map``: its sequence fields that share a
    categorical field's rows (``hist_item`` with ``item``), what target attention reads
    (:mod:`mutualctr.models.behaviour`)."""
    categorical = {f.name for f in feature_map.categorical}
    return tuple(f.name for f in feature_map.sequence if f.share_with in categorical)


def _check_histories_kept(model: str, inputs: ModelInputs) -> None:
    """A history-attending ``model`` keeps at least one of the store's histories."""
    had = histories(inputs.store)
    if had and not histories(inputs.feature_map):
        raise ConfigError(
            f"model {model!r} attends over the store's behaviour histories ({', '.join(had)}), "
            f"but {EXCLUDE_KEY} leaves none of them with its target "
            f"(excluded: {', '.join(inputs.excluded)}): keep one, or compare a model that "
            "does not need them (e.g. dnn) without them")


def split_head_logits(head: nn.Linear, h: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
    """Sub-network logits ``[S, B]`` whose mean is the head's logit.

    FINAL (Zhu et al. 2023) and DCNv3 (Li et al. 2024) give each of their ``S`` sub-networks its
    own linear output and predict with the mean of the ``S`` logits. Our single head over the
    concatenated parts ``h = [h_1 || ... || h_S]`` is ``sum_s w_s h_s + b``, the same family of
    functions; reading it as ``logit_s = S w_s h_s + b`` makes ``mean_s logit_s`` the head's
    logit exactly, so the sub-networks' own losses act on the same parameters as the paper's.
    """
    parts = torch.split(h, list(widths), dim=-1)
    weights = torch.split(head.weight[0], list(widths))
    return torch.stack([len(widths) * (p @ w) + head.bias[0] for p, w in zip(parts, weights,
                                                                              strict=True)])

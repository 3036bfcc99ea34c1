"""Models by name, and their hyperparameters validated into typed configs.

``build_model("deepfm", feature_map, {"hidden_units": [400, 400]})`` builds a model; an unknown
name or hyperparameter is a :class:`~mutualctr.errors.ConfigError` naming it and the closest
valid one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from mutualctr.config import from_dict
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.models.autoint import AutoInt
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.dagfm import DAGFM
from mutualctr.models.dcn import DCN
from mutualctr.models.dcnv2 import DCNv2
from mutualctr.models.dcnv3 import DCNv3
from mutualctr.models.deepfm import DeepFM
from mutualctr.models.dhen import DHEN
from mutualctr.models.dien import DIEN
from mutualctr.models.din import DIN
from mutualctr.models.dnn import DNN
from mutualctr.models.ecn import ECN
from mutualctr.models.fibinet import FiBiNET
from mutualctr.models.final import FINAL
from mutualctr.models.finalmlp import FinalMLP
from mutualctr.models.fm import FM
from mutualctr.models.interformer import InterFormer
from mutualctr.models.lr import LR
from mutualctr.models.multi_embedding import multi_embedding_variants
from mutualctr.models.pnn import PNN
from mutualctr.models.wide_deep import WideDeep
from mutualctr.models.wukong import Wukong
from mutualctr.models.xdeepfm import XDeepFM

_MODELS: dict[str, type[CTRModel]] = {
    cls.name: cls
    for cls in (
        LR, FM, DNN, WideDeep, DeepFM, DCN, DCNv2, PNN, FiBiNET, XDeepFM, AutoInt, FinalMLP,
        FINAL, ECN, DCNv3, DAGFM, DIN, DIEN, InterFormer, DHEN, Wukong,
    )
}
_MODELS.update(multi_embedding_variants(_MODELS))  # me_dnn, me_pnn ... (Guo et al. 2024)


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def _closest(word: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def get_model_class(name: str) -> type[CTRModel]:
    """The model class registered under ``name`` (case-insensitive)."""
    key = name.lower()
    if key not in _MODELS:
        raise ConfigError(f"unknown model {name!r}{_closest(key, model_names())}")
    return _MODELS[key]


def model_config(name: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    """The model's config dataclass with ``overrides`` applied, validated by
    :func:`mutualctr.config.from_dict` (the project's one validator: unknown keys with the
    closest valid one, types, lists as tuples); errors name the model."""
    config_class = get_model_class(name).config_class
    try:
        return from_dict(config_class, overrides)
    except ConfigError as err:
        raise ConfigError(f"model {name!r}: {err}") from err


def build_model(
    name: str, feature_map: FeatureMap, overrides: Mapping[str, Any] | None = None
) -> CTRModel:
    """Build the model registered under ``name`` for ``feature_map``.

    Inconsistent hyperparameters (e.g. a width not divisible by the number of heads) raise a
    :class:`ConfigError`.
    """
    config = model_config(name, overrides)
    try:
        return get_model_class(name)(feature_map, config)
    except ValueError as err:
        raise ConfigError(f"model {name!r}: {err}") from err

"""Shared by the trainer tests: a tiny CTR model and a learnable synthetic data set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.prepare import prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.schema import Feature, FeatureMap
from mutualctr.data.store import META_FILE, STORE_FORMAT_VERSION, SplitArrays, SplitWriter
from mutualctr.data.synthetic import generate_criteo_synthetic
from mutualctr.files import write_json
from mutualctr.models.base import CTRModel, ModelConfig
from mutualctr.models.registry import build_model, get_model_class

VOCAB = 12
SMALL = {"embedding_dim": 8}


def small_model_config(name: str) -> dict:
    """Registry model ``name`` at embedding 8 and every hidden-layer list at width 16, to keep
    tests fast."""
    config_class = get_model_class(name).config_class
    overrides: dict = dict(SMALL)
    for f in dataclasses.fields(config_class):
        default = getattr(config_class(), f.name)
        if f.name.endswith("units") and default:
            overrides[f.name] = [16] * min(len(default), 2)
    if "head_dim" in {f.name for f in dataclasses.fields(config_class)}:
        overrides["head_dim"] = 4
    return overrides

FEATURE_MAP = FeatureMap(
    features=(
        Feature("a", "categorical", VOCAB),
        Feature("b", "categorical", VOCAB),
        Feature("c", "categorical", VOCAB),
        Feature("x", "numeric"),
    )
)


class TinyModel(CTRModel):
    """Embedding -> one hidden layer with dropout (so resumption must restore the RNG)."""

    name = "tiny"
    config_class = ModelConfig

    def build(self) -> int:
        self.mlp = nn.Sequential(
            nn.Linear(self.feature_map.num_fields * self.config.embedding_dim, 8),
            nn.ReLU(),
            nn.Dropout(0.2),
        )
        return 8

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.mlp(emb.flatten(1)), None


def tiny_model(seed: int = 0) -> TinyModel:
    torch.manual_seed(seed)
    return TinyModel(FEATURE_MAP, ModelConfig(embedding_dim=4, embedding_init_std=0.1))


def synthetic_split(rows: int, seed: int) -> SplitArrays:
    """Clicks from a fixed logistic model of the ids (the same hidden weights for every seed)."""
    hidden = np.random.default_rng(1234).normal(0.0, 1.5, size=(3, VOCAB))
    rng = np.random.default_rng(seed)
    cat = rng.integers(2, VOCAB, size=(rows, 3))
    x = rng.normal(size=(rows, 1)).astype(np.float32)
    logit = hidden[0, cat[:, 0]] + hidden[1, cat[:, 1]] * hidden[2, cat[:, 2]] + 0.5 * x[:, 0]
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return SplitArrays(cat.astype(np.int32), x, (), label)


def behaviour_feature_map(users: int, items: int, categories: int, length: int) -> FeatureMap:
    """User, item, category and hour, the histories of items and of their categories (sharing
    the target's ids, ``length`` long) and a price: the fields of the sequence models' tests."""
    return FeatureMap((
        Feature("user", "categorical", vocab_size=users),
        Feature("item", "categorical", vocab_size=items),
        Feature("category", "categorical", vocab_size=categories),
        Feature("hour", "categorical", vocab_size=6),
        Feature("hist_item", "sequence", items, max_len=length, share_with="item"),
        Feature("hist_category", "sequence", categories, max_len=length, share_with="category"),
        Feature("price", "numeric"),
    ))


HISTORY = 6
SEQUENCE_FEATURE_MAP = FeatureMap(
    features=(
        Feature("user", "categorical", VOCAB),
        Feature("item", "categorical", VOCAB),
        Feature("hour", "categorical", VOCAB),
        Feature("tags", "sequence", VOCAB, max_len=3),
        Feature("hist_item", "sequence", VOCAB, max_len=HISTORY, share_with="item"),
        Feature("x", "numeric"),
        Feature("y", "numeric"),
    )
)


def sequence_split(rows: int, seed: int) -> SplitArrays:
    """Rows of :data:`SEQUENCE_FEATURE_MAP`: a multi-hot tag field, a behaviour history sharing
    the item's ids (right-padded, some empty) and two numeric fields; a click is likelier when
    the target item is in the history."""
    rng = np.random.default_rng(seed)
    cat = rng.integers(2, VOCAB, size=(rows, 3)).astype(np.int32)
    tags = rng.integers(0, VOCAB, size=(rows, 3)).astype(np.int32)
    lengths = rng.integers(0, HISTORY + 1, size=rows)
    history = rng.integers(2, VOCAB, size=(rows, HISTORY)).astype(np.int32)
    history[np.arange(HISTORY) >= lengths[:, None]] = 0
    numeric = rng.normal(size=(rows, 2)).astype(np.float32)
    seen = (history == cat[:, 1:2]).any(1)
    logit = 2.0 * seen - 1.0 + 0.5 * numeric[:, 0] + 0.2 * (tags == 3).sum(1)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    return SplitArrays(cat, numeric, (tags, history), label)


def write_store(
    root: Path, rows: dict[str, int], feature_map: FeatureMap = FEATURE_MAP,
    make_split: Callable[[int, int], SplitArrays] = synthetic_split,
) -> Path:
    """A minimal encoded store folder (meta.json + arrays) holding synthetic splits:
    ``make_split(rows, seed)``'s arrays for ``feature_map``."""
    root.mkdir(parents=True, exist_ok=True)
    for seed, (name, n) in enumerate(rows.items()):
        split = make_split(n, seed)
        writer = SplitWriter(root / name, n, len(feature_map.categorical),
                             len(feature_map.numeric),
                             tuple(f.max_len for f in feature_map.sequence), with_prob=False)
        writer.append(split)
        writer.close()
    meta = {
        "format_version": STORE_FORMAT_VERSION,
        "feature_map": feature_map.to_dict(),
        "splits": {name: {"rows": n} for name, n in rows.items()},
    }
    write_json(root / META_FILE, meta)
    return root


def criteo_categorical_store(root: Path, rows: int = 1000) -> Path:
    """``rows`` synthetic Criteo rows prepared in Criteo's default encoding (every field
    categorical, ``min_count`` 2): the store shape of Criteo users."""
    root.mkdir(parents=True, exist_ok=True)
    generate_criteo_synthetic(root / "raw.txt", rows, seed=0)
    store = prepare([root / "raw.txt"], root / "store", "criteo",
                    reader_options=ReaderOptions(min_count=2)).store
    assert not store.feature_map.numeric
    return store.root


# The store shapes users have, each ``make(root, rows)``: Criteo's default encoding (every field
# categorical), categorical with numeric fields, and multi-hot fields with a behaviour history.
STORE_SHAPES: dict[str, Callable[[Path, int], Path]] = {
    "criteo, all categorical": criteo_categorical_store,
    "categorical and numeric": lambda root, rows: write_store(
        root, {"train": rows * 2 // 3, "valid": rows // 6, "test": rows // 6}),
    "multi-hot and history": lambda root, rows: write_store(
        root, {"train": rows * 2 // 3, "valid": rows // 6, "test": rows // 6},
        SEQUENCE_FEATURE_MAP, sequence_split),
}


# A small feature map of every input kind, for comparing groups of models: four categorical
# fields, a multi-hot field and a numeric one.
GROUP_FEATURE_MAP = FeatureMap((
    *(Feature(f"c{i}", "categorical", vocab_size=30) for i in range(4)),
    Feature("tags", "sequence", vocab_size=12, max_len=3),
    Feature("n0", "numeric"),
))
GROUP_NAMES = ["m0", "m1", "m2"]
GROUP_MODEL_CONFIG = {"hidden_units": [16, 8], "embedding_dim": 4, "embedding_init_std": 0.1}


def group_batch(seed: int, size: int = 32) -> Batch:
    """A random batch of :data:`GROUP_FEATURE_MAP`."""
    g = torch.Generator().manual_seed(seed)
    return Batch(
        categorical=torch.randint(0, 30, (size, 4), generator=g),
        numeric=torch.rand(size, 1, generator=g),
        sequences=(torch.randint(0, 12, (size, 3), generator=g),),
        label=(torch.rand(size, generator=g) < 0.3).float(),
    )


def group_models(name: str = "deepfm", count: int = len(GROUP_NAMES)) -> list[nn.Module]:
    """``count`` registry models ``name`` on :data:`GROUP_FEATURE_MAP`, seeded alike."""
    torch.manual_seed(0)
    return [build_model(name, GROUP_FEATURE_MAP, GROUP_MODEL_CONFIG) for _ in range(count)]

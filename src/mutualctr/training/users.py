"""The user field of a store: what gAUC groups rows by (``train.user_field``).

A store declares its user field in one of two ways, looked up in this order:

1. a csv/parquet schema's ``history`` key: its ``user`` column (``meta.json``'s
   ``settings.tabular.history.user``), when that column is a categorical field of the store;
2. ``data prepare --split user-last --user-column COLUMN`` (``settings.split.user_column``),
   when that column is a categorical field;
3. a categorical field named ``user``: MovieLens (``userId``), Frappe, the synthetic sequence
   log, and any schema whose user column is named ``user``.

A store with neither (Criteo, Avazu) has no user field and no gAUC. ``train.user_field``
(``auto`` by default: the declared one) names another categorical field to group by, or
``""`` for none; ``mutualctr evaluate --gauc-by`` takes the same values and defaults to the
run's own setting, so it reports what ``metrics.json`` holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.runfolders.folder import read_config

AUTO = "auto"
USER = "user"
KEY = "train.user_field"


def _history_user(settings: dict[str, Any]) -> str | None:
    history = (settings.get("tabular") or {}).get("history") or {}
    return history.get("user")


def declared_user_field(store: EncodedStore) -> str | None:
    """The store's own user field (see the module docstring), or None."""
    categorical = [f.name for f in store.feature_map.categorical]
    settings = store.meta.get("settings") or {}
    split_user = (settings.get("split") or {}).get("user_column")
    candidates = [_history_user(settings), split_user, USER]
    return next((name for name in candidates if name in categorical), None)


def user_field(store: EncodedStore, setting: str = AUTO, key: str = KEY) -> str | None:
    """The field gAUC groups ``store``'s rows by under ``setting`` (``auto``: the declared
    one; ``""``: none; else a categorical field); ``key`` names the setting in errors."""
    if setting == AUTO:
        return declared_user_field(store)
    if not setting:
        return None
    categorical = [f.name for f in store.feature_map.categorical]
    if setting not in categorical:
        raise ConfigError(f"{key} {setting!r}: not a categorical field of the store (its "
                          f"categorical fields: {', '.join(categorical)}); give one of them, "
                          f"{AUTO} or \"\" for no gAUC")
    return setting


def user_column(store: EncodedStore, setting: str = AUTO, key: str = KEY) -> int | None:
    """The column of :func:`user_field` in the store's categorical arrays, or None."""
    name = user_field(store, setting, key)
    if name is None:
        return None
    return [f.name for f in store.feature_map.categorical].index(name)


def user_ids(split: SplitArrays, column: int | None) -> np.ndarray | None:
    """The split's user ids in row order (what gAUC groups by), or None without a column."""
    return None if column is None else np.asarray(split.categorical[:, column])


def run_user_field(run: str | Path) -> str:
    """The ``train.user_field`` a run folder was trained with (``auto`` for runs made before
    the setting existed, which is what they would have been trained with)."""
    train = read_config(run).get("train") or {}
    return str(train.get("user_field", AUTO))

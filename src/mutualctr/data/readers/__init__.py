"""Readers of raw click logs, one module per format; :func:`make_reader` picks one by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mutualctr.config import from_dict
from mutualctr.data.readers.avazu import AvazuReader
from mutualctr.data.readers.base import Reader
from mutualctr.data.readers.criteo import CriteoReader
from mutualctr.data.readers.frappe import FrappeReader
from mutualctr.data.readers.movielens import MovieLensReader
from mutualctr.data.readers.tabular import TabularReader, TabularSpec
from mutualctr.errors import ConfigError

FORMATS = ("criteo", "avazu", "frappe", "movielens", "csv", "parquet")


@dataclass(frozen=True)
class ReaderOptions:
    """Format options of ``data prepare``; ``None`` means the format's default."""

    min_count: int | None = None
    tabular: TabularSpec | None = None  # csv / parquet: the schema file's content
    criteo_numeric: bool = False
    frappe_form: str = "auto"
    rating_threshold: float = 4.0
    drop_rating: float | None = None
    history_len: int = 0  # MovieLens: the newest earlier ratings per row (0: no histories)
    hash_buckets: int = 0  # fields with more kept values are hashed into this many buckets

    def settings(self, fmt: str) -> dict[str, Any]:
        """The options that matter for ``fmt``, as recorded in ``meta.json`` (an option added
        later is recorded only when set, so stores built before it are still reused)."""
        relevant: dict[str, Any] = {"min_count": self.min_count}
        if self.hash_buckets:
            relevant["hash_buckets"] = self.hash_buckets
        if fmt in ("csv", "parquet"):
            relevant["tabular"] = self.tabular.settings() if self.tabular is not None else None
        elif fmt == "criteo":
            relevant["criteo_numeric"] = self.criteo_numeric
        elif fmt == "frappe":
            relevant["frappe_form"] = self.frappe_form
        elif fmt == "movielens":
            relevant.update(rating_threshold=self.rating_threshold, drop_rating=self.drop_rating)
            if self.history_len:
                relevant["history_len"] = self.history_len
        return relevant

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ReaderOptions:
        """Inverse of :meth:`settings` (options a format ignores keep their defaults)."""
        values = dict(settings)
        if values.get("tabular") is not None:
            values["tabular"] = from_dict(TabularSpec, values["tabular"])
        return cls(**values)


def make_reader(fmt: str, options: ReaderOptions, time_column: str | None = None) -> Reader:
    """The reader of ``fmt``; ``time_column`` (csv / parquet only) names the column that gives
    each row's time (MovieLens rows always carry their timestamp)."""
    if time_column is not None and fmt not in ("csv", "parquet"):
        raise ConfigError(f"a time column can only be named for --format csv or parquet, not "
                          f"{fmt!r}")
    if options.history_len and fmt != "movielens":
        raise ConfigError("--history-len is a MovieLens option; csv and parquet logs take a "
                          "'history' key in the schema file")
    counts = {} if options.min_count is None else {"min_count": options.min_count}
    if fmt == "criteo":
        return CriteoReader(numeric=options.criteo_numeric, **counts)
    if fmt == "avazu":
        return AvazuReader(**counts)
    if fmt == "frappe":
        return FrappeReader(form=options.frappe_form, **counts)
    if fmt == "movielens":
        return MovieLensReader(threshold=options.rating_threshold,
                               drop_rating=options.drop_rating,
                               history_len=options.history_len, **counts)
    if fmt in ("csv", "parquet"):
        if options.tabular is None:
            raise ConfigError(f"--format {fmt} needs --schema FILE.yaml")
        return TabularReader(options.tabular, parquet=fmt == "parquet",
                             min_count=options.min_count, time_column=time_column)
    raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")

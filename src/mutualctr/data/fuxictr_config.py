"""FuxiCTR dataset configs (``dataset_config.yaml``) read as their users have them.

A FuxiCTR user describes a dataset under its id in ``dataset_config.yaml`` (FuxiCTR 2.3.10,
``fuxictr.utils.load_dataset_config`` and ``preprocess.FeatureProcessor``). :func:`load_dataset`
maps one dataset onto what ``data prepare`` takes: the csv / parquet schema (the same
:class:`~mutualctr.data.readers.tabular.TabularSpec` a schema YAML gives, so
:func:`schema_yaml` prints the file that gives the identical store) and the given train, valid
and test files as the splits (``--split files``).

Every key is mapped, ignored because it does not change the encoded data (each with the reason
in :data:`IGNORED_KEYS` / :data:`IGNORED_FIELD_KEYS`), or refused with the key, the field and
the reason; all refusals of a config are reported together in one :class:`ConfigError`.

Mapped, as FuxiCTR does it:

* data paths are relative to the folder FuxiCTR runs in (``root``: the current directory
  unless given); a path not ending in the format's extension is a folder whose ``*.csv`` /
  ``*.parquet`` files FuxiCTR reads (``FeatureProcessor.read_data``), which must be one file
  here (a split is one file in ``--split files``);
* ``feature_cols`` entries with one name or a list of names (one field each), ``active: false``
  left out; ``min_categr_count`` (global, or per field) as ``min_count``;
* sequences split on ``splitter`` (FuxiCTR's default ``^``), ``max_len`` (0 or absent: the
  longest in train, as FuxiCTR's statistics take it), padded after the tokens and truncated to
  the first ``max_len`` ones (FuxiCTR's default ``padding: post`` truncates the same side);
* ``share_embedding: OWNER`` as ``share_vocab: OWNER``: one vocabulary for both fields, so a
  history shares its target's ids (DIN finds such pairs);
* ``preprocess: convert_to_bucket`` (BARS Criteo_x4's ``floor(ln(x)^2)`` for ``x > 2``) as
  ``bucket: criteo`` of a categorical field; ``fill_na`` of numeric and bucketed fields as
  ``fill_na`` (a missing number becomes it before bucketing or standardising);
* numeric fields: mutualctr standardises every numeric field with the train mean and standard
  deviation, FuxiCTR's ``normalizer: StandardScaler``; without a normalizer FuxiCTR keeps the
  raw values, which is said as a note.

Where the encodings differ by design (docs/data.md, "Coming from FuxiCTR"): a missing value is
a value of its own here, where FuxiCTR fills it with ``""`` and encodes it as OOV (a missing
sequence is all padding there); a shared vocabulary keeps the tokens whose counts summed over
its fields reach the owner's ``min_count``, where FuxiCTR merges each field's own kept tokens
(the same set with ``min_categr_count: 1``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from mutualctr.config import from_dict, load_yaml
from mutualctr.data.prepare import PrepareResult, SplitOptions, prepare
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.base import OnBadRow
from mutualctr.data.readers.tabular import TabularSpec
from mutualctr.data.schema import FieldSpec
from mutualctr.errors import ConfigError, DataError

FORMATS = ("csv", "parquet")
SPLIT_KEYS = ("train_data", "valid_data", "test_data")
FUXICTR_SPLITTER = "^"  # FuxiCTR's default sequence splitter
FIELD_TYPES = ("categorical", "numeric", "sequence")

# keys that do not change the encoded data: ignored, with why
IGNORED_KEYS = {
    "data_root": "the folder FuxiCTR writes its encoded files to; the store goes to --out",
    "data_block_size": "rows per encoded parquet file FuxiCTR writes; the data is the same",
    "group_id": "the field FuxiCTR groups gAUC by; mutualctr evaluate --gauc-by FIELD does it",
    "dataset_id": "the dataset's id, given by --dataset-id",
}
IGNORED_FIELD_KEYS = {
    "source": "a tag (user, item, context) some FuxiCTR models read; the data is the same",
    "feature_encoder": "a layer FuxiCTR's models apply to the field's embedding (a model "
                       "setting; mutualctr models mean-pool sequences that are not histories)",
    "embedding_dim": "a per-field embedding size: mutualctr models give every field the same "
                     "size (model_config.embedding_dim, --embedding-dim), so the field gets "
                     "the model's size",
    "emb_output_dim": "a per-field embedding size: mutualctr models give every field the same "
                      "size (model_config.embedding_dim, --embedding-dim)",
}
# keys that change the data in ways mutualctr does not reproduce: refused, with why
REFUSED_KEYS = {
    "valid_size": "FuxiCTR splits train_data itself with it; give valid_data and test_data "
                  "files, or prepare the printed schema with mutualctr's own --split",
    "test_size": "FuxiCTR splits train_data itself with it; give valid_data and test_data "
                 "files, or prepare the printed schema with mutualctr's own --split",
    "split_type": "goes with valid_size / test_size (FuxiCTR's own split); give the split "
                  "files instead",
    "num_buckets": "the bucket count of FuxiCTR's category_processor, which mutualctr does not "
                   "reproduce (see --hash-buckets for hashing)",
    "n_rows": "reads only the first rows of each file; cut the files instead",
}
REFUSED_FIELD_KEYS = {
    "pretrained_emb": "mutualctr does not load pretrained embeddings into a field's table; "
                      "remove the key to learn the field's embedding from scratch",
    "freeze_emb": "goes with pretrained_emb, which mutualctr does not load",
    "pretrain_dim": "goes with pretrained_emb, which mutualctr does not load",
    "pretrain_usage": "goes with pretrained_emb, which mutualctr does not load",
    "category_processor": "FuxiCTR's quantile / hash bucketing is not reproduced (for "
                          "hashing see mutualctr's --hash-buckets)",
    "num_buckets": "goes with category_processor, which mutualctr does not reproduce",
    "vocab_size": "FuxiCTR reads it for data it does not encode itself (rebuild_dataset: "
                  "false); mutualctr fits every vocabulary on the train file",
}
TYPE_REFUSALS = {
    "meta": "a FuxiCTR meta column (group ids for gAUC) is not a model input; leave it out "
            "and use mutualctr evaluate --gauc-by FIELD",
    "embedding": "a column of precomputed embedding vectors; mutualctr fields are "
                 "categorical, numeric or sequences of tokens",
}
LABEL_KEYS = ("name", "dtype")


@dataclass(frozen=True)
class FuxiCTRDataset:
    """One dataset of a FuxiCTR config, as ``data prepare`` takes it.

    Attributes:
        config: the config file read.
        dataset_id: the dataset's id in it.
        fmt: ``csv`` or ``parquet``.
        inputs: the train, valid[, test] files (the splits, in that order).
        schema: the equivalent csv / parquet schema, as a schema YAML holds it.
        notes: what a FuxiCTR user should know about the mapping (ignored keys, differences).
    """

    config: Path
    dataset_id: str
    fmt: str
    inputs: tuple[Path, ...]
    schema: dict[str, Any]
    notes: tuple[str, ...]

    @property
    def spec(self) -> TabularSpec:
        return from_dict(TabularSpec, self.schema)

    def reader_options(self, hash_buckets: int = 0) -> ReaderOptions:
        return ReaderOptions(tabular=self.spec, hash_buckets=hash_buckets)


class _Mapping:
    """What a config maps to so far: refusals and notes, each naming its key and field."""

    def __init__(self, config: Path, dataset_id: str) -> None:
        self.where = f"FuxiCTR config {config}, dataset {dataset_id!r}"
        self.refused: list[str] = []
        self.notes: list[str] = []

    def refuse(self, key: str, reason: str, field: str | None = None) -> None:
        self.refused.append(f"{_named(key, field)}: {reason}")

    def note(self, key: str, reason: str, field: str | None = None) -> None:
        self.notes.append(f"{_named(key, field)}: {reason}")

    def check(self) -> None:
        if self.refused:
            raise ConfigError(f"{self.where}: cannot be read as mutualctr data:\n  "
                              + "\n  ".join(self.refused))

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {message}")


def _named(key: str, field: str | None) -> str:
    return f"field {field!r}, key {key!r}" if field is not None else f"key {key!r}"


def _dataset_params(config: Path, dataset_id: str) -> dict[str, Any]:
    """The dataset's mapping, looked up as FuxiCTR's ``load_dataset_config`` does: in the file,
    or in a folder's ``dataset_config.yaml`` (else its ``dataset_config/*.yaml`` files)."""
    if config.is_dir():
        files = sorted(config.glob("dataset_config.yaml")) or sorted(
            config.glob("dataset_config/*.yaml"))
    else:
        files = [config]
    known: list[str] = []
    for path in files:
        datasets = load_yaml(path)
        if dataset_id in datasets:
            params = datasets[dataset_id]
            if not isinstance(params, Mapping):
                raise ConfigError(f"FuxiCTR config {path}, dataset {dataset_id!r}: expected a "
                                  f"mapping of keys, got {params!r}")
            return dict(params)
        known += [str(k) for k in datasets]
    raise ConfigError(f"FuxiCTR config {config}: no dataset {dataset_id!r}; its datasets: "
                      f"{', '.join(known) or 'none'}")


def _count(value: Any, key: str, mapping: _Mapping, field: str | None = None,
           least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        mapping.refuse(key, f"expected a whole number >= {least}, got {value!r}", field)
        return least
    return value


def _names(entry: Mapping[str, Any], index: int, mapping: _Mapping) -> list[str]:
    names = entry.get("name")
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        mapping.refuse(f"feature_cols[{index}].name",
                       f"expected a column name or a list of them, got {entry.get('name')!r}")
        return []
    return names


def _field_dicts(entry: Any, index: int, min_count: int, mapping: _Mapping
                 ) -> list[dict[str, Any]]:
    """The schema fields of one ``feature_cols`` entry (one per name; none if inactive)."""
    if not isinstance(entry, Mapping):
        mapping.refuse(f"feature_cols[{index}]", f"expected a mapping, got {entry!r}")
        return []
    names = _names(entry, index, mapping)
    if not names or entry.get("active", True) is False:  # FuxiCTR leaves inactive columns out
        return []
    label = names[0] if len(names) == 1 else f"{names[0]}, ... ({len(names)} fields)"
    kind = entry.get("type")
    if kind in TYPE_REFUSALS:
        mapping.refuse("type", f"{kind!r} is {TYPE_REFUSALS[kind]}", label)
    elif kind not in FIELD_TYPES:
        mapping.refuse("type", f"expected one of {', '.join(FIELD_TYPES)}, got {kind!r}", label)
    field: dict[str, Any] = {"type": kind}
    for key, value in entry.items():
        _field_key(key, value, entry, field, label, mapping)
    count = _count(entry.get("min_categr_count", min_count), "min_categr_count", mapping, label)
    if kind != "numeric" and count != 1:
        field["min_count"] = count
    if kind == "sequence":
        field["separator"] = entry.get("splitter", FUXICTR_SPLITTER)
        field["max_len"] = _count(entry.get("max_len", 0), "max_len", mapping, label, least=0)
    return [{"name": name, **field} for name in names]


def _field_key(key: str, value: Any, entry: Mapping[str, Any], field: dict[str, Any],
               label: str, mapping: _Mapping) -> None:
    """Map (into ``field``), ignore or refuse one key of a ``feature_cols`` entry."""
    kind = entry.get("type")
    if key in ("name", "type", "active", "min_categr_count"):
        return  # mapped by the caller
    if key in IGNORED_FIELD_KEYS:
        mapping.note(key, f"ignored: {IGNORED_FIELD_KEYS[key]}", label)
    elif key in REFUSED_FIELD_KEYS:
        mapping.refuse(key, REFUSED_FIELD_KEYS[key], label)
    elif key == "dtype":
        bucketed = entry.get("preprocess") == "convert_to_bucket"
        if kind != "numeric" and not bucketed and value not in ("str", str):
            mapping.note(key, f"{value!r}: values are taken as the file's text (FuxiCTR casts "
                         "them, so '3' and '3.0' are one value there)", label)
    elif key == "share_embedding" and kind in ("categorical", "sequence"):
        field["share_vocab"] = value
    elif key in ("splitter", "max_len") and kind == "sequence":
        if key == "splitter" and (not isinstance(value, str) or not value):
            mapping.refuse(key, f"expected the text between tokens, got {value!r}", label)
    elif key == "padding" and kind == "sequence":
        if value != "post":
            mapping.refuse(key, f"{value!r}: mutualctr pads after the tokens and keeps the "
                           "first max_len ones (FuxiCTR's 'post'); use padding: post", label)
    elif key == "remap":
        if value is not True:
            mapping.refuse(key, "mutualctr always numbers the kept values itself", label)
    elif key == "normalizer" and kind == "numeric":
        if value != "StandardScaler":
            mapping.refuse(key, f"{value!r}: mutualctr standardises numeric fields (FuxiCTR's "
                           "StandardScaler) and has no other normalizer", label)
    elif key == "preprocess" and value == "convert_to_bucket":
        if kind == "categorical":
            field["bucket"] = "criteo"  # BARS Criteo_x4's floor(ln(x)^2) for x > 2, else int(x)
        else:
            mapping.refuse(key, f"convert_to_bucket makes numbers the ids of a categorical "
                           f"field (as FuxiCTR's Criteo_x4 declares them); this one is {kind}",
                           label)
    elif key == "fill_na":
        _fill_na(value, entry, field, label, mapping)
    elif key == "preprocess":
        mapping.refuse(key, f"{value!r} is a method of a FuxiCTR FeatureProcessor (or the "
                       "user's subclass of it) that mutualctr does not run; write the column "
                       "into the data file", label)
    else:
        mapping.refuse(key, f"not a FuxiCTR feature_cols key mutualctr maps for a "
                       f"{kind} field", label)


def _fill_na(value: Any, entry: Mapping[str, Any], field: dict[str, Any], label: str,
             mapping: _Mapping) -> None:
    """FuxiCTR fills a missing value with ``fill_na`` before encoding: a number for numeric
    and bucketed fields, as here; for text, ``""`` (its default) leaves a missing value a
    value of its own here (the encodings' one difference, see the module docstring), and any
    other text would merge it with the real values equal to it, which is refused."""
    numbers = entry.get("type") == "numeric" or entry.get("preprocess") == "convert_to_bucket"
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        field["fill_na"] = float(value)
    elif not numbers and value == "":
        mapping.note("fill_na", "'': a missing value stays a value of its own", label)
    else:
        mapping.refuse("fill_na", f"{value!r}: mutualctr fills missing numbers (numeric and "
                       "bucketed fields) with a number, and keeps a missing text value as a "
                       "value of its own; fill the column in the file instead", label)


def _numeric_notes(entries: Sequence[Any], mapping: _Mapping) -> None:
    """Numeric fields without FuxiCTR's StandardScaler: stored standardised here."""
    for entry in entries:
        if (isinstance(entry, Mapping) and entry.get("type") == "numeric"
                and entry.get("active", True) is not False and "normalizer" not in entry):
            mapping.note("normalizer", "absent, so FuxiCTR keeps the raw values; mutualctr "
                         "standardises every numeric field (FuxiCTR's StandardScaler)",
                         str(entry.get("name")))


def _label(value: Any, mapping: _Mapping) -> str:
    if value is None:
        mapping.refuse("label_col", "missing: give {name: COLUMN, dtype: float}")
        return ""
    if isinstance(value, list):
        if len(value) != 1:
            mapping.refuse("label_col", f"{len(value)} labels (multi-task); mutualctr trains "
                           "on one 0/1 label")
            return ""
        value = value[0]
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        mapping.refuse("label_col", f"expected {{name: COLUMN, dtype: float}}, got {value!r}")
        return ""
    for key in value:
        if key not in LABEL_KEYS:
            mapping.refuse(f"label_col.{key}", "mutualctr reads the label column as it is "
                           "(0/1, true/false); prepare the label in the file")
    return value["name"]


def _data_file(key: str, value: Any, fmt: str, root: Path, mapping: _Mapping) -> Path | None:
    """The one file of a split, found as FuxiCTR's ``read_data`` finds it: relative to the
    folder FuxiCTR runs in; a path not ending in the format's name is a folder of such files."""
    if not isinstance(value, str) or not value:
        mapping.refuse(key, f"expected a path, got {value!r}")
        return None
    path = root / value
    pattern = path if value.endswith(fmt) else path / f"*.{fmt}"
    files = sorted(glob.glob(str(pattern)))
    if not files:
        raise DataError(f"{mapping.where}, {key}: no {fmt} file here (FuxiCTR reads data paths "
                        "from the folder it runs in: run from there or give --fuxictr-root DIR)",
                        file=str(pattern))
    if len(files) > 1:
        mapping.refuse(key, f"{len(files)} files match {pattern}; mutualctr takes one file per "
                       "split: join them into one")
        return None
    return Path(os.path.abspath(files[0]))


def _top_key(key: str, value: Any, mapping: _Mapping) -> None:
    """Ignore or refuse one top-level key that is not mapped."""
    if key in IGNORED_KEYS:
        mapping.note(key, f"ignored: {IGNORED_KEYS[key]}")
    elif key == "rebuild_dataset":
        if value is True:
            mapping.note(key, "ignored: true is FuxiCTR's default, to encode the raw files")
        else:
            mapping.refuse(key, "false means FuxiCTR's data is already encoded; mutualctr "
                           "encodes the raw files")
    elif key in REFUSED_KEYS:
        mapping.refuse(key, REFUSED_KEYS[key])
    else:
        mapping.refuse(key, "not a FuxiCTR dataset key mutualctr knows")


MAPPED_KEYS = ("data_format", *SPLIT_KEYS, "min_categr_count", "feature_cols", "label_col",
               "sep")


def load_dataset(config: Path, dataset_id: str, root: Path | None = None) -> FuxiCTRDataset:
    """Dataset ``dataset_id`` of the FuxiCTR ``config`` (a ``dataset_config.yaml`` or its
    folder), its data paths resolved from ``root`` (default: the current directory, where
    FuxiCTR would run).

    Raises:
        ConfigError: naming every key that cannot be mapped, with its field and the reason.
        DataError: a split's file is not there (naming the path looked for).
    """
    config, root = Path(config), Path(root) if root is not None else Path.cwd()
    params = _dataset_params(config, dataset_id)
    mapping = _Mapping(config, dataset_id)
    for key, value in params.items():
        if key not in MAPPED_KEYS:
            _top_key(key, value, mapping)
    fmt = params.get("data_format", "csv")
    if fmt not in FORMATS:
        mapping.refuse("data_format", f"{fmt!r}: FuxiCTR reads npz / h5 data it has already "
                       "encoded; mutualctr encodes raw csv or parquet files (point the config "
                       "at the raw files)")
    entries = params.get("feature_cols")
    if not entries:
        mapping.refuse("feature_cols", "missing: FuxiCTR then reads the data as already "
                       "encoded (its feature_map.json under data_root); mutualctr encodes raw "
                       "files and needs the feature columns")
    elif not isinstance(entries, list):
        mapping.refuse("feature_cols", f"expected a list of columns, got {entries!r}")
    entries = entries if isinstance(entries, list) else []
    min_count = _count(params.get("min_categr_count", 1), "min_categr_count", mapping)
    fields = [f for index, entry in enumerate(entries)
              for f in _field_dicts(entry, index, min_count, mapping)]
    _numeric_notes(entries, mapping)
    label = _label(params.get("label_col"), mapping)
    for key in SPLIT_KEYS[:2]:
        if key not in params:
            mapping.refuse(key, "missing: mutualctr takes the splits as given files")
    mapping.check()  # the format is known from here on
    inputs = [_data_file(key, params[key], fmt, root, mapping) for key in SPLIT_KEYS
              if params.get(key) is not None]
    schema: dict[str, Any] = {"label": label}
    if fmt == "csv":
        schema["delimiter"] = params.get("sep", ",")
    elif "sep" in params:
        mapping.note("sep", "ignored: parquet files have no delimiter")
    schema["fields"] = fields
    mapping.check()
    try:
        from_dict(TabularSpec, schema)
    except ConfigError as err:
        raise mapping.error(f"as a mutualctr schema (share_embedding is share_vocab there, "
                            f"splitter separator): {err}") from None
    return FuxiCTRDataset(config, dataset_id, fmt, tuple(p for p in inputs if p is not None),
                          schema, tuple(mapping.notes))


def _field_text(field: Mapping[str, Any]) -> str:
    """A field as one flow mapping, without the keys at their schema defaults."""
    defaults = asdict(FieldSpec(name="default", type="categorical"))
    kept = {k: field[k] for k in defaults  # in FieldSpec's order
            if k in field and (k in ("name", "type") or field[k] != defaults[k])}
    return yaml.safe_dump(kept, default_flow_style=True, sort_keys=False, width=1 << 16).strip()


def schema_yaml(dataset: FuxiCTRDataset) -> str:
    """The equivalent mutualctr schema YAML: the notes and the ``data prepare`` command as
    comments, then the schema (fed to ``data prepare --schema`` it gives the same store)."""
    inputs = " ".join(str(p) for p in dataset.inputs)
    lines = [f"# mutualctr schema of FuxiCTR dataset {dataset.dataset_id!r} ({dataset.config})",
             f"# prepare: mutualctr data prepare --format {dataset.fmt} --schema THIS_FILE "
             f"--split files {inputs} --out STORE"]
    lines += [f"# note: {note}" for note in dataset.notes]
    header = {k: v for k, v in dataset.schema.items() if k != "fields"}
    lines.append(yaml.safe_dump(header, sort_keys=False).rstrip())
    lines.append("fields:")
    lines += [f"  - {_field_text(field)}" for field in dataset.schema["fields"]]
    return "\n".join(lines) + "\n"


def prepare_dataset(dataset: FuxiCTRDataset, out: Path, *, on_bad_row: OnBadRow = "error",
                    overwrite: bool = False, hash_buckets: int = 0) -> PrepareResult:
    """``data prepare`` of the dataset: its schema, its given files as the splits."""
    return prepare(dataset.inputs, out, dataset.fmt,
                   reader_options=dataset.reader_options(hash_buckets),
                   split=SplitOptions("files"), on_bad_row=on_bad_row, overwrite=overwrite)

"""Field schemas and the feature map that models are built from.

A :class:`Schema` describes *raw* input (which columns, of which type, how to encode them).
A :class:`FeatureMap` describes *encoded* input (vocabulary sizes, sequence lengths): it is what a
store's ``meta.json`` records and what every model's constructor takes.

Index conventions for categorical and sequence ids (field-local, per field):

* ``0`` is padding (only ever produced for sequence fields, masked out when pooling);
* ``1`` is the out-of-vocabulary id (values below the field's ``min_count`` in train, or unseen);
* ``2 ..`` are the kept values. A missing value is a token of its own (see the encoder).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FieldType = Literal["categorical", "numeric", "sequence"]
FIELD_TYPES: tuple[str, ...] = ("categorical", "numeric", "sequence")
PAD_ID = 0
OOV_ID = 1
BUCKETS: tuple[str, ...] = ("", "criteo")  # FieldSpec.bucket


# FieldSpec keys added after stores were made, with the value that means "not set"
ADDED_LATER: dict[str, Any] = {"share_vocab": "", "hash_buckets": 0, "bucket": "",
                               "fill_na": None}


@dataclass(frozen=True)
class FieldSpec:
    """One raw input column and how it is encoded."""

    name: str
    type: FieldType
    min_count: int = 1
    separator: str = "|"
    max_len: int = 0  # sequence fields: 0 means "longest in train"
    # another categorical or sequence field whose vocabulary this one uses (fitted on both
    # columns' training values), e.g. a history of items sharing the target item's ids, so a
    # model can look both up in one embedding table (FuxiCTR's ``share_embedding``)
    share_vocab: str = ""
    # a field with more than this many values kept in train is hashed into this many buckets
    # instead of getting one id per value (0: never); bounds its embedding table
    hash_buckets: int = 0
    # a categorical field of numbers bucketed before encoding: "criteo", BARS Criteo_x4's
    # floor(ln(x)^2) for x > 2, else int(x) (FuxiCTR's preprocess: convert_to_bucket)
    bucket: str = ""
    # numeric and bucketed fields: the number a missing value becomes (FuxiCTR's fill_na);
    # None keeps it missing (numeric: the train mean once standardised; bucketed: its own value)
    fill_na: float | None = None

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(
                f"field {self.name!r}: type must be one of {FIELD_TYPES}, got {self.type!r}"
            )
        if self.min_count < 1:
            raise ValueError(f"field {self.name!r}: min_count must be >= 1, got {self.min_count}")
        if self.max_len < 0:
            raise ValueError(f"field {self.name!r}: max_len must be >= 0, got {self.max_len}")
        if self.hash_buckets < 0:
            raise ValueError(f"field {self.name!r}: hash_buckets must be >= 0, got "
                             f"{self.hash_buckets}")
        if self.share_vocab and self.type == "numeric":
            raise ValueError(f"field {self.name!r}: a numeric field has no vocabulary to share")
        if self.share_vocab == self.name:
            raise ValueError(f"field {self.name!r}: share_vocab names the field itself")
        if self.bucket not in BUCKETS:
            raise ValueError(f"field {self.name!r}: bucket must be one of {BUCKETS}, got "
                             f"{self.bucket!r}")
        if self.bucket and self.type != "categorical":
            raise ValueError(f"field {self.name!r}: bucket makes numbers categorical; the field "
                             f"is {self.type}")
        if self.fill_na is not None and not (self.type == "numeric" or self.bucket):
            raise ValueError(f"field {self.name!r}: fill_na applies to numeric and bucketed "
                             "fields (a missing text value is a value of its own)")

    def to_dict(self) -> dict[str, Any]:
        """As recorded in ``meta.json``; no ``share_vocab``, ``hash_buckets``, ``bucket`` or
        ``fill_na`` key when unset, so schemas recorded before they existed still compare equal
        (a store built from them is reused)."""
        data = asdict(self)
        for key, default in ADDED_LATER.items():  # recorded only when set
            if data[key] == default:
                del data[key]
        return data


@dataclass(frozen=True)
class Schema:
    """Raw columns plus the label column."""

    fields: tuple[FieldSpec, ...]
    label: str

    def __post_init__(self) -> None:
        """Field names are unique; a ``share_vocab`` names another field of the schema that has
        a vocabulary (categorical or sequence) and owns it, i.e. shares none itself (one
        vocabulary per group, fitted on the union of the group's columns)."""
        repeated = sorted(n for n, k in Counter(f.name for f in self.fields).items() if k > 1)
        if repeated:
            raise ValueError(f"field names must be unique; repeated: {', '.join(repeated)}")
        by_name = {f.name: f for f in self.fields}
        for spec in self.fields:
            if not spec.share_vocab:
                continue
            owner = by_name.get(spec.share_vocab)
            if owner is None:
                raise ValueError(f"field {spec.name!r}: share_vocab {spec.share_vocab!r} is not "
                                 "a field of the schema")
            if owner.type == "numeric":
                raise ValueError(f"field {spec.name!r}: share_vocab {owner.name!r} is numeric "
                                 "and has no vocabulary")
            if owner.share_vocab:
                raise ValueError(f"field {spec.name!r}: share_vocab {owner.name!r} itself uses "
                                 f"the vocabulary of {owner.share_vocab!r}; name that one")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        return cls(fields=tuple(FieldSpec(**f) for f in data["fields"]), label=data["label"])


@dataclass(frozen=True)
class Feature:
    """One encoded input as a model sees it."""

    name: str
    type: FieldType
    vocab_size: int = 0  # categorical / sequence: number of ids including PAD and OOV
    max_len: int = 0  # sequence: padded length
    # the feature whose ids (and embedding rows) this one uses: a behaviour sequence of items
    # shares with the target item, so target attention (DIN) compares rows of one table
    share_with: str = ""


@dataclass(frozen=True)
class FeatureMap:
    """The encoded inputs, in the order a :class:`~mutualctr.data.batch.Batch` carries them.

    Batches carry categorical ids as one ``[B, n_categorical]`` tensor, numeric values as one
    ``[B, n_numeric]`` tensor and each sequence field as its own ``[B, max_len]`` tensor, each
    group in the order of ``features``.
    """

    features: tuple[Feature, ...] = field(default_factory=tuple)

    @property
    def categorical(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.type == "categorical")

    @property
    def numeric(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.type == "numeric")

    @property
    def sequence(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.type == "sequence")

    @property
    def num_fields(self) -> int:
        """Number of field embeddings a model receives (every feature is one field)."""
        return len(self.features)

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureMap:
        return cls(features=tuple(Feature(**f) for f in data["features"]))

"""The encoder: vocabularies with a min-count and numeric scalers, fitted on train rows only.

Categorical and sequence fields: a value seen at least ``min_count`` times in train gets its own
id; rarer and unseen values get the OOV id ``1``; ``0`` is padding (see ``data.schema``). The
missing value (the empty string, or null in integer columns, see ``readers.base``) is a token of
its own, kept whenever it occurs in train whatever its count. Kept values are numbered ``2..``
by decreasing train count, ties by value, so ids do not depend on chunking or row order.

Shared vocabularies: a field with ``share_vocab: OWNER`` has no vocabulary of its own. One
vocabulary is fitted for the owner and every field naming it, on the union of their train
tokens (counts summed, the owner's ``min_count``), and encodes all of them, so equal raw values
get equal ids (a behaviour history and its target item look up the same embedding rows); the
feature map records the owner as the sharer's ``share_with``.

Numeric fields: standardised with the train mean and standard deviation (population); a missing
value becomes ``0`` (the mean). Sequence fields are split on their separator, encoded token by
token and padded with ``0`` (or truncated) to ``max_len`` (``0`` in the schema: longest in train),
keeping the first tokens; a sequence column may also be a list array (its lists are the tokens;
an empty list encodes as all padding).

Hashed fields (production systems' answer to Criteo-size vocabularies): a field whose kept
train vocabulary would have more than ``hash_buckets`` values (the field's own setting, else
``data prepare --hash-buckets``) gets no vocabulary; each value ``v`` becomes id
``2 + stable_hash(v) mod hash_buckets``, so its table has ``hash_buckets + 2`` rows whatever the
data, and values never seen in train land in a bucket instead of OOV. Smaller fields keep their
vocabularies.

Fitting streams: :class:`EncoderFitter` keeps per-value counts (memory grows with vocabulary
sizes, not rows). A field that may be hashed stops counting as soon as its counts prove it will
be: once more than ``hash_buckets`` values have reached ``min_count`` its kept vocabulary can
only be larger, so its counts are dropped and it is hashed, with the same result as counting to
the end. Its memory then stays near what that proof took instead of growing with the data, which
bounds a Criteo-size prepare with hashing (docs/benchmarks.md, "Criteo size"). The fitted
:class:`Encoder` serialises to JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.readers.base import ParsedChunk
from mutualctr.data.schema import OOV_ID, PAD_ID, Feature, FeatureMap, FieldSpec, Schema

MISSING_TOKEN = ""
FIRST_VALUE_ID = 2
MIN_MERGE = 1 << 16  # partial counts are merged once they hold twice the merged size or this


@dataclass
class _Counts:
    """Running value counts of one field: partial (values, counts) pairs, merged when large.

    Merging once the parts hold twice the distinct values of the last merge keeps memory within
    a few times the vocabulary, whatever the number of rows, at an amortised linear cost. With a
    ``hash_limit`` (the field's hash buckets), each merge checks whether more than that many
    values have reached ``min_count``; once they have, the field is :attr:`hashed` and the
    counts are dropped and no longer kept.
    """

    min_count: int = 1
    hash_limit: int = 0
    parts: list[pa.Table] = field(default_factory=list)
    entries: int = 0
    merged_size: int = 0
    hashed: bool = False
    value_type: pa.DataType = field(default_factory=pa.string)

    def add(self, values: pa.Array) -> None:
        if self.hashed:
            return
        if pa.types.is_dictionary(values.type):
            counts = np.bincount(values.indices.to_numpy(zero_copy_only=False),
                                 minlength=len(values.dictionary))
            seen = counts > 0
            part = pa.table({"value": values.dictionary.filter(pa.array(seen)),
                             "count": pa.array(counts[seen], pa.int64())})
        else:
            counted = pc.value_counts(values).flatten()
            part = pa.table({"value": counted[0], "count": counted[1].cast(pa.int64())})
        self.parts.append(part)
        self.value_type = part.schema.field("value").type
        self.entries += part.num_rows
        if self.entries > max(2 * self.merged_size, MIN_MERGE) and len(self.parts) > 1:
            self.parts = [self.merged()]
            self.entries = self.merged_size = self.parts[0].num_rows
            if self.hash_limit and self.kept_at_least() > self.hash_limit:
                self.hashed, self.parts, self.entries = True, [], 0

    def kept_at_least(self) -> int:
        """Values counted ``min_count`` times or more so far (in the last merge)."""
        counts = self.parts[0]["count"] if self.parts else pa.array([], pa.int64())
        return pc.sum(pc.greater_equal(counts, self.min_count).cast(pa.int64())).as_py() or 0

    def kept_values(self) -> pa.Array:
        """The vocabulary: values counted ``min_count`` times or more, and the missing token
        whatever its count, by decreasing count, ties by value."""
        table = self.merged()
        values = table["value"]
        missing = (
            pc.equal(values, MISSING_TOKEN) if pa.types.is_string(values.type)
            else values.is_null()
        )
        keep = pc.or_(pc.greater_equal(table["count"], self.min_count), missing)
        kept = table.filter(keep).sort_by([("count", "descending"), ("value", "ascending")])
        return kept["value"].combine_chunks()

    def merged(self) -> pa.Table:
        if not self.parts:
            return pa.table({"value": pa.array([], pa.string()), "count": pa.array([], pa.int64())})
        if len(self.parts) == 1:
            return self.parts[0]
        table = pa.concat_tables(self.parts).group_by("value").aggregate([("count", "sum")])
        return table.rename_columns(["value", "count"])


def with_dictionaries(chunk: ParsedChunk, schema: Schema) -> ParsedChunk:
    """The chunk with its categorical columns dictionary-encoded (nulls as a value of their
    own), so that counting (a bincount) and encoding (a lookup of the chunk's distinct values)
    hash each row once instead of twice."""
    columns = dict(chunk.columns)
    for spec in schema.fields:
        if spec.type == "categorical":
            columns[spec.name] = pc.dictionary_encode(columns[spec.name], null_encoding="encode")
    return replace(chunk, columns=columns)


def _tokens(col: pa.Array, separator: str) -> tuple[pa.Array, np.ndarray]:
    """A sequence column's tokens (flat) and the number of tokens per row."""
    lists = col if pa.types.is_list(col.type) else pc.split_pattern(col, separator)
    lengths = pc.list_value_length(lists).fill_null(0)
    return pc.list_flatten(lists), lengths.to_numpy(zero_copy_only=False)


_HASH_MULTIPLIER = 0x100000001B3  # FNV-1's 64-bit prime
_HASH_OFFSET = 0xCBF29CE484222325  # FNV-1's 64-bit offset basis (the empty text's hash is not 0)
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # splitmix64's finaliser constants


def stable_hash(values: pa.Array) -> np.ndarray:
    """A uint64 hash of each value's UTF-8 text, the same on every machine and run (Python's
    ``hash`` is salted per process): the polynomial ``sum_i byte_i * P^i mod 2^64`` over the
    bytes, plus the length and FNV's offset basis, through splitmix64's finaliser. Vectorised
    over the Arrow buffers; null is hashed as the missing token."""
    text = pc.cast(values, pa.large_string()).fill_null(MISSING_TOKEN)
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    offsets = np.frombuffer(text.buffers()[1], np.int64)[text.offset:text.offset + len(text) + 1]
    data = np.frombuffer(text.buffers()[2] or b"", np.uint8)[offsets[0]:offsets[-1]]
    lengths = np.diff(offsets)
    if len(lengths) == 0:
        return np.zeros(0, np.uint64)
    starts = offsets[:-1] - offsets[0]
    position = np.arange(len(data)) - np.repeat(starts, lengths)
    powers = np.array([pow(_HASH_MULTIPLIER, i, 1 << 64)
                       for i in range(max(int(lengths.max(initial=0)), 1))], np.uint64)
    terms = data.astype(np.uint64) * powers[position]
    sums = np.zeros(len(lengths), np.uint64)
    nonempty = lengths > 0
    if nonempty.any():
        sums[nonempty] = np.add.reduceat(terms, starts[nonempty])
    h = sums + lengths.astype(np.uint64) + np.uint64(_HASH_OFFSET)
    h ^= h >> np.uint64(30)
    h *= np.uint64(_MIX[0])
    h ^= h >> np.uint64(27)
    h *= np.uint64(_MIX[1])
    h ^= h >> np.uint64(31)
    return h


def vocabulary_of(spec: FieldSpec) -> str:
    """The field whose vocabulary encodes ``spec``: its ``share_vocab`` owner, or itself."""
    return spec.share_vocab or spec.name



class VocabularyLookup:
    """Each value's id in one vocabulary (``OOV_ID`` where absent), with the vocabulary's index
    built once. ``pc.index_in`` builds a hash table of its value set on every call, a cost that
    grows with the vocabulary whatever the batch: at 45M Criteo rows (millions of values per
    large field) encoding slowed to a fraction of its 10M-row speed. Here the vocabulary's
    :func:`stable_hash` values are sorted once; a batch is hashed, looked up by binary search
    and checked for equality with the value found, so a hash collision cannot map a value to
    another's id. A vocabulary whose hashes collide (not expected at 64 bits) keeps
    ``pc.index_in``."""

    def __init__(self, vocabulary: pa.Array) -> None:
        self.vocabulary = vocabulary
        hashes = stable_hash(vocabulary)
        self.order = np.argsort(hashes, kind="stable")
        self.sorted = hashes[self.order]
        self.exact = len(hashes) > 0 and vocabulary.null_count == 0 and bool(
            (self.sorted[1:] != self.sorted[:-1]).all())

    def ids(self, values: pa.Array) -> np.ndarray:
        if not self.exact or values.null_count:
            index = pc.index_in(values, value_set=self.vocabulary)
            found = index.fill_null(OOV_ID - FIRST_VALUE_ID).to_numpy(zero_copy_only=False)
            return (found + FIRST_VALUE_ID).astype(np.int32)
        hashes = stable_hash(values)
        at = np.searchsorted(self.sorted, hashes).clip(max=len(self.sorted) - 1)
        position = self.order[at]
        same = self.sorted[at] == hashes
        same &= pc.equal(pc.cast(values, self.vocabulary.type),
                         self.vocabulary.take(pa.array(position))).to_numpy(zero_copy_only=False)
        return np.where(same, position + FIRST_VALUE_ID, OOV_ID).astype(np.int32)

class EncoderFitter:
    """Accumulates train statistics chunk by chunk; :meth:`finish` returns the :class:`Encoder`."""

    def __init__(self, schema: Schema, hash_buckets: int = 0) -> None:
        self.schema = schema
        self.hash_buckets = hash_buckets  # for fields without their own
        self.counts = {
            f.name: _Counts(f.min_count, f.hash_buckets or hash_buckets)
            for f in schema.fields if f.type != "numeric" and not f.share_vocab
        }
        self.longest = dict.fromkeys((f.name for f in schema.fields if f.type == "sequence"), 0)
        self.moments = {f.name: np.zeros(3) for f in schema.fields if f.type == "numeric"}

    def update(self, chunk: ParsedChunk) -> None:
        for spec in self.schema.fields:
            col = chunk.columns[spec.name]
            if spec.type == "categorical":
                self.counts[vocabulary_of(spec)].add(col)
            elif spec.type == "sequence":
                tokens, lengths = _tokens(col, spec.separator)
                self.counts[vocabulary_of(spec)].add(tokens)
                self.longest[spec.name] = max(self.longest[spec.name], int(lengths.max(initial=0)))
            else:
                present = col[~np.isnan(col)]
                self.moments[spec.name] += (len(present), present.sum(), np.square(present).sum())

    def finish(self) -> Encoder:
        vocabs, max_lens, scalers, hashed = {}, {}, {}, {}
        for spec in self.schema.fields:
            if spec.type == "numeric":
                n, total, squares = self.moments[spec.name]
                mean = total / n if n else 0.0
                std = float(np.sqrt(max(squares / n - mean**2, 0.0))) if n else 0.0
                scalers[spec.name] = (float(mean), std if std > 0 else 1.0)
                continue
            if spec.type == "sequence":
                max_lens[spec.name] = spec.max_len or max(self.longest[spec.name], 1)
            if spec.share_vocab:
                continue
            buckets = spec.hash_buckets or self.hash_buckets
            counts = self.counts[spec.name]
            kept = None if counts.hashed else counts.kept_values()
            if kept is None or (buckets and len(kept) > buckets):
                hashed[spec.name] = buckets
                vocabs[spec.name] = pa.array([], counts.value_type)
            else:
                vocabs[spec.name] = kept
        return Encoder(self.schema, vocabs, max_lens, scalers, hashed)


class Encoder:
    """Turns :class:`ParsedChunk` s into :class:`SplitArrays` (see the module docstring).

    ``vocabs`` holds one vocabulary per owner: fields that share one have no entry.
    ``hashed`` maps an owner hashed into buckets to their number (its vocabulary is empty).
    """

    def __init__(
        self, schema: Schema, vocabs: dict[str, pa.Array], max_lens: dict[str, int],
        scalers: dict[str, tuple[float, float]], hashed: dict[str, int] | None = None,
    ) -> None:
        self.schema = schema
        self.hashed = hashed or {}
        self.vocabs = vocabs
        self._lookups: dict[str, VocabularyLookup] = {}  # built on first use, then kept
        self.max_lens = max_lens
        self.scalers = scalers
        self.vocabulary_of = {f.name: vocabulary_of(f) for f in schema.fields}

    @property
    def feature_map(self) -> FeatureMap:
        features = []
        for spec in self.schema.fields:
            if spec.type == "numeric":
                features.append(Feature(spec.name, "numeric"))
            else:
                owner = vocabulary_of(spec)
                size = FIRST_VALUE_ID + self.hashed.get(owner, len(self.vocabs[owner]))
                features.append(Feature(spec.name, spec.type, size,
                                        self.max_lens.get(spec.name, 0), spec.share_vocab))
        return FeatureMap(tuple(features))

    def _ids(self, name: str, values: pa.Array) -> np.ndarray:
        if pa.types.is_dictionary(values.type):
            indices = values.indices.to_numpy(zero_copy_only=False)
            return self._ids(name, values.dictionary)[indices]
        owner = self.vocabulary_of[name]
        if owner in self.hashed:
            buckets = np.uint64(self.hashed[owner])
            return (stable_hash(values) % buckets).astype(np.int32) + FIRST_VALUE_ID
        if owner not in self._lookups:
            self._lookups[owner] = VocabularyLookup(self.vocabs[owner])
        return self._lookups[owner].ids(values)

    def _sequence(self, spec: FieldSpec, col: pa.Array) -> np.ndarray:
        tokens, lengths = _tokens(col, spec.separator)
        length = self.max_lens[spec.name]
        out = np.full((len(lengths), length), PAD_ID, dtype=np.int32)
        # each token's place in the flat output: its row's first slot plus its index in the row
        # (built in place: behaviour histories make many tokens per chunk)
        rows = np.arange(len(lengths))
        place = np.arange(len(tokens), dtype=np.int64)
        place += np.repeat(rows * length - (np.cumsum(lengths) - lengths), lengths)
        if (lengths > length).any():  # keep each row's first max_len tokens
            fits = place < np.repeat((rows + 1) * length, lengths)
            place, tokens = place[fits], tokens.filter(pa.array(fits))
        out.reshape(-1)[place] = self._ids(spec.name, tokens)
        return out

    def _numeric(self, spec: FieldSpec, col: np.ndarray) -> np.ndarray:
        mean, std = self.scalers[spec.name]
        return np.nan_to_num((col - mean) / std, nan=0.0).astype(np.float32)

    def encode(self, chunk: ParsedChunk) -> SplitArrays:
        n = len(chunk)
        categorical, numeric, sequences = [], [], []
        for spec in self.schema.fields:
            col = chunk.columns[spec.name]
            if spec.type == "categorical":
                categorical.append(self._ids(spec.name, col))
            elif spec.type == "numeric":
                numeric.append(self._numeric(spec, col))
            else:
                sequences.append(self._sequence(spec, col))

        def stack(columns: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.stack(columns, axis=1) if columns else np.zeros((n, 0), dtype=dtype)

        return SplitArrays(
            categorical=stack(categorical, np.int32),
            numeric=stack(numeric, np.float32),
            sequences=tuple(sequences),
            label=chunk.label.astype(np.float32),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema.to_dict(),
            "vocabs": {
                name: {"type": str(vocab.type), "values": vocab.to_pylist()}
                for name, vocab in self.vocabs.items()
            },
            "max_lens": self.max_lens,
            "scalers": {name: list(v) for name, v in self.scalers.items()},
            **({"hashed": self.hashed} if self.hashed else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoder:
        return cls(
            schema=Schema.from_dict(data["schema"]),
            vocabs={
                name: pa.array(v["values"], pa.type_for_alias(v["type"]))
                for name, v in data["vocabs"].items()
            },
            max_lens={name: int(v) for name, v in data["max_lens"].items()},
            scalers={name: (float(v[0]), float(v[1])) for name, v in data["scalers"].items()},
            hashed={name: int(n) for name, n in data.get("hashed", {}).items()},
        )

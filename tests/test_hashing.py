"""Fields hashed into a fixed number of buckets (``data prepare --hash-buckets``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mutualctr.cli import main
from mutualctr.data import encoder
from mutualctr.data.encoder import FIRST_VALUE_ID, Encoder, EncoderFitter, stable_hash
from mutualctr.data.readers.base import BadRows
from mutualctr.data.readers.criteo import CriteoReader
from mutualctr.data.store import EncodedStore
from mutualctr.data.synthetic import generate_criteo_synthetic

MASK = (1 << 64) - 1


def reference_hash(text: str) -> int:
    """The documented hash in plain Python integers: sum_i byte_i * P^i mod 2^64, plus the
    length and FNV's offset basis, through splitmix64's finaliser."""
    data = text.encode()
    h = sum(b * pow(0x100000001B3, i, 1 << 64) for i, b in enumerate(data))
    h = (h + len(data) + 0xCBF29CE484222325) & MASK
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & MASK
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & MASK
    return h ^ (h >> 31)


def test_stable_hash_is_the_documented_function_of_the_text() -> None:
    texts = ["", "a", "68fd1e64", "05db9164", "a much longer value than the others é"]
    got = stable_hash(pa.array(texts))
    assert got.tolist() == [reference_hash(t) for t in texts]
    # a slice, a chunked array, integers and null hash as their text (null: the missing token)
    assert stable_hash(pa.array(["x", "a"]).slice(1)).tolist() == [reference_hash("a")]
    assert stable_hash(pa.chunked_array([["a"], ["", "b"]])).tolist() == [
        reference_hash(t) for t in ("a", "", "b")]
    assert stable_hash(pa.array([17, None])).tolist() == [reference_hash("17"),
                                                          reference_hash("")]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[EncodedStore, EncodedStore]:
    root = tmp_path_factory.mktemp("hashing")
    raw = root / "raw.txt"
    generate_criteo_synthetic(raw, 3000, seed=0)
    base = ["data", "prepare", "--format", "criteo", str(raw), "--min-count", "1"]
    assert main([*base, "--out", str(root / "plain")]) == 0
    assert main([*base, "--out", str(root / "hashed"), "--hash-buckets", "50"]) == 0
    return EncodedStore.open(root / "plain"), EncodedStore.open(root / "hashed")


def test_large_fields_are_hashed_and_small_ones_keep_their_vocabularies(
    stores: tuple[EncodedStore, EncodedStore],
) -> None:
    plain, hashed = stores
    sizes = {f.name: f.vocab_size for f in plain.feature_map.categorical}
    hashed_sizes = {f.name: f.vocab_size for f in hashed.feature_map.categorical}
    large = {name for name, size in sizes.items() if size - FIRST_VALUE_ID > 50}
    assert large and len(large) < len(sizes)
    assert {name for name, size in hashed_sizes.items() if size != sizes[name]} == large
    assert all(hashed_sizes[name] == 50 + FIRST_VALUE_ID for name in large)
    train = hashed.split("train").categorical
    assert train.max(axis=0).max() < 50 + FIRST_VALUE_ID and train.min() >= FIRST_VALUE_ID
    # a hashed field's id is 2 + hash(value) mod 50: check one column against the raw text
    encoder = hashed.encoder
    name = sorted(large)[0]
    values = pa.array(["05db9164", "", "never-seen-value"])
    assert encoder._ids(name, values).tolist() == [
        FIRST_VALUE_ID + reference_hash(v) % 50 for v in ("05db9164", "", "never-seen-value")]


def test_the_hashed_encoder_round_trips_and_the_store_trains(
    stores: tuple[EncodedStore, EncodedStore], tmp_path: Path,
) -> None:
    _, hashed = stores
    again = Encoder.from_dict(json.loads(json.dumps(hashed.encoder.to_dict())))
    assert again.hashed == hashed.encoder.hashed and again.feature_map == hashed.feature_map
    out = tmp_path / "run"
    assert main(["train", "--data", str(hashed.root), "--model", "deepfm", "--out", str(out),
                 "--epochs", "1", "--set", "train.batch_size=500"]) == 0
    assert 0.0 <= json.loads((out / "metrics.json").read_text())["test"]["deepfm"]["auc"] <= 1


def test_a_negative_bucket_count_is_refused() -> None:
    from mutualctr.data.schema import FieldSpec

    with pytest.raises(ValueError, match="hash_buckets must be >= 0"):
        FieldSpec("c", "categorical", hash_buckets=-1)


def test_vocabulary_lookup_gives_index_in_s_ids_for_known_unknown_and_dictionary_values() -> None:
    from mutualctr.data.encoder import OOV_ID, VocabularyLookup

    rng = np.random.default_rng(0)
    vocabulary = pa.array([f"{v:x}" for v in rng.choice(10**6, 5000, replace=False)])
    values = pa.array([*rng.choice(vocabulary.to_pylist(), 300).tolist(), "absent", "", "0zz"])
    lookup = VocabularyLookup(vocabulary)
    expected = pc.index_in(values, value_set=vocabulary).to_numpy(zero_copy_only=False)
    expected = np.where(np.isnan(expected), OOV_ID, expected + FIRST_VALUE_ID)
    np.testing.assert_array_equal(lookup.ids(values), expected)
    assert lookup.ids(values)[-3:].tolist() == [OOV_ID] * 3
    # a hash collision (forced: "other"'s entry given "probe"'s hash) does not map a value to
    # another's id: the texts are compared
    collided = VocabularyLookup(pa.array(["other"]))
    collided.sorted = stable_hash(pa.array(["probe"]))
    assert collided.ids(pa.array(["probe", "other"])).tolist() == [OOV_ID, OOV_ID]


def test_a_field_stops_counting_once_it_must_be_hashed_and_ends_as_if_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = tmp_path / "raw.txt"
    generate_criteo_synthetic(raw, 3000, seed=0)
    reader = CriteoReader(min_count=1)
    (whole,) = reader.read(raw, BadRows("error"))
    rows = np.arange(len(whole))
    chunks = [whole.take((rows >= start) & (rows < start + 200)) for start in range(0, 3000, 200)]

    def fit() -> EncoderFitter:
        fitter = EncoderFitter(reader.schema, hash_buckets=50)
        for chunk in chunks:
            fitter.update(chunk)
        return fitter

    counted = fit()  # counts merge at 65,536 entries: at this size every field counts to the end
    assert not any(c.hashed for c in counted.counts.values())
    monkeypatch.setattr(encoder, "MIN_MERGE", 64)  # merge, and so check, after every few chunks
    early = fit()
    stopped = {name for name, c in early.counts.items() if c.hashed}
    assert stopped and all(not early.counts[name].parts for name in stopped)
    # the same encoder as counting every row: a field stopped early is one that is hashed
    full, short = counted.finish(), early.finish()
    assert stopped <= set(full.hashed)
    assert short.to_dict() == full.to_dict()

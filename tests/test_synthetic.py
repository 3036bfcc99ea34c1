"""The ground-truth synthetic generator: format, determinism, prefix property, calibration."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mutualctr.data.synthetic import (
    BLOCK_ROWS,
    REGIMES,
    VOCAB_SIZES,
    build_ground_truth,
    draw_features,
    generate_criteo_synthetic,
    hex_vocabulary,
)

ROWS = 2 * BLOCK_ROWS + 3000  # crosses a block boundary
HEX = re.compile(r"[0-9a-f]{8}")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("synth")
    out, probs = folder / "train.txt", folder / "probs.txt"
    generate_criteo_synthetic(out, ROWS, seed=3, probs_out=probs)
    return out, probs


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_format_is_criteo(generated: tuple[Path, Path]) -> None:
    rows = _rows(generated[0])
    assert len(rows) == ROWS
    assert {len(r) for r in rows} == {40}
    assert {r[0] for r in rows} == {"0", "1"}
    ints = [v for r in rows for v in r[1:14]]
    cats = [v for r in rows for v in r[14:]]
    assert all(v == "" or (v.isdigit()) for v in ints)
    assert all(v == "" or HEX.fullmatch(v) for v in cats)
    assert 0 < ints.count("") < len(ints)
    assert 0 < cats.count("") < len(cats)
    # C9 has a vocabulary of 10 and no missing values; C3 has 100,000 values following a power law.
    assert len({r[14 + 8] for r in rows}) <= VOCAB_SIZES[8]
    c3 = [r[14 + 2] for r in rows if r[14 + 2]]
    _, counts = np.unique(c3, return_counts=True)
    assert len(counts) > 2000 and counts.max() > 100 * np.median(counts)


def test_probabilities_match_labels(generated: tuple[Path, Path]) -> None:
    labels = np.array([int(r[0]) for r in _rows(generated[0])])
    probs = np.loadtxt(generated[1])
    assert probs.shape == (ROWS,)
    assert 0.23 < labels.mean() < 0.27
    assert abs(probs.mean() - labels.mean()) < 0.01
    # Labels drawn from the probabilities: high-probability rows click more often.
    assert 0.7 < roc_auc_score(labels, probs) < 0.9
    top = probs > np.quantile(probs, 0.9)
    assert abs(labels[top].mean() - probs[top].mean()) < 0.03


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_criteo_synthetic(a, 500, seed=11)
    build_ground_truth.cache_clear()  # the hidden model itself is redrawn identically
    generate_criteo_synthetic(b, 500, seed=11)
    generate_criteo_synthetic(c, 500, seed=12)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_first_rows_do_not_depend_on_row_count(
    generated: tuple[Path, Path], tmp_path: Path
) -> None:
    short, short_probs = tmp_path / "short.txt", tmp_path / "short_probs.txt"
    generate_criteo_synthetic(short, BLOCK_ROWS + 10, seed=3, probs_out=short_probs)
    long_lines = generated[0].read_text().splitlines()
    short_lines = short.read_text().splitlines()
    assert short_lines == long_lines[: BLOCK_ROWS + 10]
    long_probs = generated[1].read_text().splitlines()
    assert short_probs.read_text().splitlines() == long_probs[: BLOCK_ROWS + 10]


def test_ground_truth_is_calibrated_to_25_percent() -> None:
    truth = build_ground_truth(5)
    feats = draw_features(truth, np.random.default_rng(99), 50_000)
    prob = 1.0 / (1.0 + np.exp(-truth.logit(feats)))
    assert abs(prob.mean() - 0.25) < 0.01


def test_fm_term_is_the_sum_over_field_pairs() -> None:
    truth = build_ground_truth(5)
    feats = draw_features(truth, np.random.default_rng(1), 4)
    fm = truth.terms(feats)["fm"]
    for row in range(4):
        fields = zip(truth.fm_fields, truth.fm_vectors, strict=True)
        vectors = [v[feats.cat[row, f]] for f, v in fields]
        expected = sum(a @ b for a, b in itertools.combinations(vectors, 2))
        assert fm[row] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_hex_vocabulary_is_distinct() -> None:
    vocab = hex_vocabulary(100_000, np.uint32(12345)).to_pylist()
    assert len(set(vocab)) == 100_000
    assert all(HEX.fullmatch(v) for v in vocab[:1000])


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows"):
        generate_criteo_synthetic(tmp_path / "x", 0, seed=1)
    with pytest.raises(ValueError, match="seed"):
        generate_criteo_synthetic(tmp_path / "x", 10, seed=-1)


def test_default_regime_rows_are_unchanged(tmp_path: Path) -> None:
    """The default regime draws exactly the rows it drew before regimes existed (the digest of
    2,000 rows of seed 3), so stores and results made from it stay reproducible."""
    generate_criteo_synthetic(tmp_path / "rows.txt", 2000, seed=3)
    digest = hashlib.sha256((tmp_path / "rows.txt").read_bytes()).hexdigest()
    assert digest == "ec1b23f3e2ea0fd0b4cfd9797fe29830214fd48ad59fa6d7b92a6574fa60aedc"


def test_criteo_regime_scales_only_id_like_fields() -> None:
    sizes = REGIMES["criteo"].vocab_sizes
    assert sizes[2] == 3_000_000  # C3: 100,000 values x 30
    assert sizes[0] == 43_800  # C1: 1,460 x 30
    assert sizes[8] == 10 and sizes[4] == 305  # C9 and C5 keep their few values
    assert REGIMES["default"].vocab_sizes == VOCAB_SIZES


def test_criteo_regime_puts_rows_on_rarely_seen_ids() -> None:
    """In 3.2M training rows (a 4M-row store), the share of a row's ID values that are expected
    to occur at most 5 times, from the Zipf probabilities themselves: what an embedding can
    memorise but not generalise from. Several times the default regime's."""
    rows, fields = 3_200_000, [f for f, size in enumerate(VOCAB_SIZES) if size >= 10_000]
    rare_share = {}
    for regime in ("default", "criteo"):
        truth = build_ground_truth(7, regime)
        probs = [np.diff(truth.cdfs[f], prepend=0.0) for f in fields]
        rare_share[regime] = np.mean([p[rows * p <= 5].sum() for p in probs])
        feats = draw_features(truth, np.random.default_rng(1), 20_000)
        assert abs((1.0 / (1.0 + np.exp(-truth.logit(feats)))).mean() - 0.25) < 0.01
    assert rare_share["default"] < 0.03 < 0.08 < rare_share["criteo"]


def test_unknown_regime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown regime 'avazu'"):
        generate_criteo_synthetic(tmp_path / "x", 10, seed=1, regime="avazu")

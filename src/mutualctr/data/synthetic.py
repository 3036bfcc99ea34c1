"""Criteo-format click logs drawn from a hidden ground-truth model (``mutualctr data synth``).

Each row is ``label, I1..I13, C1..C26`` (tab-separated, no header), as in Criteo's Kaggle
``train.txt``: integer fields are counts (some heavy-tailed, some missing), categorical fields are
8-hex-digit hashed strings (some missing), missing values are empty strings. The labels are drawn
from a known click probability, which can be written next to the file so the Bayes-optimal AUC of
any split (the ceiling no model can beat) is known.

The hidden model (all parameters drawn from ``seed``)::

    logit = b + s1 * first_order + s2 * fm + s3 * cross + s4 * deep

* ``first_order``: one weight per categorical value (a missing value is a token of its own) plus
  one slope per standardised integer field ``z = (log1p(x) - mean) / std`` (and a weight when it
  is missing);
* ``fm``: low-rank pairwise interactions among 14 categorical fields,
  ``sum_{f<g} <v_f, v_g>`` with rank-4 value vectors, exactly what FM-type models represent
  (Rendle, 2010, eq. 1);
* ``cross``: integer-by-categorical products ``z_j * u_f`` and one three-way product of scalar
  value factors, the bounded-degree feature crosses of Deep & Cross (Wang et al., 2017, eq. 3);
* ``deep``: a random one-hidden-layer ReLU network over small value embeddings of 6 categorical
  fields and 3 integer fields, something only a deep component fits well.

Each term is rescaled to a fixed standard deviation and the intercept ``b`` is solved so the mean
click probability is 25%, both on a calibration sample drawn from the seed. Categorical values
follow power laws (Zipf, exponents 1.05 to 1.35) over vocabularies of 10 to 100,000 values.

A :class:`Regime` scales that picture. ``default`` is the one above: models keep improving for
several epochs on a few million rows. ``criteo`` reproduces what makes deep CTR models on real
Criteo reach their best validation AUC after one epoch and fall after it (the "one-epoch"
overfitting, Zhang et al., CIKM 2022): ID-like vocabularies 30 times larger (3M values in the
largest field), so that most values are seen only a handful of times, each carrying its own
first-order effect and interaction vectors that an embedding can memorise but not generalise.

Rows are generated in blocks of :data:`BLOCK_ROWS`, each from its own random stream seeded by
``(seed, block index)``, so the first N rows do not depend on how many rows are asked for.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mutualctr.files import atomic_path

BLOCK_ROWS = 16384
TARGET_CTR = 0.25
CALIBRATION_ROWS = 65536
N_INT = 13

# Vocabulary size and missing rate of C1..C26 (missing rates as in Criteo's Kaggle train.txt).
VOCAB_SIZES = (
    1460, 583, 100000, 52000, 305, 24, 12517, 633, 10, 93145, 5683, 81000, 3194,
    27, 14992, 64000, 10, 5652, 2173, 12, 71000, 18, 15, 28600, 105, 31000,
)
CAT_MISSING = (
    0.0, 0.0, 0.03, 0.03, 0.0, 0.12, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.0,
    0.0, 0.0, 0.03, 0.0, 0.0, 0.44, 0.44, 0.03, 0.76, 0.0, 0.03, 0.44, 0.44,
)
# I1..I13: counts ~ Poisson(exp(mean + std * g)), g a standard normal shared in part across the
# row's fields (an "activity" factor); large std gives heavy tails.
INT_LOG_MEAN = (0.5, 2.0, 1.5, 1.2, 8.0, 4.0, 1.5, 2.5, 4.0, 0.0, 0.5, -0.5, 1.5)
INT_LOG_STD = (1.0, 1.5, 1.2, 1.0, 1.5, 1.8, 1.6, 0.8, 1.4, 0.8, 1.0, 1.2, 1.2)
INT_MISSING = (0.45, 0.0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.0005, 0.04, 0.45, 0.04, 0.77, 0.22)
INT_ACTIVITY_WEIGHT = 0.6

# Standard deviation of each logit term after rescaling.
TERM_STD = {"first_order": 0.8, "fm": 0.7, "cross": 0.45, "deep": 0.6}


@dataclass(frozen=True)
class Regime:
    """How large and heavy-tailed the categorical fields are.

    ``vocab_scale`` multiplies the vocabulary of every ID-like field (at least
    ``ID_FIELD_MIN_VOCAB`` values); low-cardinality fields (device type, a handful of
    categories) keep their size, as they do in real logs.
    """

    name: str
    vocab_scale: int = 1

    @property
    def vocab_sizes(self) -> tuple[int, ...]:
        return tuple(
            size * self.vocab_scale if size >= ID_FIELD_MIN_VOCAB else size
            for size in VOCAB_SIZES
        )


ID_FIELD_MIN_VOCAB = 1000
REGIMES = {"default": Regime("default"), "criteo": Regime("criteo", vocab_scale=30)}
FM_FIELDS, FM_RANK = 14, 4
CROSS_PAIRS = 3  # (integer field, categorical field) products
DEEP_CAT_FIELDS, DEEP_INT_FIELDS, DEEP_EMBED, DEEP_HIDDEN = 6, 3, 2, 32

_STREAM_TRUTH, _STREAM_CALIBRATION, _STREAM_BLOCK = 0, 1, 2
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class Features:
    """Raw features of a block: categorical value ranks (missing = vocab size) and counts."""

    cat: np.ndarray  # [n, 26] int64; the field's vocabulary size marks a missing value
    counts: np.ndarray  # [n, 13] int64
    int_missing: np.ndarray  # [n, 13] bool


@dataclass(frozen=True)
class GroundTruth:
    """The hidden model's parameters; every per-value table has one extra row for "missing"."""

    vocab_sizes: tuple[int, ...]
    cdfs: tuple[np.ndarray, ...]
    first_weights: tuple[np.ndarray, ...]
    int_slopes: np.ndarray  # [13]
    int_missing_weights: np.ndarray  # [13]
    fm_fields: np.ndarray
    fm_vectors: tuple[np.ndarray, ...]
    cross_pairs: np.ndarray  # [CROSS_PAIRS, 2]: (integer field, categorical field)
    cross_factors: tuple[np.ndarray, ...]
    triple_fields: np.ndarray  # [3]
    triple_factors: tuple[np.ndarray, ...]
    deep_cat_fields: np.ndarray
    deep_int_fields: np.ndarray
    deep_embeddings: tuple[np.ndarray, ...]
    deep_w1: np.ndarray
    deep_b1: np.ndarray
    deep_w2: np.ndarray
    hash_salts: np.ndarray  # [26] uint32
    z_mean: np.ndarray  # [13], set by calibration
    z_std: np.ndarray
    term_scales: dict[str, float]
    intercept: float

    def standardised_counts(self, feats: Features) -> np.ndarray:
        """``(log1p(x) - mean) / std`` per integer field, 0 where missing."""
        z = (np.log1p(feats.counts) - self.z_mean) / self.z_std
        return np.where(feats.int_missing, 0.0, z)

    def terms(self, feats: Features) -> dict[str, np.ndarray]:
        """The four unscaled logit terms of the module docstring, each of shape [n]."""
        cat, z = feats.cat, self.standardised_counts(feats)
        first = sum(w[cat[:, f]] for f, w in enumerate(self.first_weights))
        first = first + z @ self.int_slopes + feats.int_missing @ self.int_missing_weights
        pairs = zip(self.fm_fields, self.fm_vectors, strict=True)
        v = np.stack([vec[cat[:, f]] for f, vec in pairs], axis=1)
        fm = 0.5 * ((v.sum(axis=1) ** 2).sum(axis=1) - (v**2).sum(axis=(1, 2)))
        crosses = zip(self.cross_pairs, self.cross_factors, strict=True)
        triple = zip(self.triple_fields, self.triple_factors, strict=True)
        cross = sum(z[:, j] * u[cat[:, f]] for (j, f), u in crosses)
        cross = cross + np.prod([a[cat[:, f]] for f, a in triple], axis=0)
        x = np.concatenate(
            [e[cat[:, f]] for f, e in zip(self.deep_cat_fields, self.deep_embeddings, strict=True)]
            + [z[:, self.deep_int_fields]],
            axis=1,
        )
        deep = np.maximum(x @ self.deep_w1 + self.deep_b1, 0.0) @ self.deep_w2
        return {"first_order": first, "fm": fm, "cross": cross, "deep": deep}

    def logit(self, feats: Features) -> np.ndarray:
        terms = self.terms(feats)
        return self.intercept + sum(self.term_scales[k] * terms[k] for k in TERM_STD)


def _zipf_cdf(size: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def draw_features(truth: GroundTruth, rng: np.random.Generator, n: int) -> Features:
    """Draw ``n`` rows of raw features; the order of random draws is fixed (prefix property)."""
    sizes = truth.vocab_sizes
    uniform = rng.random((n, len(sizes)))
    missing = rng.random((n, len(sizes))) < np.asarray(CAT_MISSING)
    cat = np.empty((n, len(sizes)), dtype=np.int64)
    for f, cdf in enumerate(truth.cdfs):
        ranks = np.minimum(np.searchsorted(cdf, uniform[:, f], side="right"), sizes[f] - 1)
        cat[:, f] = np.where(missing[:, f], sizes[f], ranks)
    activity = rng.standard_normal((n, 1))
    own = rng.standard_normal((n, N_INT))
    g = INT_ACTIVITY_WEIGHT * activity + np.sqrt(1.0 - INT_ACTIVITY_WEIGHT**2) * own
    rate = np.exp(np.minimum(np.asarray(INT_LOG_MEAN) + np.asarray(INT_LOG_STD) * g, 16.0))
    counts = rng.poisson(rate).astype(np.int64)
    int_missing = rng.random((n, N_INT)) < np.asarray(INT_MISSING)
    return Features(cat=cat, counts=counts, int_missing=int_missing)


def _draw_parameters(rng: np.random.Generator, vocab_sizes: tuple[int, ...]) -> dict:
    """Every parameter of :class:`GroundTruth` except the calibrated ones."""
    n_cat = len(vocab_sizes)
    tables = [size + 1 for size in vocab_sizes]  # + the missing token
    exponents = rng.uniform(1.05, 1.35, n_cat)
    importance = rng.uniform(0.2, 1.0, n_cat)
    fields = rng.permutation(n_cat)
    fm_fields = np.sort(fields[:FM_FIELDS])
    cross_pairs = np.stack(
        [rng.choice(N_INT, CROSS_PAIRS, replace=False), fields[-CROSS_PAIRS:]], axis=1
    )
    triple_fields = rng.choice(n_cat, 3, replace=False)
    deep_cat_fields = rng.choice(n_cat, DEEP_CAT_FIELDS, replace=False)
    deep_int_fields = rng.choice(N_INT, DEEP_INT_FIELDS, replace=False)
    deep_in = DEEP_CAT_FIELDS * DEEP_EMBED + DEEP_INT_FIELDS
    return {
        "vocab_sizes": vocab_sizes,
        "cdfs": tuple(_zipf_cdf(s, e) for s, e in zip(vocab_sizes, exponents, strict=True)),
        "first_weights": tuple(
            rng.standard_normal(t) * w for t, w in zip(tables, importance, strict=True)
        ),
        "int_slopes": rng.standard_normal(N_INT) * 0.5,
        "int_missing_weights": rng.standard_normal(N_INT) * 0.5,
        "fm_fields": fm_fields,
        "fm_vectors": tuple(rng.standard_normal((tables[f], FM_RANK)) for f in fm_fields),
        "cross_pairs": cross_pairs,
        "cross_factors": tuple(rng.standard_normal(tables[f]) for f in cross_pairs[:, 1]),
        "triple_fields": triple_fields,
        "triple_factors": tuple(rng.standard_normal(tables[f]) for f in triple_fields),
        "deep_cat_fields": deep_cat_fields,
        "deep_int_fields": deep_int_fields,
        "deep_embeddings": tuple(
            rng.standard_normal((tables[f], DEEP_EMBED)) for f in deep_cat_fields
        ),
        "deep_w1": rng.standard_normal((deep_in, DEEP_HIDDEN)) / np.sqrt(deep_in),
        "deep_b1": rng.standard_normal(DEEP_HIDDEN) * 0.5,
        "deep_w2": rng.standard_normal(DEEP_HIDDEN),
        "hash_salts": rng.integers(0, 2**32, n_cat, dtype=np.uint64).astype(np.uint32),
    }


def _solve_intercept(logit: np.ndarray, target: float) -> float:
    """The ``b`` with ``mean(sigmoid(b + logit)) == target`` (bisection; the mean is monotone)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if np.mean(1.0 / (1.0 + np.exp(-(mid + logit)))) < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


@lru_cache(maxsize=2)
def build_ground_truth(seed: int, regime: str = "default") -> GroundTruth:
    """Draw the hidden model for ``seed`` and calibrate its scales and intercept (cached: the
    same seed is often generated more than once in a process)."""
    params = _draw_parameters(
        np.random.default_rng([seed, _STREAM_TRUTH]), _regime(regime).vocab_sizes
    )
    uncalibrated = GroundTruth(
        **params, z_mean=np.zeros(N_INT), z_std=np.ones(N_INT),
        term_scales=dict.fromkeys(TERM_STD, 1.0), intercept=0.0,
    )
    sample = draw_features(
        uncalibrated, np.random.default_rng([seed, _STREAM_CALIBRATION]), CALIBRATION_ROWS
    )
    log_counts = np.ma.masked_array(np.log1p(sample.counts), mask=sample.int_missing)
    z_mean = log_counts.mean(axis=0).filled(0.0)
    z_std = np.maximum(log_counts.std(axis=0).filled(1.0), 1e-6)
    standardised = GroundTruth(
        **params, z_mean=z_mean, z_std=z_std, term_scales=uncalibrated.term_scales, intercept=0.0
    )
    terms = standardised.terms(sample)
    scales = {k: TERM_STD[k] / max(float(np.std(terms[k])), 1e-12) for k in TERM_STD}
    logit = sum(scales[k] * terms[k] for k in TERM_STD)
    return GroundTruth(
        **params, z_mean=z_mean, z_std=z_std, term_scales=scales,
        intercept=_solve_intercept(logit, TARGET_CTR),
    )


def _hash32(values: np.ndarray) -> np.ndarray:
    """A bijection of uint32 (``lowbias32``), so distinct values get distinct hashes."""
    x = values.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def hex_vocabulary(size: int, salt: np.uint32) -> pa.StringArray:
    """``size`` distinct 8-hex-digit strings, the hashed value of each rank of a field."""
    with np.errstate(over="ignore"):
        hashed = _hash32(np.arange(size, dtype=np.uint32) + salt)
    shifts = np.arange(28, -4, -4, dtype=np.uint32)
    chars = _HEX_DIGITS[(hashed[:, None] >> shifts) & np.uint32(0xF)]
    offsets = np.arange(0, 8 * size + 1, 8, dtype=np.int32)
    return pa.StringArray.from_buffers(
        size, pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes())
    )


def _regime(name: str) -> Regime:
    if name not in REGIMES:
        raise ValueError(f"unknown regime {name!r}; choose from {', '.join(REGIMES)}")
    return REGIMES[name]


def _criteo_schema() -> pa.Schema:
    return pa.schema(
        [("label", pa.int8())]
        + [(f"I{j + 1}", pa.int64()) for j in range(N_INT)]
        + [(f"C{f + 1}", pa.string()) for f in range(len(VOCAB_SIZES))]
    )


def _block_table(
    feats: Features, labels: np.ndarray, vocabularies: list[pa.StringArray]
) -> pa.Table:
    """Missing categorical values (rank = vocabulary size) become nulls."""
    columns = [pa.array(labels.astype(np.int8))]
    columns += [
        pa.array(feats.counts[:, j], mask=feats.int_missing[:, j]) for j in range(N_INT)
    ]
    for f, vocab in enumerate(vocabularies):
        ranks = feats.cat[:, f]
        columns.append(pc.take(vocab, pa.array(ranks, mask=ranks == len(vocab))))
    return pa.Table.from_arrays(columns, schema=_criteo_schema())


def _truncate(feats: Features, n: int) -> Features:
    return Features(cat=feats.cat[:n], counts=feats.counts[:n], int_missing=feats.int_missing[:n])


def generate_criteo_synthetic(
    out: Path, rows: int, seed: int, probs_out: Path | None = None, regime: str = "default"
) -> None:
    """Write ``rows`` Criteo-format rows to ``out`` (and their click probabilities to
    ``probs_out``, one per line) drawn from the ground truth of ``seed`` in ``regime``."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    truth = build_ground_truth(seed, _regime(regime).name)
    vocabularies = [
        hex_vocabulary(size, salt)
        for size, salt in zip(truth.vocab_sizes, truth.hash_salts, strict=True)
    ]
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    prob_schema = pa.schema([("prob", pa.float32())])
    with ExitStack() as stack:  # each file takes its name once complete, probabilities first
        writer = stack.enter_context(pacsv.CSVWriter(
            stack.enter_context(atomic_path(out)), _criteo_schema(), write_options=options
        ))
        prob_writer = None if probs_out is None else stack.enter_context(pacsv.CSVWriter(
            stack.enter_context(atomic_path(probs_out)), prob_schema, write_options=options
        ))
        for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
            rng = np.random.default_rng([seed, _STREAM_BLOCK, block])
            feats = draw_features(truth, rng, BLOCK_ROWS)
            prob = 1.0 / (1.0 + np.exp(-truth.logit(feats)))
            labels = rng.random(BLOCK_ROWS) < prob
            n = min(BLOCK_ROWS, rows - start)
            writer.write_table(_block_table(_truncate(feats, n), labels[:n], vocabularies))
            if prob_writer is not None:
                prob_writer.write_table(
                    pa.table([pa.array(prob[:n].astype(np.float32))], schema=prob_schema)
                )

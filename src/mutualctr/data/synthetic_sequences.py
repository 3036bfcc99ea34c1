"""A behaviour-sequence click log drawn from a hidden model (``data synth --sequences``).

A benchmark with a known ceiling for sequence models (DIN, DIEN, ...): the click probability of
a row depends on how its item relates to the user's earlier clicks, which the csv reader's
``history`` option turns into ``hist_item`` / ``hist_category`` fields. The log is written as a
CSV sorted by time, with a schema YAML beside it (``<out>.schema.yaml``: the fields and the
history option, clicked rows as events, ``max_len`` = ``history_len``) and, with ``probs_out``,
each row's true click probability (one per data row, as ``data synth`` writes them for Criteo),
so ``data info`` reports the Bayes AUC of each split.

The hidden model (all parameters drawn from ``seed``):

* items: ``n_items`` (``rows / ROWS_PER_ITEM``, at least ``MIN_ITEMS``) in ``N_CATEGORIES``
  categories; item ``i`` has a unit latent vector ``e_i`` near its category's centre, a
  popularity (Zipf within its category, categories Zipf too), a price and a bias;
* users (``rows / ROWS_PER_USER``, their row counts log-normal): a latent interest ``u_t`` that
  drifts one AR(1) step per impression, ``u_{t+1} = rho u_t + sqrt(1 - rho^2) xi`` with
  ``xi ~ N(0, I / D)`` (so interests change over a user's log and recent clicks say more than
  old ones), a group and a bias;
* impressions: with probability ``INTEREST_SHARE`` the item comes from the user's current
  interest (a category with probability proportional to ``exp(BETA <u_t, c_k>)``, then an
  item of it by popularity), else from global popularity; a position 1..5; the time moves on
  by an exponential gap (each user's rows span the whole period);
* the click::

      logit = b + user bias + item bias + group x category + position + hour
              + price slope * z(log price) + gap slope * z(log gap)
              + A_INTEREST <u_t, e_i>                             (seen only through history)
              + A_HISTORY sum_k alpha_k <e_i, e_{h_k}>,
      alpha = softmax_k(GAMMA <e_i, e_{h_k}> - LAMBDA k)

  over the user's last ``history_len`` clicked items ``h_0`` (newest) .. ``h_{H-1}``, zero for
  an empty history: target attention (DIN, Zhou et al., KDD 2018, eq. 3) with a recency
  penalty, so a model that attends to the history items resembling the target, recent ones
  first, can find it, and mean pooling of the whole history cannot quite. The intercept ``b``
  is solved on a pilot simulation so that about ``TARGET_CTR`` of rows are clicks.

Users are simulated together, one impression per user per step (vectorised over users), with
their histories as ring buffers of the last ``history_len`` clicks; the rows are then sorted by
(time, user, step). 1M rows (5,000 users) take 20-35 s on a shared 2-core machine, peak RSS
about 270 MB (all rows are held to sort them by time).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mutualctr.errors import ConfigError
from mutualctr.files import atomic_path, write_yaml

DIM = 8
N_CATEGORIES = 100
N_GROUPS = 8
N_POSITIONS = 5
ROWS_PER_USER = 200
ROWS_PER_ITEM = 40
MIN_ITEMS = 1000
TARGET_CTR = 0.25
RHO = 0.98  # interest drift per impression (half-life ~35 impressions)
BETA = 6.0  # how sharply interest picks the category of an interest-driven impression
INTEREST_SHARE = 0.6
ITEM_SPREAD = 0.6  # an item's distance from its category centre (relative)
A_INTEREST, A_HISTORY, GAMMA, LAMBDA = 1.5, 2.0, 4.0, 0.1
PERIOD_SECONDS = 30 * 86400
LOG_GAP_MEAN, LOG_GAP_STD = 9.0, 1.5  # roughly, for ROWS_PER_USER rows over the period
START_TIME = 1_700_000_000  # 2023-11-14 22:13:20 UTC
PILOT_USERS = 400
DEFAULT_HISTORY_LEN = 50
COLUMNS = ("time", "user", "item", "category", "user_group", "hour", "position", "price",
           "log_gap", "click")
_STREAM_TRUTH, _STREAM_PILOT, _STREAM_LOG = 0, 1, 2


@dataclass(frozen=True)
class SequenceTruth:
    """The hidden model's parameters (see the module docstring)."""

    item_vectors: np.ndarray  # [n_items, D], unit rows
    item_category: np.ndarray  # [n_items]; items of one category are consecutive
    item_bias: np.ndarray
    item_log_price: np.ndarray
    category_centres: np.ndarray  # [K, D], unit rows
    category_first: np.ndarray  # [K + 1] first item of each category (and the end)
    within_cdf: np.ndarray  # [n_items] category k's cumulative popularity, shifted by k
    global_cdf: np.ndarray  # [n_items]
    group_category: np.ndarray  # [N_GROUPS, K]
    position_weights: np.ndarray  # [N_POSITIONS]
    hour_weights: np.ndarray  # [24]
    price_slope: float
    gap_slope: float
    log_price_mean: float
    log_price_std: float
    intercept: float = 0.0

    def history_term(self, items: np.ndarray, history: np.ndarray) -> np.ndarray:
        """``sum_k alpha_k <e_i, e_{h_k}>`` per row: ``history`` [N, H] holds the clicked items,
        newest first, ``-1`` where there is none."""
        valid = history >= 0
        sims = np.einsum("nhd,nd->nh", self.item_vectors[np.where(valid, history, 0)],
                         self.item_vectors[items])
        scores = np.where(valid, GAMMA * sims - LAMBDA * np.arange(history.shape[1]), -np.inf)
        top = np.max(scores, axis=1, keepdims=True)
        weights = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
        total = weights.sum(axis=1)
        term = (weights * sims).sum(axis=1) / np.where(total > 0, total, 1.0)
        return np.where(valid.any(axis=1), term, 0.0)


@dataclass
class SequenceLog:
    """Simulated rows (:func:`simulate`: user after user, each user's rows in time order);
    ``history`` and ``interest`` are two of the logit's terms (before their weights)."""

    user: np.ndarray
    item: np.ndarray
    user_group: np.ndarray
    time: np.ndarray  # int64 seconds
    position: np.ndarray
    log_gap: np.ndarray  # NaN for a user's first row
    logit: np.ndarray
    label: np.ndarray
    history: np.ndarray
    interest: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> SequenceLog:
        return SequenceLog(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @property
    def prob(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return weights / weights.sum()


def draw_truth(seed: int, n_items: int) -> SequenceTruth:
    """The hidden model of ``seed`` with ``n_items`` items, intercept 0 (:func:`build_truth`
    solves it)."""
    rng = np.random.default_rng([seed, _STREAM_TRUTH])
    category_share = _zipf(N_CATEGORIES, 0.8)[rng.permutation(N_CATEGORIES)]
    sizes = np.maximum(1, np.round(category_share * n_items).astype(np.int64))
    sizes[np.argmax(sizes)] += n_items - sizes.sum()
    first = np.concatenate([[0], np.cumsum(sizes)])
    category = np.repeat(np.arange(N_CATEGORIES), sizes)
    centres = _unit(rng.standard_normal((N_CATEGORIES, DIM)))
    vectors = _unit(centres[category] + ITEM_SPREAD * _unit(rng.standard_normal((n_items, DIM))))
    within = np.concatenate([_zipf(int(s), 1.1) for s in sizes])
    global_share = within * category_share[category]
    log_price = rng.normal(3.0, 0.8, N_CATEGORIES)[category] + rng.normal(0, 0.5, n_items)
    return SequenceTruth(
        item_vectors=vectors, item_category=category,
        item_bias=rng.normal(0.0, 0.4, n_items), item_log_price=log_price,
        category_centres=centres, category_first=first,
        within_cdf=category + np.concatenate([np.cumsum(_zipf(int(s), 1.1)) for s in sizes]),
        global_cdf=np.cumsum(global_share) / global_share.sum(),
        group_category=rng.normal(0.0, 0.3, (N_GROUPS, N_CATEGORIES)),
        position_weights=-0.15 * np.arange(N_POSITIONS), hour_weights=rng.normal(0, 0.15, 24),
        price_slope=-0.25, gap_slope=0.2,
        log_price_mean=float(log_price.mean()), log_price_std=float(log_price.std()),
    )


def _row_counts(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Rows per user, log-normal around ``ROWS_PER_USER``, at least 1, summing to ``rows``."""
    users = max(1, rows // ROWS_PER_USER)
    weights = rng.lognormal(0.0, 0.7, users)
    counts = np.maximum(1, np.floor(weights / weights.sum() * rows).astype(np.int64))
    while counts.sum() != rows:  # a few rows off after rounding
        excess = counts.sum() - rows
        k = rng.integers(users)
        counts[k] = max(1, counts[k] - np.sign(excess))
    return np.sort(counts)[::-1]


def _pick_items(truth: SequenceTruth, rng: np.random.Generator, interest: np.ndarray) -> np.ndarray:
    """One impression per user of ``interest`` [A, D] (see the module docstring)."""
    n = len(interest)
    scores = BETA * interest @ truth.category_centres.T + rng.gumbel(size=(n, N_CATEGORIES))
    category = np.argmax(scores, axis=1)
    chosen = np.searchsorted(truth.within_cdf, category + rng.random(n), side="right")
    chosen = np.clip(chosen, truth.category_first[category], truth.category_first[category + 1] - 1)
    popular = np.minimum(np.searchsorted(truth.global_cdf, rng.random(n), side="right"),
                         len(truth.global_cdf) - 1)
    return np.where(rng.random(n) < INTEREST_SHARE, chosen, popular)


def simulate(
    truth: SequenceTruth, rng: np.random.Generator, counts: np.ndarray, history_len: int,
) -> SequenceLog:
    """Every user's impressions, one step per impression for all users at once. ``counts``
    are the users' rows, largest first, so the users still active at a step are a prefix."""
    users, rows = len(counts), int(counts.sum())
    starts = np.cumsum(counts) - counts
    bias = rng.normal(0.0, 0.4, users)
    group = rng.integers(0, N_GROUPS, users)
    interest = rng.standard_normal((users, DIM)) / np.sqrt(DIM)
    mean_gap = PERIOD_SECONDS / counts
    clock = np.floor(rng.random(users) * mean_gap).astype(np.int64)
    history = np.full((users, history_len), -1, dtype=np.int64)  # ring buffer of clicks
    written = np.zeros(users, dtype=np.int64)  # clicks so far (the ring's next slot mod H)
    out = {name: np.zeros(rows, dtype) for name, dtype in (
        ("item", np.int64), ("time", np.int64), ("position", np.int64), ("log_gap", float),
        ("logit", float), ("label", np.int8), ("history", float), ("interest", float))}
    for step in range(int(counts[0])):
        active = int(np.searchsorted(-counts, -step, side="left"))  # users with counts > step
        a = slice(0, active)
        noise = rng.standard_normal((active, DIM)) / np.sqrt(DIM)
        interest[a] = RHO * interest[a] + np.sqrt(1 - RHO**2) * noise
        item = _pick_items(truth, rng, interest[a])
        position = rng.integers(0, N_POSITIONS, active)
        gap = 1 + np.floor(rng.exponential(mean_gap[a])).astype(np.int64)
        log_gap = np.log1p(gap) if step else np.full(active, np.nan)
        clock[a] += gap if step else 0
        newest_first = (written[a, None] - 1 - np.arange(history_len)) % history_len
        recent = np.where(np.arange(history_len) < written[a, None],
                          np.take_along_axis(history[a], newest_first, axis=1), -1)
        term = truth.history_term(item, recent)
        affinity = np.einsum("nd,nd->n", interest[a], truth.item_vectors[item])
        hour = ((START_TIME + clock[a]) // 3600) % 24
        logit = (truth.intercept + bias[a] + truth.item_bias[item]
                 + truth.group_category[group[a], truth.item_category[item]]
                 + truth.position_weights[position] + truth.hour_weights[hour]
                 + truth.price_slope * (truth.item_log_price[item] - truth.log_price_mean)
                 / truth.log_price_std
                 + truth.gap_slope * np.nan_to_num((log_gap - LOG_GAP_MEAN) / LOG_GAP_STD)
                 + A_INTEREST * affinity + A_HISTORY * term)
        label = rng.random(active) < 1.0 / (1.0 + np.exp(-logit))
        clicked = np.flatnonzero(label)
        history[clicked, written[clicked] % history_len] = item[clicked]
        written[clicked] += 1
        at = starts[a] + step
        for name, value in (("item", item), ("time", clock[a]), ("position", position),
                            ("log_gap", log_gap), ("logit", logit), ("label", label),
                            ("history", term), ("interest", affinity)):
            out[name][at] = value
    user = np.repeat(np.arange(users), counts)
    return SequenceLog(user=user, user_group=group[user], **out)


def solve_intercept(logits: np.ndarray, target: float) -> float:
    """The ``b`` with ``mean(sigmoid(b + logits)) == target`` (bisection; monotone in ``b``)."""
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if np.mean(1.0 / (1.0 + np.exp(-(mid + logits)))) < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def build_truth(seed: int, rows: int, history_len: int) -> SequenceTruth:
    """The hidden model with its intercept solved on a pilot of ``PILOT_USERS`` users."""
    truth = draw_truth(seed, max(MIN_ITEMS, rows // ROWS_PER_ITEM))
    pilot_rng = np.random.default_rng([seed, _STREAM_PILOT])
    pilot = simulate(truth, pilot_rng, _row_counts(pilot_rng, PILOT_USERS * ROWS_PER_USER),
                     history_len)
    return replace(truth, intercept=solve_intercept(pilot.logit, TARGET_CTR))


def sequence_schema(history_len: int) -> dict:
    """The csv reader's schema file for the log (see ``readers.tabular``)."""
    categorical = ("user", "item", "category", "user_group", "hour", "position")
    return {
        "label": "click",
        "fields": [{"name": n, "type": "categorical"} for n in categorical]
        + [{"name": n, "type": "numeric"} for n in ("price", "log_gap")],
        "history": {"user": "user", "time": "time", "columns": ["item", "category"],
                    "max_len": history_len, "events": "positive"},
    }


def schema_path(out: Path) -> Path:
    """Where the schema of the log ``out`` is written: ``<stem>.schema.yaml`` beside it."""
    return out.with_name(out.stem + ".schema.yaml")


def _table(truth: SequenceTruth, log: SequenceLog) -> pa.Table:
    item, time = log.item, log.time + START_TIME
    log_gap = np.round(log.log_gap, 4)
    columns = {
        "time": time, "user": log.user, "item": item, "category": truth.item_category[item],
        "user_group": log.user_group, "hour": (time // 3600) % 24, "position": log.position + 1,
        "price": np.round(np.exp(truth.item_log_price[item]), 2),
        "log_gap": pa.array(log_gap, mask=np.isnan(log_gap)), "click": log.label,
    }
    return pa.table({name: columns[name] for name in COLUMNS})


def draw_sequence_log(
    rows: int, seed: int, history_len: int = DEFAULT_HISTORY_LEN,
) -> tuple[SequenceTruth, SequenceLog]:
    """The hidden model of ``seed`` and ``rows`` rows of its log, sorted by (time, user, step)
    as :func:`generate_sequence_log` writes them."""
    if rows < 1:
        raise ConfigError(f"rows must be >= 1, got {rows}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if history_len < 1:
        raise ConfigError(f"--history-len must be >= 1, got {history_len}")
    truth = build_truth(seed, rows, history_len)
    rng = np.random.default_rng([seed, _STREAM_LOG])
    log = simulate(truth, rng, _row_counts(rng, rows), history_len)
    return truth, log.take(np.lexsort((np.arange(rows), log.user, log.time)))


def generate_sequence_log(
    out: Path, rows: int, seed: int, probs_out: Path | None = None,
    history_len: int = DEFAULT_HISTORY_LEN,
) -> Path:
    """Write ``rows`` rows to ``out`` (CSV, time order), the schema beside it (returned) and
    the true probabilities to ``probs_out``; see the module docstring."""
    truth, log = draw_sequence_log(rows, seed, history_len)
    schema = schema_path(out)
    plain = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
    with ExitStack() as stack:  # each file takes its name once complete
        pacsv.write_csv(_table(truth, log), stack.enter_context(atomic_path(out)), plain)
        if probs_out is not None:
            probs = pa.table({"prob": log.prob.astype(np.float32)})
            pacsv.write_csv(probs, stack.enter_context(atomic_path(probs_out)),
                            pacsv.WriteOptions(include_header=False))
    write_yaml(schema, sequence_schema(history_len))
    return schema

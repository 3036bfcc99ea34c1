"""The Python API: what the command line does, as functions (``mutualctr.__all__``).

``synthesize`` writes generated Criteo-format click logs, ``prepare`` encodes raw files into a
store, ``compare`` runs every way of training the given models and says which wins at what
serving cost, ``train`` runs any registered method (:mod:`mutualctr.methods`) into a run folder with
its config given as keyword arguments, a mapping, a YAML file or the method's config dataclass,
and ``load`` opens a run folder to score rows (a pandas DataFrame, a pyarrow Table, a file),
evaluate it or export it. They share the command line's code: the same validation, the same run
folders, the same reuse of finished runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mutualctr.comparison import run as run_comparison
from mutualctr.comparison.plan import CompareConfig
from mutualctr.comparison.report import RESULTS_FILE
from mutualctr.config import from_dict, load_yaml, merge, to_dict
from mutualctr.data.prepare import SplitMethod, SplitOptions
from mutualctr.data.prepare import prepare as prepare_store
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.base import OnBadRow
from mutualctr.data.readers.tabular import TabularSpec, load_spec
from mutualctr.data.store import EncodedStore
from mutualctr.data.synthetic import generate_criteo_synthetic
from mutualctr.experiments.engine import save_config
from mutualctr.methods import get_method
from mutualctr.methods.runner import final_folder, run
from mutualctr.serving.inference import InferenceRun


def synthesize(out: str | Path, rows: int, *, seed: int = 0, probs: str | Path | None = None,
               regime: str = "default") -> Path:
    """Write ``rows`` generated Criteo-format click log lines to ``out`` (``mutualctr data
    synth``), each row's true click probability to ``probs`` if given; returns ``out``."""
    out = Path(out)
    generate_criteo_synthetic(out, rows, seed, Path(probs) if probs else None, regime)
    return out


def prepare(
    inputs: str | Path | Sequence[str | Path], out: str | Path, *, format: str,
    schema: str | Path | Mapping[str, Any] | None = None, split: SplitMethod = "random",
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
    time_column: str | None = None, user_column: str | None = None, user_last: int = 1,
    history_log: str | Path | Sequence[str | Path] = (), probs: str | Path | None = None,
    on_bad_row: OnBadRow = "error", overwrite: bool = False, **options: Any,
) -> EncodedStore:
    """Encode raw files into the store ``out`` (``mutualctr data prepare``), or reuse the store
    already there for the same files and settings; returns it, opened.

    Args:
        inputs: one raw file (or folder, for MovieLens) or several.
        format: criteo, avazu, frappe, movielens, csv or parquet.
        schema: csv / parquet: the schema, a YAML file or its content as a mapping.
        split, ratios, seed, time_column: how rows are split (docs/data.md);
            ``user-last`` with ``user_column`` and ``user_last`` (each user's newest times to
            test and valid).
        history_log: csv / parquet with a schema ``history``: files of events that feed the
            histories without being rows (``--history-log``).
        probs: true click probabilities, one per row (generated data).
        on_bad_row: error (name the file, line and field) or skip.
        options: the format's options, as ``data prepare``'s flags: ``min_count``,
            ``hash_buckets``, ``criteo_numeric``, ``frappe_form``, ``rating_threshold``,
            ``drop_rating``, ``history_len``.
    """
    files = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if isinstance(schema, Mapping):
        options["tabular"] = from_dict(TabularSpec, schema)
    elif schema is not None:
        options["tabular"] = load_spec(Path(schema))
    logs = [history_log] if isinstance(history_log, (str, Path)) else list(history_log)
    result = prepare_store(
        [Path(f) for f in files], Path(out), format, reader_options=ReaderOptions(**options),
        split=SplitOptions(split, tuple(ratios), seed, time_column,  # type: ignore[arg-type]
                           user_column, user_last),
        probs=Path(probs) if probs else None, on_bad_row=on_bad_row, overwrite=overwrite,
        history_log=[Path(log) for log in logs])
    return result.store


@dataclass(frozen=True)
class Run:
    """A finished run of a method.

    Attributes:
        path: the run folder.
        method: the method's name.
        config: the resolved config, as ``config.yaml`` holds it.
        metrics: ``metrics.json``'s content: ``{"valid": {prediction: {auc, logloss}},
            "test": ...}`` plus the method's own keys.
        reused: the folder held a finished run of this config; nothing was trained.
    """

    path: Path
    method: str
    config: Any
    metrics: dict[str, Any]
    reused: bool

    def load(self, **options: Any) -> InferenceRun:
        """The run opened for inference (:func:`load`); a method made of several runs opens
        its last one, whose model it serves."""
        return load(final_folder(get_method(self.method), self.path), **options)


def train(
    method: str, *, data: str | Path, out: str | Path,
    config: Any = None, overwrite: bool = False, log: TextIO | None = None, **settings: Any,
) -> Run:
    """Train the registered ``method`` (``"train"``, ``"mutual"``, ``"ektf"``, ``"cetnet"``,
    ``"dagfm"``, ``"distill"`` ...) on the store ``data`` into the run folder ``out``.

    ``config`` (the method's config dataclass, a mapping or a YAML file) is the base;
    ``settings`` are config keys merged over it, sections as mappings (``model="dcn",
    train={"epochs": 2, "lr": 1e-3}``); the method's presets sit below both (the finetuning
    learning rate of ``mutual`` with pretrained members). A finished run of the same config in
    ``out`` is reused; an interrupted one resumes from its last checkpoint.

    Raises:
        ConfigError: an unknown method or key (naming the closest one), a value out of range.
    """
    chosen = get_method(method)
    if isinstance(config, (str, Path)):
        config = load_yaml(config)
    resolved = chosen.config(config, **settings, data=str(Path(data).resolve()))
    result = run(chosen, resolved, out, overwrite=overwrite, log=log)
    return Run(Path(out), chosen.name, chosen.resolve(resolved), result.metrics, result.reused)


@dataclass(frozen=True)
class Comparison:
    """A finished comparison (:func:`compare`).

    Attributes:
        path: its folder: the runs, ``report.md``, ``results.json``, ``comparison.png``.
        report: ``report.md``'s markdown: the table, its notes and the recommendation.
        results: ``results.json``'s content: every outcome (a row at a seed), every row's
            summary, the best single model, the Pareto front and the recommendation.
    """

    path: Path
    report: str
    results: dict[str, Any]


def compare(*, data: str | Path, out: str | Path, config: Any = None, overwrite: bool = False,
            log: TextIO | None = None, **settings: Any) -> Comparison:
    """Compare every applicable way of training ``models`` on the store ``data`` in ``out``
    (``mutualctr compare``; :mod:`mutualctr.comparison`): ``config`` (a
    :class:`~mutualctr.comparison.plan.CompareConfig`, a mapping or a YAML file) with ``settings``
    merged over it, e.g. ``models=["deepfm", "dcn"], seeds=3, train={"epochs": 3}``. Finished
    runs in ``out`` are reused, so an interrupted comparison continues where it stopped."""
    if isinstance(config, (str, Path)):
        config = load_yaml(config)
    base = to_dict(config) if config is not None else {}
    resolved = from_dict(CompareConfig, merge(merge(base, to_dict(settings)),
                                              {"data": str(Path(data).resolve())}))
    folder = Path(out)
    save_config(folder, resolved)
    markdown = run_comparison(resolved, folder, overwrite=overwrite, log=log)
    results = json.loads((folder / RESULTS_FILE).read_text())
    return Comparison(folder, markdown, results)


def load(run: str | Path, *, data: str | Path | EncodedStore | None = None,
         device: str = "auto") -> InferenceRun:
    """Open the run folder ``run`` for inference: ``.predict(frame or file)``,
    ``.evaluate(splits)``, ``.export(format)``; ``data`` is the store whose encoder reads raw
    rows (default: the store the run trained on). On a store with behaviour histories,
    ``.predict(rows, history_log=files, history_until=t)`` takes each row's history from its
    user's events in that log (default: the store's own) or from the rows' ``hist_*`` columns
    (``serving.histories``), with a ``HistoryWarning`` for rows scored with none."""
    return InferenceRun.open(run, data, device)

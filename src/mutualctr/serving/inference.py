"""One way to open a trained run for inference, shared by ``evaluate``, ``predict`` and
``export`` and by Python callers.

:class:`InferenceRun` holds a finished run's models with their final weights (rebuilt from
``model.json`` and ``model.pt``, ``runfolders.restore``), the device they run on and the
encoded store whose encoder reads raw rows: the run's own, or another whose feature map is the
run's (a store encoded differently would feed the models other ids). The store is opened on
first use, so exporting a run needs none.

Example::

    run = InferenceRun.open("runs/deepfm")
    probabilities = run.predict(frame)        # a pandas DataFrame with the raw columns
    metrics = run.evaluate(["test"])          # what ``mutualctr evaluate`` prints
    run.score_file("test.txt", "preds.csv")   # what ``mutualctr predict`` writes
    run.predict(frame, history_log="events.csv")  # histories from another event log

A store whose rows have behaviour histories gives the scored rows their users' histories from
an event log (the store's own by default) or from history columns of the input
(``serving.histories``); rows scored with an empty history are reported as a
:class:`~mutualctr.serving.histories.HistoryWarning`.
    run.export("onnx", Path("model.onnx"))    # what ``mutualctr export`` writes
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.raw import UnseenValues
from mutualctr.data.schema import FeatureMap
from mutualctr.data.store import EncodedStore, training_positive_rate
from mutualctr.errors import ConfigError
from mutualctr.runfolders.restore import TrainedRun, load_trained
from mutualctr.serving.evaluation import categorical_index, split_metrics
from mutualctr.serving.export import (
    ExportFormat,
    as_batch,
    default_export_path,
    example_inputs,
    write_exported,
)
from mutualctr.serving.frames import as_arrow_table
from mutualctr.serving.histories import HistoryReport, HistorySource, store_history
from mutualctr.serving.scoring import scored_chunks, write_scored_csv
from mutualctr.training.trainer import predict_split, resolve_device
from mutualctr.training.users import run_user_field, user_field

DEFAULT_BATCH_SIZE = 16384
DEFAULT_SPLITS = ("valid", "test")


@dataclass(frozen=True)
class ScoredFile:
    """What :meth:`InferenceRun.score_file` wrote: the CSV, its rows, and the values of the
    input the encoder never kept, per field."""

    path: Path
    rows: int
    unseen: UnseenValues
    histories: HistoryReport | None = None  # where the rows' histories came from, if any


class InferenceRun:
    """A trained run ready to score rows, be evaluated and be exported (module docstring).

    Use :meth:`open`. Scores are click probabilities in float32, per named prediction of the
    run's objective: one for a single model (named after it), one per member and the ensemble
    for groups (:attr:`prediction_names`).
    """

    def __init__(
        self, trained: TrainedRun, device: torch.device,
        data: str | Path | EncodedStore | None = None,
    ) -> None:
        self.trained = trained
        self.device = device
        self._data = data
        self._store: EncodedStore | None = None
        self._names: list[str] | None = None
        self._histories: dict[tuple[Any, ...], HistorySource] = {}
        trained.group.to(device)
        trained.objective.to(device)

    @classmethod
    def open(
        cls, run: str | Path, data: str | Path | EncodedStore | None = None,
        device: str | torch.device = "auto",
    ) -> InferenceRun:
        """The run folder ``run`` (written by a training command) on ``device`` (``auto``:
        CUDA when available). ``data``: the store to encode raw rows and to evaluate on, a
        folder or an open store (default: the one the run trained on); given, it is opened and
        checked now."""
        device = resolve_device(device) if isinstance(device, str) else device
        opened = cls(load_trained(run), device, data)
        if data is not None:  # fail now on a missing store or one with other features
            opened._open_store()
        return opened

    @property
    def store(self) -> EncodedStore:
        """The store (opened on first use); a :class:`~mutualctr.errors.ConfigError` when its
        features differ from the run's."""
        return self._store if self._store is not None else self._open_store()

    def _open_store(self) -> EncodedStore:
        data = self._data or self.trained.config["data"]
        store = data if isinstance(data, EncodedStore) else EncodedStore.open(data)
        self.trained.require_feature_map(store.feature_map)
        self._store = store
        return store

    @property
    def feature_map(self) -> FeatureMap:
        """The encoded inputs the run's models take."""
        return self.trained.feature_map

    @property
    def prediction_names(self) -> list[str]:
        """The names of the run's predictions, in the objective's order."""
        if self._names is None:
            batch = as_batch(example_inputs(self.feature_map, rows=1)).to(self.device)
            with torch.no_grad():
                self._names = list(self.trained.objective.predict(self.trained.group(batch)))
        return self._names

    def score(
        self, rows: SplitArrays, batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> dict[str, np.ndarray]:
        """Every named prediction for encoded ``rows``, in row order (float32; empty arrays
        for no rows)."""
        if len(rows) == 0:
            return {name: np.empty(0, dtype=np.float32) for name in self.prediction_names}
        return predict_split(self.trained.group, self.trained.objective, rows, batch_size,
                             self.device)

    def predictions(
        self, data: Any, batch_size: int = DEFAULT_BATCH_SIZE, *,
        history_log: str | Path | Sequence[str | Path] | None = None,
        history_until: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Every named prediction for raw rows, one value per row in row order.

        ``data``: rows in memory, a pandas DataFrame or a pyarrow Table (or RecordBatch), with
        the columns of a raw file of the store's format, named as its reader names them (e.g.
        Criteo: ``I1..I13``, ``C1..C26``; csv/parquet: the schema's columns; sequences as text
        joined by the separator or as lists); the label column may be absent, other columns are
        ignored. Or the path of a raw file, read whole into memory (:meth:`score_file` streams
        one). The rows are encoded exactly as ``mutualctr predict`` encodes a file (the store's
        encoder, the same checks): a bad value raises
        :class:`~mutualctr.errors.DataError` naming its row (0-based position; a file's:
        file and line) and field. MovieLens stores take files only.

        With behaviour histories in the store, each row's history comes from ``history_log``
        (raw files of the store's format; default: the log the store was prepared from), only
        its events at or before ``history_until`` if given, or from the input's own history
        columns (``serving.histories``); empty histories are warned about
        (:class:`~mutualctr.serving.histories.HistoryWarning`).
        """
        source = self._history_source(history_log, history_until)
        if source is None:
            encoded = (self.store.encode_file(data)[0] if isinstance(data, (str, Path))
                       else self.store.encode_table(as_arrow_table(data)))
            return self.score(encoded, batch_size)
        encoded, report = (source.encode_file(data) if isinstance(data, (str, Path))
                           else source.encode_table(as_arrow_table(data)))
        report.warn()
        return self.score(encoded, batch_size)

    def predict(
        self, data: Any, batch_size: int = DEFAULT_BATCH_SIZE, *,
        history_log: str | Path | Sequence[str | Path] | None = None,
        history_until: float | None = None,
    ) -> np.ndarray | dict[str, np.ndarray]:
        """:meth:`predictions` for a run with one prediction: its click probabilities, a
        float32 array with one value per row; for a group with several, the dict of them by
        name (:attr:`prediction_names`)."""
        scores = self.predictions(data, batch_size, history_log=history_log,
                                  history_until=history_until)
        return next(iter(scores.values())) if len(scores) == 1 else scores

    def _history_source(
        self, log: str | Path | Sequence[str | Path] | None, until: float | None,
    ) -> HistorySource | None:
        """Where scored rows take their histories from (``None``: the store has none; then
        neither option may be given). Kept per option, so a log is read once."""
        history = store_history(self.store.meta["settings"])
        if history is None:
            if log is not None or until is not None:
                raise ConfigError("the store's rows have no behaviour histories: "
                                  "--history-log and --history-until do not apply")
            return None
        files = None if log is None else (
            (log,) if isinstance(log, (str, Path)) else tuple(log))
        key = (files, until)
        if key not in self._histories:
            self._histories[key] = HistorySource(self.store, history, files, until)
        return self._histories[key]

    def score_file(
        self, raw: str | Path, out: str | Path, batch_size: int = DEFAULT_BATCH_SIZE, *,
        history_log: str | Path | Sequence[str | Path] | None = None,
        history_until: float | None = None,
    ) -> ScoredFile:
        """Write the rows of the raw file ``raw`` with their predictions appended to the CSV
        ``out`` (``prediction``, or ``prediction_<name>`` per name for a group), streaming one
        reader chunk at a time; atomically, so a bad row leaves ``out`` as it was
        (``serving.scoring``). The OOV values met are counted in the returned ``unseen``;
        histories (``history_log``, ``history_until``: :meth:`predictions`) are described in
        its ``histories`` and their warnings given once the file is written."""
        unseen = UnseenValues(self.store.feature_map)
        source = self._history_source(history_log, history_until)
        report, chunks = ((None, self.store.encode_chunks(raw)) if source is None
                          else source.encode_chunks(raw))
        scored = scored_chunks(chunks, lambda rows: self.score(rows, batch_size), unseen)
        rows = write_scored_csv(scored, Path(out), raw)
        if report is not None:
            report.warn()
        return ScoredFile(Path(out), rows, unseen, report)

    def evaluate(
        self, splits: Sequence[str] = DEFAULT_SPLITS, batch_size: int = DEFAULT_BATCH_SIZE,
        gauc_by: str | None = None,
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Metrics of the run on the store's ``splits``: ``{split: {prediction: {auc, logloss,
        ne, ...}}}`` (``serving.evaluation.split_metrics``), NE against the store's training
        positive rate, and the gAUCs grouped by ``gauc_by``: by default the run's own
        ``train.user_field``; ``"auto"`` the store's user field, ``""`` none, else a
        categorical field. The numbers of ``metrics.json`` for the run's own store and final
        weights."""
        store = self.store
        setting = gauc_by if gauc_by is not None else run_user_field(self.trained.root)
        field = user_field(store, setting, key="gauc_by")
        group_column = categorical_index(store.feature_map, field) if field else None
        background_rate = training_positive_rate(store)
        result = {}
        for name in splits:
            split = store.split(name)
            # not self.score: an empty split has no prediction to report, not empty ones
            predictions = predict_split(self.trained.group, self.trained.objective, split,
                                        batch_size, self.device)
            result[name] = split_metrics(split, predictions, background_rate, group_column)
        return result

    def export(self, fmt: ExportFormat = "torchscript", out: str | Path | None = None) -> Path:
        """Write the run as a ``fmt`` model file (``serving.export``) at ``out`` (default:
        ``RUN/export/model.pt``, ``.onnx`` or ``.pt2``) with its signature beside it; returns
        the file.
        Traced on the CPU whatever the run's device, so the file runs anywhere."""
        out = Path(out) if out else default_export_path(self.trained.root, fmt)
        group, objective = self.trained.group, self.trained.objective
        cpu = torch.device("cpu")
        try:
            if self.device != cpu:
                group.to(cpu)
                objective.to(cpu)
            return write_exported(group, objective, self.feature_map, fmt, out)
        finally:
            if self.device != cpu:
                group.to(self.device)
                objective.to(self.device)

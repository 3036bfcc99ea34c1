"""Using a trained run: scoring raw rows, evaluating it on a store's splits, exporting it.

:class:`~mutualctr.serving.inference.InferenceRun` opens a run once for all of these; the
``evaluate``, ``predict`` and ``export`` commands are its command line. Modules:

* ``inference``: :class:`InferenceRun` (the run, its store and device) and the defaults the
  commands share;
* ``evaluation``: the metrics of a split's predictions (what ``evaluate`` prints);
* ``scoring``: raw rows with their predictions appended, written to a CSV atomically;
* ``frames``: rows in memory (a pandas DataFrame, a pyarrow Table) as the Arrow table the
  readers parse; pandas stays optional;
* ``histories``: the users' behaviour histories for rows being scored (an event log or the
  input's history columns);
* ``export``: the ``torch.export`` program, ONNX or TorchScript model file and its signature.
"""

from mutualctr.serving.inference import InferenceRun, ScoredFile

__all__ = ["InferenceRun", "ScoredFile"]

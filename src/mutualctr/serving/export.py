"""A trained group as a standalone model file: TorchScript, ONNX or a ``torch.export`` program,
and its signature.

The exported model takes plain tensors, ``(categorical int64 [B, n_categorical], numeric
float32 [B, n_numeric], *sequences int64 [B, max_len])`` encoded as in the store, and returns
one click-probability tensor ``[B]`` per named prediction, in the order listed in the
``<file>.signature.json`` written next to it (:func:`signature`: each input's name, dtype, shape
and what it holds, behaviour histories included).

* ``exported-program`` (``.pt2``): ``torch.export.export`` with a dynamic batch dimension,
  saved with ``torch.export.save``; ``torch.export.load(path).module()(*inputs)`` runs it.
* ``onnx`` (``.onnx``): the same program converted by PyTorch's ``torch.export``-based ONNX
  exporter (``torch.onnx.export(program, dynamo=True)``), which needs the ``onnx`` and
  ``onnxscript`` packages (the ``onnx`` extra: ``pip install mutualctr[onnx]``). Every registry
  model converts (tests/test_export_registry.py), so the TorchScript-based exporter that
  PyTorch 2.13 deprecates is not used for any model.
* ``torchscript`` (``.pt``): ``torch.jit.trace``. PyTorch 2.13 deprecates TorchScript as a
  whole; the format stays for serving stacks that load it, ``exported-program`` is its
  successor.

:func:`write_exports` writes several formats from one trace, one ``torch.export`` program
shared by ``exported-program`` and ``onnx``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import MutualCTRError
from mutualctr.files import atomic_path, write_json
from mutualctr.runfolders.folder import EXPORT_DIR
from mutualctr.training.objectives.base import Objective

ExportFormat = Literal["torchscript", "onnx", "exported-program"]
SUFFIXES: dict[str, str] = {"torchscript": ".pt", "onnx": ".onnx", "exported-program": ".pt2"}
EXPORT_FORMATS: tuple[str, ...] = tuple(SUFFIXES)
BATCH = "batch"  # the name of the dynamic first dimension of every input and output
TRACED_ROWS = 4  # rows of the example inputs the exports trace with


class ExportedModel(nn.Module):
    """Tensors in, the objective's named predictions out (a tuple, in ``names`` order)."""

    def __init__(self, group: nn.Module, objective: Objective, names: list[str]) -> None:
        super().__init__()
        self.group, self.objective, self.names = group, objective, names

    def forward(
        self, categorical: torch.Tensor, numeric: torch.Tensor, *sequences: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        label = torch.zeros(categorical.shape[0], device=categorical.device)
        batch = Batch(categorical, numeric, tuple(sequences), label)
        predictions = self.objective.predict(self.group(batch))
        return tuple(predictions[name] for name in self.names)


def example_inputs(feature_map: FeatureMap, rows: int = TRACED_ROWS) -> tuple[torch.Tensor, ...]:
    """Valid dummy inputs (OOV ids, zeros) of the model's input layout."""
    categorical = torch.ones(rows, len(feature_map.categorical), dtype=torch.long)
    numeric = torch.zeros(rows, len(feature_map.numeric))
    sequences = [torch.ones(rows, f.max_len, dtype=torch.long) for f in feature_map.sequence]
    return (categorical, numeric, *sequences)


def as_batch(inputs: tuple[torch.Tensor, ...]) -> Batch:
    """The model's input tensors (as :func:`example_inputs` gives them) as an unlabelled batch."""
    categorical, numeric, *sequences = inputs
    return Batch(categorical, numeric, tuple(sequences), torch.zeros(categorical.shape[0]))


def input_names(feature_map: FeatureMap) -> list[str]:
    """The model's inputs in order: ``categorical``, ``numeric``, ``seq_<field>`` per sequence."""
    return ["categorical", "numeric"] + [f"seq_{f.name}" for f in feature_map.sequence]


def default_export_path(run_dir: str | Path, fmt: ExportFormat) -> Path:
    """Where ``mutualctr export`` writes a run's model: ``RUN/export/model`` with the format's
    suffix (``.pt``, ``.onnx``, ``.pt2``)."""
    return Path(run_dir) / EXPORT_DIR / f"model{SUFFIXES[fmt]}"


def write_exported(
    group: nn.Module, objective: Objective, feature_map: FeatureMap, fmt: ExportFormat,
    out: Path,
) -> Path:
    """``group`` with ``objective``'s predictions as a ``fmt`` model file at ``out``, and its
    signature beside it; returns ``out``. The group and objective must be on the CPU (the
    example inputs the trace runs on are)."""
    return write_exports(group, objective, feature_map, {fmt: out})[fmt]


def write_exports(
    group: nn.Module, objective: Objective, feature_map: FeatureMap,
    outs: Mapping[ExportFormat, Path],
) -> dict[ExportFormat, Path]:
    """:func:`write_exported` for several formats at once, from one ``torch.export`` program
    (``exported-program`` and ``onnx`` share it); returns the files by format."""
    if "onnx" in outs:
        require_onnx_packages()
    inputs = example_inputs(feature_map)
    with torch.no_grad():
        names = list(objective.predict(group(as_batch(inputs))))
    model = ExportedModel(group, objective, names).eval()
    program = export_program(model, inputs) if outs.keys() - {"torchscript"} else None
    for fmt, out in outs.items():
        out.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad(), atomic_path(out) as tmp:
            if fmt == "torchscript":
                _write_torchscript(model, inputs, tmp)
            elif fmt == "exported-program":
                torch.export.save(program, tmp)
            else:
                _write_onnx(program, input_names(feature_map), names, tmp)
        write_json(signature_path(out), signature(fmt, feature_map, names))
    return dict(outs)


def require_onnx_packages() -> None:
    """Refuse ONNX export, saying what to install, when ``onnx`` or ``onnxscript`` is missing."""
    missing = [p for p in ("onnx", "onnxscript") if importlib.util.find_spec(p) is None]
    if missing:
        packages = " ".join(missing)
        raise MutualCTRError(
            f"ONNX export needs the {' and '.join(f'`{p}`' for p in missing)} package"
            f"{'s' if len(missing) > 1 else ''}: `pip install {packages}` (or the extra "
            "`mutualctr[onnx]`), or use --format exported-program or torchscript"
        )


def export_program(
    model: ExportedModel, inputs: tuple[torch.Tensor, ...]
) -> torch.export.ExportedProgram:
    """``model`` traced by ``torch.export`` with the first dimension of every input (and so of
    every output) one dynamic ``batch`` of at least one row."""
    batch = torch.export.Dim(BATCH, min=1)
    categorical, numeric, *sequences = ({0: batch} for _ in inputs)
    # torch.export sees ``*sequences`` as one tuple argument, and none when it is empty
    varargs = (tuple(sequences),) if sequences else ()
    with torch.no_grad():
        program = torch.export.export(model, inputs,
                                      dynamic_shapes=(categorical, numeric, *varargs))
    # Iterating an empty tensor (a store without sequence fields: ``zip(batch.sequences,
    # seq_offsets)`` in models.embedding) records an ``unbind`` with no outputs, which
    # ``torch.export.load`` fails to read back (torch 2.13: IndexError in
    # ``deserialize_multiple_outputs``); such nodes have no users, so dead-code elimination
    # removes them and nothing else of the computation
    program.graph_module.graph.eliminate_dead_code()
    program.graph_module.recompile()
    return program


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """A TorchScript export loaded back on the CPU (``torch.jit.load``, whose deprecation with
    the format PyTorch 2.13 announces: see :func:`_write_torchscript`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.load` is deprecated", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _write_torchscript(model: ExportedModel, inputs: tuple[torch.Tensor, ...], out: Path) -> None:
    with warnings.catch_warnings():
        # the tracer warns about loops over fields and members: fixed per model, safe to bake
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # PyTorch 2.13 deprecates torch.jit as a whole (trace, and trace_method inside it); the
        # format is deprecated with it, as the module docstring and docs/training.md say
        warnings.filterwarnings("ignore", r"`torch\.jit\.trace(_method)?` is deprecated",
                                DeprecationWarning)
        torch.jit.trace(model, inputs).save(str(out))


def _write_onnx(
    program: torch.export.ExportedProgram, inputs: list[str], outputs: list[str], out: Path,
) -> None:
    """``program`` as an ONNX file through the ``torch.export``-based exporter, its symbolic
    batch dimension named ``batch``; weights in the file itself unless it would pass ONNX's
    2 GB protobuf limit (then beside it, as ``torch.onnx`` saves large models)."""
    with _quiet_onnx_exporter():
        onnx_program = torch.onnx.export(program, input_names=inputs, output_names=outputs,
                                         dynamo=True, verbose=False)
    symbol = onnx_program.model.graph.inputs[0].shape[0]
    onnx_program.rename_axes({symbol: BATCH})
    onnx_program.save(str(out))


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Silence what the ONNX exporter's internals say that is not about this model: the
    FutureWarning torch.export's ``run_decompositions`` raises when it deep-copies its own
    module call graph (``isinstance(treespec, LeafSpec)``, torch 2.13), and the log lines of
    torch.onnx's op registry (``torchvision is not installed``) and of onnxscript's optimizer
    (``Skipping constant folding for op Split``). Errors still raise."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                FutureWarning)
        try:
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def signature(fmt: ExportFormat, feature_map: FeatureMap, outputs: list[str]) -> dict[str, Any]:
    """What ``.signature.json`` holds: the format, the inputs in order (``inputs``: names;
    ``input_specs``: each one's dtype, shape with ``batch`` for the dynamic first dimension,
    and the fields it holds), the outputs (``float32 [batch]`` click probabilities) and the
    feature map the ids are encoded with."""
    specs = [
        {"name": "categorical", "dtype": "int64",
         "shape": [BATCH, len(feature_map.categorical)],
         "fields": [f.name for f in feature_map.categorical],
         "holds": "one id per categorical field (0 padding, 1 out of vocabulary)"},
        {"name": "numeric", "dtype": "float32", "shape": [BATCH, len(feature_map.numeric)],
         "fields": [f.name for f in feature_map.numeric],
         "holds": "one transformed value per numeric field"},
    ]
    for f in feature_map.sequence:
        holds = (f"a behaviour history: the ids of the user's earlier {f.share_with} values "
                 "(the vocabulary of that field), oldest first, right-padded with 0; an empty "
                 "history is all 0" if f.share_with else "the field's ids, right-padded with 0")
        specs.append({"name": f"seq_{f.name}", "dtype": "int64", "shape": [BATCH, f.max_len],
                      "fields": [f.name], "history": bool(f.share_with), "holds": holds})
    return {"format": fmt, "inputs": [s["name"] for s in specs], "input_specs": specs,
            "outputs": outputs, "output_spec": {"dtype": "float32", "shape": [BATCH]},
            "feature_map": feature_map.to_dict()}


def signature_path(model_file: Path) -> Path:
    """Where the inputs/outputs description of an exported model file is written:
    ``model.onnx.signature.json`` beside ``model.onnx``, one per file, so that the formats of
    one run, exported side by side, keep their own."""
    return model_file.with_name(f"{model_file.name}.signature.json")

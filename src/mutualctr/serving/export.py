"""A trained group as a standalone model file: TorchScript or ONNX, and its signature.

The exported model takes plain tensors, ``(categorical int64 [B, n_categorical], numeric
float32 [B, n_numeric], *sequences int64 [B, max_len])`` encoded as in the store, and returns
one click-probability tensor ``[B]`` per named prediction, in the order listed in the
``.signature.json`` file written next to it. TorchScript comes from ``torch.jit.trace``; ONNX
needs the ``onnx`` package (the ``onnx`` extra: ``pip install mutualctr[onnx]``); it uses
PyTorch's TorchScript-based exporter (``dynamo=False``), which needs nothing more. That exporter
drops inputs the graph does not use (``numeric`` when the store has no numeric field, as
Criteo's default encoding), so the signature lists the ONNX graph's own inputs.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import MutualCTRError
from mutualctr.files import atomic_path, write_json
from mutualctr.runfolders.folder import EXPORT_DIR
from mutualctr.training.objectives.base import Objective

ExportFormat = Literal["torchscript", "onnx"]
EXPORT_FORMATS: tuple[str, ...] = ("torchscript", "onnx")


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


def example_inputs(feature_map: FeatureMap, rows: int = 4) -> tuple[torch.Tensor, ...]:
    """Valid dummy inputs (OOV ids, zeros) of the model's input layout."""
    categorical = torch.ones(rows, len(feature_map.categorical), dtype=torch.long)
    numeric = torch.zeros(rows, len(feature_map.numeric))
    sequences = [torch.ones(rows, f.max_len, dtype=torch.long) for f in feature_map.sequence]
    return (categorical, numeric, *sequences)


def as_batch(inputs: tuple[torch.Tensor, ...]) -> Batch:
    """The model's input tensors (as :func:`example_inputs` gives them) as an unlabelled batch."""
    categorical, numeric, *sequences = inputs
    return Batch(categorical, numeric, tuple(sequences), torch.zeros(categorical.shape[0]))


def default_export_path(run_dir: str | Path, fmt: ExportFormat) -> Path:
    """Where ``mutualctr export`` writes a run's model: ``RUN/export/model.pt`` or ``.onnx``."""
    suffix = ".pt" if fmt == "torchscript" else ".onnx"
    return Path(run_dir) / EXPORT_DIR / f"model{suffix}"


def write_exported(
    group: nn.Module, objective: Objective, feature_map: FeatureMap, fmt: ExportFormat,
    out: Path,
) -> Path:
    """``group`` with ``objective``'s predictions as a ``fmt`` model file at ``out``, and its
    signature beside it; returns ``out``. The group and objective must be on the CPU (the
    example inputs the trace runs on are)."""
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise MutualCTRError(
            "ONNX export needs the `onnx` package: `pip install onnx` (or the extra "
            "`mutualctr[onnx]`), or use --format torchscript"
        )
    inputs = example_inputs(feature_map)
    names = list(objective.predict(group(as_batch(inputs))))
    model = ExportedModel(group, objective, names).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    input_names = ["categorical", "numeric"] + [f"seq_{f.name}" for f in feature_map.sequence]
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about loops over fields and members: fixed per model, safe to bake
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with atomic_path(out) as tmp:
            if fmt == "torchscript":
                torch.jit.trace(model, inputs).save(str(tmp))
            else:
                torch.onnx.export(
                    model, inputs, str(tmp), input_names=input_names, output_names=names,
                    dynamic_axes={n: {0: "batch"} for n in input_names + names}, dynamo=False,
                )
    if fmt == "onnx":
        input_names = onnx_inputs(out)
    signature = {"format": fmt, "inputs": input_names, "outputs": names,
                 "feature_map": feature_map.to_dict()}
    write_json(signature_path(out), signature)
    return out


def onnx_inputs(model_file: Path) -> list[str]:
    """The input names of an ONNX model file, in order."""
    import onnx  # the optional extra, checked by write_exported()

    return [i.name for i in onnx.load(str(model_file), load_external_data=False).graph.input]


def signature_path(model_file: Path) -> Path:
    """Where the inputs/outputs description of an exported model file is written."""
    return model_file.with_name(f"{model_file.stem}.signature.json")

"""Shared by the export tests: an exported model file run the way a serving stack would run
it, from its ``.signature.json`` alone (format, input names and order, output names)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from mutualctr.data.arrays import SplitArrays
from mutualctr.data.schema import FeatureMap
from mutualctr.serving.export import input_names, load_torchscript, signature_path


def named_inputs(feature_map: FeatureMap, rows: SplitArrays) -> dict[str, np.ndarray]:
    """Encoded rows as the exported models' inputs, by the names the signature lists."""
    arrays = [rows.categorical.astype(np.int64), rows.numeric.astype(np.float32),
              *(s.astype(np.int64) for s in rows.sequences)]
    return dict(zip(input_names(feature_map), arrays, strict=True))


def run_exported(model_file: Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The predictions of the exported model at ``model_file`` by output name, fed the inputs
    its signature names in its order: ONNX through onnxruntime, an exported program through
    ``torch.export.load``, TorchScript through ``torch.jit.load``."""
    signature = json.loads(signature_path(model_file).read_text())
    feeds = {name: inputs[name] for name in signature["inputs"]}
    if signature["format"] == "onnx":
        runtime = onnxruntime.InferenceSession(str(model_file),
                                               providers=["CPUExecutionProvider"])
        outputs = runtime.run(signature["outputs"], feeds)
    else:
        with torch.no_grad():
            outputs = [t.numpy() for t in load_module(signature["format"], model_file)(
                *map(torch.from_numpy, feeds.values()))]
    return dict(zip(signature["outputs"], outputs, strict=True))


def load_module(fmt: str, model_file: Path) -> torch.nn.Module:
    """An exported-program or TorchScript file as a callable module."""
    if fmt == "exported-program":
        return torch.export.load(str(model_file)).module()
    return load_torchscript(model_file)

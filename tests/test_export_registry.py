"""Every registry model, exported to TorchScript and to ONNX, predicts what the model predicts,
on a store shape with numeric, multi-hot and behaviour-history fields (histories of every length,
empty ones included) and at a batch size other than the one the export traced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from mutualctr.data.batch import Batch
from mutualctr.models.registry import build_model, model_names
from mutualctr.serving.export import signature_path, write_exported
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from training_support import SEQUENCE_FEATURE_MAP, sequence_split, small_model_config

pytestmark = pytest.mark.usefixtures("one_thread")
ROWS = 9  # the export traces with 4 rows


def inputs() -> dict[str, np.ndarray]:
    split = sequence_split(ROWS, seed=2)
    assert (split.sequences[1] == 0).all(1).any() and (split.sequences[1] != 0).all(1).any()
    named = {"categorical": split.categorical.astype(np.int64), "numeric": split.numeric}
    named |= {f"seq_{f.name}": s.astype(np.int64)
              for f, s in zip(SEQUENCE_FEATURE_MAP.sequence, split.sequences, strict=True)}
    return named


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("name", model_names())
def test_exported_model_predicts_as_the_model(name: str, fmt: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(name, SEQUENCE_FEATURE_MAP, small_model_config(name))
    group, objective = ModelGroup([model], [name]).eval(), IndependentObjective([name])
    out = write_exported(group, objective, SEQUENCE_FEATURE_MAP, fmt, tmp_path / f"m.{fmt}")
    named = inputs()
    tensors = [torch.from_numpy(a) for a in named.values()]
    with torch.no_grad():
        want = objective.predict(group(Batch(*tensors[:2], tuple(tensors[2:]),
                                             torch.zeros(ROWS))))[name].numpy()
    if fmt == "torchscript":
        with torch.no_grad():
            (got,) = torch.jit.load(str(out))(*tensors)
        got = got.numpy()
    else:
        wanted_inputs = json.loads(signature_path(out).read_text())["inputs"]
        runtime = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        (got,) = runtime.run(None, {n: named[n] for n in wanted_inputs})
    assert got.shape == (ROWS,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

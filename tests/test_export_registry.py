"""Every registry model, exported to TorchScript, a ``torch.export`` program and ONNX (one
``write_exports`` call: the program and ONNX share one ``torch.export`` trace), predicts what the
model predicts, on a store shape with numeric, multi-hot and behaviour-history fields (histories
of every length, empty ones included), at a batch size other than the one the export traced and,
for the two formats with a dynamic batch dimension, on a single row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from exported_models import named_inputs, run_exported
from mutualctr.models.registry import build_model, model_names
from mutualctr.serving.export import (
    EXPORT_FORMATS,
    SUFFIXES,
    TRACED_ROWS,
    as_batch,
    signature_path,
    write_exports,
)
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.independent import IndependentObjective
from training_support import SEQUENCE_FEATURE_MAP, sequence_split, small_model_config

pytestmark = pytest.mark.usefixtures("one_thread")
ROWS = 9
assert ROWS != TRACED_ROWS
DYNAMIC_BATCH = ("exported-program", "onnx")
ONNX_TYPES = {"int64": "tensor(int64)", "float32": "tensor(float)"}


def inputs() -> dict[str, np.ndarray]:
    split = sequence_split(ROWS, seed=2)
    assert (split.sequences[1] == 0).all(1).any() and (split.sequences[1] != 0).all(1).any()
    return named_inputs(SEQUENCE_FEATURE_MAP, split)


@pytest.mark.parametrize("name", model_names())
def test_exported_model_predicts_as_the_model(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(name, SEQUENCE_FEATURE_MAP, small_model_config(name))
    group, objective = ModelGroup([model], [name]).eval(), IndependentObjective([name])
    outs = write_exports(group, objective, SEQUENCE_FEATURE_MAP,
                         {fmt: tmp_path / f"model{SUFFIXES[fmt]}" for fmt in EXPORT_FORMATS})
    named = inputs()
    with torch.no_grad():
        want = objective.predict(group(as_batch(tuple(map(torch.from_numpy,
                                                              named.values())))))[name].numpy()
    for fmt, out in outs.items():
        got = run_exported(out, named)[name]
        assert got.shape == (ROWS,), fmt
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=fmt)
        if fmt in DYNAMIC_BATCH:
            one_row = run_exported(out, {k: v[4:5] for k, v in named.items()})[name]
            np.testing.assert_allclose(one_row, want[4:5], rtol=0, atol=1e-5, err_msg=fmt)


def test_signature_describes_the_onnx_graph(tmp_path: Path) -> None:
    """The signature's input names, dtypes and shapes (``batch`` first) are the ONNX graph's,
    and it marks the behaviour history (the sequence sharing the item's ids) as one."""
    torch.manual_seed(0)
    group = ModelGroup([build_model("din", SEQUENCE_FEATURE_MAP, small_model_config("din"))],
                       ["din"]).eval()
    out = write_exports(group, IndependentObjective(["din"]), SEQUENCE_FEATURE_MAP,
                        {"onnx": tmp_path / "model.onnx"})["onnx"]
    signature = json.loads(signature_path(out).read_text())
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
        (s["name"], ONNX_TYPES[s["dtype"]], s["shape"]) for s in signature["input_specs"]]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("din", ["batch"])]
    assert [(s["name"], s["shape"], s.get("history")) for s in signature["input_specs"]] == [
        ("categorical", ["batch", 3], None), ("numeric", ["batch", 2], None),
        ("seq_tags", ["batch", 3], False), ("seq_hist_item", ["batch", 6], True)]
    assert signature["input_specs"][0]["fields"] == ["user", "item", "hour"]

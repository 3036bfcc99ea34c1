"""Every registry model, exported to TorchScript, a ``torch.export`` program and ONNX (one
``write_exports`` call: the program and ONNX share one ``torch.export`` trace), predicts what the
model predicts, on a store shape with numeric, multi-hot and behaviour-history fields (histories
of every length, empty ones included), at a batch size other than the one the export traced and,
for the two formats with a dynamic batch dimension, on a single row.

The models are exported five to a group (a heterogeneous ``ModelGroup``, as a mutual-learning
run exports), each member's prediction checked: ``torch.export`` and the ONNX conversion cost
seconds per call whatever the graph's size (the op registry, decompositions, the optimizer), so
five groups take about half the CPU time of 25 single-model exports (60-70 s against 130 s on
one core).
"""

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
GROUPS = 5
assert ROWS != TRACED_ROWS
DYNAMIC_BATCH = ("exported-program", "onnx")
ONNX_TYPES = {"int64": "tensor(int64)", "float32": "tensor(float)"}


def inputs() -> dict[str, np.ndarray]:
    split = sequence_split(ROWS, seed=2)
    assert (split.sequences[1] == 0).all(1).any() and (split.sequences[1] != 0).all(1).any()
    return named_inputs(SEQUENCE_FEATURE_MAP, split)


def model_groups() -> list[list[str]]:
    """The registry's models in five groups, the slow sequence models in different ones."""
    names = model_names()
    return [names[i::GROUPS] for i in range(GROUPS)]


@pytest.mark.parametrize("names", model_groups(), ids="+".join)
def test_exported_models_predict_as_the_models(names: list[str], tmp_path: Path) -> None:
    torch.manual_seed(0)
    models = [build_model(n, SEQUENCE_FEATURE_MAP, small_model_config(n)) for n in names]
    group, objective = ModelGroup(models, names).eval(), IndependentObjective(names)
    outs = write_exports(group, objective, SEQUENCE_FEATURE_MAP,
                         {fmt: tmp_path / f"model{SUFFIXES[fmt]}" for fmt in EXPORT_FORMATS})
    named = inputs()
    with torch.no_grad():
        want = objective.predict(group(as_batch(tuple(map(torch.from_numpy, named.values())))))
    assert set(names) < set(want)  # the members and their ensemble
    checks = [(fmt, out, ROWS) for fmt, out in outs.items()]
    checks += [(fmt, outs[fmt], 1) for fmt in DYNAMIC_BATCH]
    for fmt, out, rows in checks:
        got = run_exported(out, {k: v[:rows] for k, v in named.items()})
        assert list(got) == list(want), fmt
        for name, values in want.items():
            assert got[name].shape == (rows,), (fmt, name)
            np.testing.assert_allclose(got[name], values[:rows].numpy(), rtol=0, atol=1e-5,
                                       err_msg=f"{fmt} {name}, {rows} rows")


def test_signature_describes_the_onnx_graph(tmp_path: Path) -> None:
    """The signature's input names, dtypes and shapes (``batch`` first) are the ONNX graph's,
    and it marks the behaviour history (the sequence sharing the item's ids) as one."""
    torch.manual_seed(0)
    group = ModelGroup([build_model("din", SEQUENCE_FEATURE_MAP, small_model_config("din"))],
                       ["din"]).eval()
    out = write_exports(group, IndependentObjective(["din"]), SEQUENCE_FEATURE_MAP,
                        {"onnx": tmp_path / "model.onnx"})["onnx"]
    signature = json.loads(signature_path(out).read_text())
    runtime = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in runtime.get_inputs()] == [
        (s["name"], ONNX_TYPES[s["dtype"]], s["shape"]) for s in signature["input_specs"]]
    assert [(o.name, o.shape) for o in runtime.get_outputs()] == [("din", ["batch"])]
    assert [(s["name"], s["shape"], s.get("history")) for s in signature["input_specs"]] == [
        ("categorical", ["batch", 3], None), ("numeric", ["batch", 2], None),
        ("seq_tags", ["batch", 3], False), ("seq_hist_item", ["batch", 6], True)]
    assert signature["input_specs"][0]["fields"] == ["user", "item", "hour"]

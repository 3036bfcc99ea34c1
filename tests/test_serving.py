"""``mutualctr.serving``: rows in memory scored as ``mutualctr predict`` scores them in a file,
their bad values named by row and field, and a run evaluated and exported from Python.

Scoring is checked on a Criteo store (every field categorical) and on a CSV store with a
numeric and a multi-hot sequence field, each with a small DeepFM trained once per module.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from data_files import (
    CHRONOLOGICAL,
    build,
    criteo_line,
    trained_deepfm,
    write_lines,
)
from exported_models import named_inputs, run_exported
from mutualctr.cli import main
from mutualctr.data.readers.base import TABLE_CHUNK_ROWS
from mutualctr.data.readers.criteo import CATEGORICAL_FIELDS, COLUMNS, INTEGER_FIELDS
from mutualctr.data.readers.tabular import TabularSpec
from mutualctr.data.schema import FieldSpec
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError
from mutualctr.models.registry import build_model
from mutualctr.runfolders.restore import TrainedRun
from mutualctr.serving import InferenceRun
from mutualctr.serving.export import signature_path
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.objectives.mutual import MutualObjective
from test_data_unlabelled import CASES as FORMATS

SPEC = TabularSpec(label="clicked", fields=(
    FieldSpec("user", "categorical"), FieldSpec("price", "numeric"),
    FieldSpec("tags", "sequence", max_len=3),
))

pytestmark = pytest.mark.usefixtures("one_thread")


def criteo_lines(rows: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [criteo_line(str(int(a == "a")), I1=str(i) if i else "", I2=str(i * 7), C1=a, C2=b)
            for a, b, i in zip(rng.choice(["a", "b", "c", ""], rows),
                               rng.choice(list("xy"), rows), rng.integers(0, 9, rows),
                               strict=True)]


def criteo_frame(lines: list[str]) -> pd.DataFrame:
    """The rows of Criteo ``lines`` as a user would build them: integers as numbers (``NaN``
    where missing), categories as text (``None`` where missing), the label as a number."""
    cells = [line.split("\t") for line in lines]
    columns = {name: [row[k] for row in cells] for k, name in enumerate(COLUMNS)}
    frame = pd.DataFrame({"label": [int(v) for v in columns["label"]]})
    for name in INTEGER_FIELDS:
        frame[name] = [float(v) if v else np.nan for v in columns[name]]
    for name in CATEGORICAL_FIELDS:
        frame[name] = [v or None for v in columns[name]]
    return frame


def tabular_lines(rows: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    users, tags = rng.integers(0, 6, rows), rng.choice(["a", "b", "a|b", "c|a|b|d", ""], rows)
    return ["clicked,user,price,tags"] + [
        f"{int(u < 2)},u{u},{'' if u == 5 else f'{p:.2f}'},{t}"
        for u, p, t in zip(users, rng.normal(10, 3, rows), tags, strict=True)
    ]


def tabular_frame(lines: list[str]) -> pd.DataFrame:
    """The rows of CSV ``lines``: the price as a number (``NaN`` where missing), the tags as
    lists of tokens (``None`` for an empty cell, as the reader reads one)."""
    rows = list(csv.DictReader(lines))
    return pd.DataFrame({
        "clicked": [int(r["clicked"]) for r in rows],
        "user": [r["user"] for r in rows],
        "price": [float(r["price"]) if r["price"] else np.nan for r in rows],
        "tags": [r["tags"].split("|") if r["tags"] else None for r in rows],
    })


@dataclass(frozen=True)
class Case:
    lines: Callable[[int, int], list[str]]  # (rows, seed) -> the lines of a file
    frame: Callable[[list[str]], pd.DataFrame]  # those lines as a data frame
    build: Callable[[Path, Path], EncodedStore]
    label: str
    numeric_field: str


CASES = {
    "criteo": Case(criteo_lines, criteo_frame,
                   lambda tmp, raw: build(tmp, "criteo", [raw], split=CHRONOLOGICAL, min_count=1),
                   "label", "I1"),
    "csv": Case(tabular_lines, tabular_frame,
                lambda tmp, raw: build(tmp, "csv", [raw], split=CHRONOLOGICAL, tabular=SPEC,
                                       min_count=1),
                "clicked", "price"),
}


@pytest.fixture(scope="module", params=list(CASES))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            ) -> tuple[Case, EncodedStore, Path]:
    """A case, its store (300 rows: 240 train, 30 valid, 30 test) and a DeepFM trained on it
    for one epoch."""
    case = CASES[request.param]
    store, run = trained_deepfm(tmp_path_factory.mktemp(request.param), case.build,
                                case.lines(300, 0))
    return case, store, run


def predicted_column(out: Path, column: str = "prediction") -> np.ndarray:
    with open(out, newline="") as handle:
        return np.array([float(row[column]) for row in csv.DictReader(handle)])


def test_a_frame_scores_as_predict_scores_its_rows_in_a_file(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
) -> None:
    """New rows (some values unseen in training, some missing) as a data frame, with and
    without the label, as an Arrow table, and as a file path: what ``mutualctr predict``
    writes for the same rows."""
    case, _, run = trained
    lines = case.lines(50, 7)
    raw = write_lines(tmp_path / "new.txt", lines)
    assert main(["predict", str(run), "--input", str(raw), "--out", str(tmp_path / "p.csv")]) == 0
    want = predicted_column(tmp_path / "p.csv")
    assert len(want) == 50

    inference = InferenceRun.open(run)
    frame = case.frame(lines)
    got = inference.predict(frame)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (50,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    for same in (frame.drop(columns=case.label), pa.Table.from_pandas(frame), raw):
        np.testing.assert_allclose(inference.predict(same), want, rtol=0, atol=1e-6)
    assert inference.predictions(frame) == {"deepfm": pytest.approx(got)}


def test_rows_given_back_in_memory_encode_as_their_file(tmp_path: Path) -> None:
    """For every format but MovieLens, the raw table ``encode_file`` read, handed back as an
    in-memory table, gets the same ids (the same parse: no second copy of the checks)."""
    for name, (fmt, options, rows, _, write) in FORMATS.items():
        if fmt == "movielens":
            continue
        folder = tmp_path / name
        folder.mkdir()
        path = write(folder, rows)
        store = build(folder, fmt, [path], **options)
        want, raw = store.encode_file(path)
        got = store.encode_table(raw)
        np.testing.assert_array_equal(got.categorical, want.categorical, err_msg=name)
        np.testing.assert_array_equal(got.numeric, want.numeric, err_msg=name)
        for got_seq, want_seq in zip(got.sequences, want.sequences, strict=True):
            np.testing.assert_array_equal(got_seq, want_seq, err_msg=name)
        np.testing.assert_array_equal(got.label, want.label, err_msg=name)


def test_a_bad_value_in_a_frame_names_its_row_and_field(
    trained: tuple[Case, EncodedStore, Path],
) -> None:
    case, _, run = trained
    frame = case.frame(case.lines(6, 3))
    frame[case.numeric_field] = frame[case.numeric_field].astype(object)
    frame.loc[4, case.numeric_field] = "cheap"
    with pytest.raises(DataError) as info:
        InferenceRun.open(run).predict(frame)
    assert (info.value.row, info.value.field, info.value.file) == (4, case.numeric_field, None)
    assert str(info.value) == f"row 4, field '{case.numeric_field}': not a number, got 'cheap'"

    with pytest.raises(DataError, match=f"field '{case.numeric_field}': missing columns"):
        InferenceRun.open(run).predict(frame.drop(columns=case.numeric_field))


def test_a_bad_row_after_the_first_chunk_is_named_by_its_position(tmp_path: Path) -> None:
    rows = TABLE_CHUNK_ROWS + 10
    store = build(tmp_path, "csv", [write_lines(tmp_path / "t.csv", tabular_lines(50, 0))],
                  tabular=SPEC, min_count=1)
    table = pa.table({"user": ["u1"] * rows, "price": ["1.5"] * (rows - 1) + ["x"],
                      "tags": ["a|b"] * rows})
    with pytest.raises(DataError, match=f"row {rows - 1}, field 'price': not a number"):
        store.encode_table(table)
    assert len(store.encode_table(table.slice(0, rows - 1))) == rows - 1


def test_movielens_rows_in_memory_are_refused(tmp_path: Path) -> None:
    fmt, options, rows, _, write = FORMATS["movielens-csv"]
    store = build(tmp_path, fmt, [write(tmp_path, rows)], **options)
    with pytest.raises(ConfigError, match="movies file"):
        store.encode_table(pa.table({"userId": ["1"], "movieId": ["10"], "timestamp": ["5"]}))


def test_evaluate_gives_the_metrics_of_the_run_and_of_the_command(
    trained: tuple[Case, EncodedStore, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, run = trained
    # grouped as the run's metrics.json is by default: by its train.user_field
    got = InferenceRun.open(run).evaluate()
    saved = json.loads((run / "metrics.json").read_text())
    # evaluate adds normalized entropy, which a plain run's metrics.json does not hold; as
    # JSON, so that an undefined gAUC (no user with both classes) is NaN on both sides
    assert json.dumps({split: {name: {k: values[k] for k in saved[split][name]}
                               for name, values in by_name.items()}
                       for split, by_name in got.items()}) == \
        json.dumps({s: saved[s] for s in ("valid", "test")})
    field = next(f.name for f in InferenceRun.open(run).feature_map.categorical
                 if f.name in ("user", "C2"))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--splits", "test", "--gauc-by", field]) == 0
    printed = capsys.readouterr().out
    result = InferenceRun.open(run).evaluate(["test"], gauc_by=field)
    assert printed == json.dumps(result, indent=2) + "\n"
    assert {"gauc_impressions", "gauc_users"} <= set(result["test"]["deepfm"])


def test_export_from_python_predicts_as_the_run(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
) -> None:
    """The ``torch.export`` program (TorchScript and ONNX: test_predict_drift.py)."""
    case, store, run = trained
    inference = InferenceRun.open(run)
    model_file = inference.export("exported-program", tmp_path / "model.pt2")
    assert json.loads(signature_path(model_file).read_text())["outputs"] == ["deepfm"]
    encoded, _ = store.encode_file(write_lines(tmp_path / "new.txt", case.lines(9, 4)))
    got = run_exported(model_file, named_inputs(store.feature_map, encoded))["deepfm"]
    np.testing.assert_allclose(got, inference.score(encoded)["deepfm"], rtol=0, atol=1e-6)


def test_a_group_gives_one_array_per_prediction(tmp_path: Path) -> None:
    """A mutual-learning pair: ``predict`` gives a dict by prediction name, the columns
    ``score_file`` writes (``prediction_<name>``) hold the same numbers, and no rows give
    empty arrays under the same names."""
    lines = tabular_lines(40, 0)
    store = build(tmp_path, "csv", [write_lines(tmp_path / "t.csv", lines)], tabular=SPEC,
                  min_count=1)
    torch.manual_seed(0)
    names = ["lr", "fm"]
    group = ModelGroup([build_model(n, store.feature_map, {}) for n in names], names).eval()
    trained = TrainedRun(tmp_path, group, MutualObjective(names).eval(), store.feature_map, {},
                         {"data": str(store.root)})
    inference = InferenceRun(trained, torch.device("cpu"))
    got = inference.predict(tabular_frame(lines))
    assert isinstance(got, dict) and list(got) == ["lr", "fm", "ensemble"]
    inference.score_file(tmp_path / "t.csv", tmp_path / "p.csv")
    for name, values in got.items():
        assert values.shape == (40,)
        np.testing.assert_allclose(values, predicted_column(tmp_path / "p.csv",
                                                            f"prediction_{name}"), atol=1e-6)
    empty = inference.predict(tabular_frame(lines).iloc[:0])
    assert {k: v.shape for k, v in empty.items()} == dict.fromkeys(got, (0,))


def test_serving_works_without_pandas(trained: tuple[Case, EncodedStore, Path]) -> None:
    """pandas is optional: importing the package does not import it, and an Arrow table is
    scored with pandas unimportable."""
    case, _, run = trained
    lines = case.lines(5, 1)
    table = pa.Table.from_pandas(case.frame(lines), preserve_index=False)
    want = InferenceRun.open(run).predict(table)
    script = (
        "import importlib.abc, sys\n"
        "class NoPandas(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.partition('.')[0] == 'pandas':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoPandas())\n"
        "import json, pyarrow as pa\n"
        "from mutualctr.serving import InferenceRun\n"
        "table = pa.ipc.open_stream(sys.stdin.buffer.read()).read_all()\n"
        f"got = InferenceRun.open({str(run)!r}, device='cpu').predict(table)\n"
        "assert 'pandas' not in sys.modules\n"
        "print(json.dumps(got.tolist()))\n"
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    done = subprocess.run([sys.executable, "-c", script], input=sink.getvalue().to_pybytes(),
                          capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    got = np.array(json.loads(done.stdout), dtype=np.float32)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

"""`mutualctr predict` and the exported models on inputs that drift from the training data:
unseen values, missing columns, wrong types, empty and large files.

Each behaviour is checked on a Criteo store (every field categorical) and on a CSV store with a
numeric and a sequence field, each with a small DeepFM trained once per module.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
from mutualctr.data.arrays import SplitArrays
from mutualctr.data.raw import UnseenValues
from mutualctr.data.readers.tabular import TabularSpec
from mutualctr.data.schema import OOV_ID, FieldSpec
from mutualctr.data.store import EncodedStore
from mutualctr.runfolders.restore import load_trained
from mutualctr.serving.export import EXPORT_FORMATS, SUFFIXES
from mutualctr.training.trainer import predict_split

CHUNKED_ROWS = 100_000  # more than one reader chunk (readers.text.DEFAULT_CHUNK_ROWS)
TABULAR_SPEC = TabularSpec(label="clicked", fields=(
    FieldSpec("user", "categorical"), FieldSpec("price", "numeric"),
    FieldSpec("tags", "sequence", max_len=3),
))


def criteo_lines(rows: int, seed: int) -> list[str]:
    """Lines drawn from few values, all of which 240 training lines hold."""
    rng = np.random.default_rng(seed)
    return [criteo_line(str(int(a == "a")), I1=str(i), C1=a, C2=b)
            for a, b, i in zip(rng.choice(list("abc"), rows), rng.choice(list("xy"), rows),
                               rng.integers(0, 9, rows), strict=True)]


def tabular_lines(rows: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    users, tags = rng.integers(0, 5, rows), rng.choice(["a", "b", "a|b", "c|a", ""], rows)
    return ["clicked,user,price,tags"] + [
        f"{int(u < 2)},u{u},{p:.2f},{t}"
        for u, p, t in zip(users, rng.normal(10, 3, rows), tags, strict=True)
    ]


@dataclass(frozen=True)
class Case:
    """One store: how to write its raw files, and inputs that drift from its training data."""

    lines: Callable[[int, int], list[str]]  # (rows, seed) -> the lines of a file
    sep: str
    build: Callable[[Path, Path], EncodedStore]
    drifted: list[str]  # lines with unseen values
    oov: dict[str, list[int]]  # field -> the drifted rows (0-based) whose value is unseen
    summary: str  # what predict prints for the drifted lines
    not_a_number: tuple[int, int, str]  # (drifted line, its column, the numeric field there)
    missing: tuple[list[str], str]  # lines lacking a column, and the end of the error


CASES = {
    "criteo": Case(
        criteo_lines, "\t",
        lambda tmp, raw: build(tmp, "criteo", [raw], split=CHRONOLOGICAL, min_count=1),
        [criteo_line("1", I1="3", C1="a", C2="x"), criteo_line("0", I1="4", C1="new", C2="x"),
         criteo_line("0", I1="2", C1="b", C2="q"), criteo_line("1", I1="1", C1="new", C2="y")],
        {"C1": [1, 3], "C2": [2]},
        "unseen values mapped to OOV: C1 2 (50.0% of rows), C2 1 (25.0%)",
        (3, 1, "I1"),
        # headerless: a row without a column names its line, not which column is gone
        ([criteo_line("1", C1="a"), "\t".join(criteo_line("0", C1="b").split("\t")[:-1])],
         "line 2: expected 40 columns, found 39"),
    ),
    "csv": Case(
        tabular_lines, ",",
        lambda tmp, raw: build(tmp, "csv", [raw], split=CHRONOLOGICAL, tabular=TABULAR_SPEC,
                               min_count=1),
        ["clicked,user,price,tags", "1,u1,3.5,a|b", "0,u9,1,b", "0,u2,,zz|a", "1,u9,2,a"],
        {"user": [1, 3], "tags": [2]},
        "unseen values mapped to OOV: user 2 (50.0% of rows), tags 1 (25.0%)",
        (4, 2, "price"),
        (["clicked,user,tags", "1,u1,a"], "line 1, field 'price': missing columns: price"),
    ),
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


def predict(run: Path, raw: Path, out: Path) -> int:
    return main(["predict", str(run), "--input", str(raw), "--out", str(out)])


def predictions(out: Path) -> np.ndarray:
    with open(out, newline="") as handle:
        return np.array([float(row["prediction"]) for row in csv.DictReader(handle)])


def test_unseen_values_go_to_oov_and_predict_counts_them(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, store, run = trained
    raw = write_lines(tmp_path / "drifted.txt", case.drifted)
    encoded, _ = store.encode_file(raw)
    names = [f.name for f in store.feature_map.categorical]
    sequences = [f.name for f in store.feature_map.sequence]
    for name, rows in case.oov.items():
        ids = (encoded.categorical[:, names.index(name)][:, None] if name in names
               else encoded.sequences[sequences.index(name)])
        assert np.flatnonzero((ids == OOV_ID).any(axis=1)).tolist() == rows
    unseen = UnseenValues(store.feature_map)
    unseen.add(encoded)
    assert {k: v for k, v in unseen.counts.items() if v} == {
        name: len(rows) for name, rows in case.oov.items()}

    capsys.readouterr()
    assert predict(run, raw, tmp_path / "out.csv") == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == case.summary and len(printed) == 2  # the summary, then "wrote ..."
    assert len(predictions(tmp_path / "out.csv")) == len(encoded)


def test_no_summary_without_unseen_values(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, _, run = trained
    raw = write_lines(tmp_path / "seen.txt", case.lines(20, 5))  # values seen in training
    capsys.readouterr()
    assert predict(run, raw, tmp_path / "out.csv") == 0
    assert "OOV" not in capsys.readouterr().out


def failed_predict(run: Path, raw: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The error message of a predict that must fail and leave no file beside ``out``."""
    capsys.readouterr()
    assert predict(run, raw, out) == 2
    assert list(out.parent.iterdir()) == [raw]
    return capsys.readouterr().err


def with_text_in_the_number(case: Case, line: str) -> str:
    """``line`` with ``cheap`` in the column of the case's numeric field."""
    cells = line.split(case.sep)
    cells[case.not_a_number[1]] = "cheap"
    return case.sep.join(cells)


def test_text_in_a_numeric_field_names_file_line_and_field(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, _, run = trained
    line, _, field = case.not_a_number
    lines = list(case.drifted)
    lines[line - 1] = with_text_in_the_number(case, lines[line - 1])
    raw = write_lines(tmp_path / "bad.txt", lines)
    err = failed_predict(run, raw, tmp_path / "out.csv", capsys)
    assert f"file {raw}, line {line}, field '{field}': not a number, got 'cheap'" in err


def test_a_missing_column_is_an_error_naming_file_and_line(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, _, run = trained
    lines, message = case.missing
    raw = write_lines(tmp_path / "short.txt", lines)
    assert f"file {raw}, {message}" in failed_predict(run, raw, tmp_path / "out.csv", capsys)


def test_an_empty_file_is_an_error_naming_file_and_line(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, run = trained
    raw = tmp_path / "empty.txt"
    raw.write_bytes(b"")
    err = failed_predict(run, raw, tmp_path / "out.csv", capsys)
    assert f"file {raw}, line 1: file is empty" in err


@pytest.mark.parametrize("trained", ["csv"], indirect=True)  # Criteo files have no header
def test_header_only_csv_is_an_error_naming_file_and_line(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    case, _, run = trained
    raw = write_lines(tmp_path / "header.csv", case.drifted[:1])
    err = failed_predict(run, raw, tmp_path / "out.csv", capsys)
    assert f"file {raw}, line 2: file has no data rows" in err


def test_predict_streams_chunks_and_a_late_bad_row_leaves_the_old_output(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Several reader chunks give the in-memory predictions; a bad row in the last chunk
    (after earlier chunks were written) leaves the previous output and no temporary file."""
    case, store, run = trained
    lines = case.lines(CHUNKED_ROWS, 1)
    raw, out = write_lines(tmp_path / "big.txt", lines), tmp_path / "out.csv"
    chunks = [encoded for encoded, _ in store.encode_chunks(raw)]
    assert len(chunks) > 1
    assert predict(run, raw, out) == 0
    model = load_trained(run)
    want = predict_split(model.group, model.objective, SplitArrays.concat(chunks), 4096,
                         torch.device("cpu"))
    np.testing.assert_allclose(predictions(out), want["deepfm"], rtol=0, atol=1e-6)

    before = out.read_bytes()
    write_lines(raw, [*lines, with_text_in_the_number(case, lines[-1])])
    capsys.readouterr()
    assert predict(run, raw, out) == 2
    assert f"line {len(lines) + 1}" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "out.csv"]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_exported_model_gives_the_predictions_of_predict(
    trained: tuple[Case, EncodedStore, Path], tmp_path: Path, fmt: str,
) -> None:
    """On drifted rows (OOV ids, missing numbers), 9 rows where export traced with 4."""
    case, store, run = trained
    raw = write_lines(tmp_path / "drifted.txt", case.drifted + case.lines(5, 3)[-5:])
    assert predict(run, raw, tmp_path / "out.csv") == 0
    model_file = tmp_path / f"model{SUFFIXES[fmt]}"
    assert main(["export", str(run), "--format", fmt, "--out", str(model_file)]) == 0
    encoded, _ = store.encode_file(raw)
    got = run_exported(model_file, named_inputs(store.feature_map, encoded))["deepfm"]
    np.testing.assert_allclose(got, predictions(tmp_path / "out.csv"), rtol=0, atol=1e-5)


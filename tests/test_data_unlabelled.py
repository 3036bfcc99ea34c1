"""Prediction inputs without a label column: encoded exactly like their labelled twins."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_files import build, criteo_line, write_lines
from mutualctr.cli import main
from mutualctr.data.readers.avazu import RAW_FIELDS as AVAZU_FIELDS
from mutualctr.data.readers.frappe import FIELDS as FRAPPE_FIELDS
from mutualctr.data.readers.tabular import TabularSpec
from mutualctr.data.schema import FieldSpec
from mutualctr.errors import DataError

Rows = list[list[str]]


def without(rows: Rows, column: int) -> Rows:
    return [row[:column] + row[column + 1:] for row in rows]


def write_rows(path: Path, rows: Rows, sep: str) -> Path:
    return write_lines(path, [sep.join(row) for row in rows])


def criteo_rows() -> Rows:
    lines = [criteo_line("1", I1="5", I2="", C1="a", C2="x"), criteo_line("0", I1="1", C1="b"),
             criteo_line("0", I1="30", C1="a", C2="y"), criteo_line("1", C1="zzz", C2="x")]
    return [line.split("\t") for line in lines]


def avazu_rows() -> Rows:
    header = ["id", "click", "hour", *AVAZU_FIELDS]
    values = [[str(i), str(i % 2), f"1410{21 + i % 3:02d}{i:02d}",
               *(f"{name}{i % (2 + k % 3)}" for k, name in enumerate(AVAZU_FIELDS))]
              for i in range(6)]
    return [header, *values]


def frappe_rows() -> Rows:
    return [["label", *FRAPPE_FIELDS]] + [
        [str(i % 2), *(f"{name}{(i * (k + 1)) % 3}" for k, name in enumerate(FRAPPE_FIELDS))]
        for i in range(5)
    ]


def libfm_rows() -> Rows:
    return [[("1", "-1")[i % 2], *(f"{k * 10 + (i * k) % 3}:1" for k in range(10))]
            for i in range(5)]


RATINGS = [["1", "10", "4.0", "3600"], ["1", "20", "2.5", "7300"], ["2", "10", "5.0", "90000"],
           ["2", "30", "3.0", "7300"], ["3", "99", "1.0", "200000"]]


def movielens_csv(folder: Path, rows: Rows) -> Path:
    folder.mkdir()
    write_lines(folder / "movies.csv", ["movieId,title,genres", "10,A,Comedy|Drama",
                                        "20,B,Drama", "30,C,(no genres listed)"])
    return write_rows(folder / "ratings.csv", rows, ",")


def movielens_dat(folder: Path, rows: Rows) -> Path:
    folder.mkdir()
    write_lines(folder / "movies.dat", ["10::A::Comedy|Drama", "20::B::Drama"])
    return write_rows(folder / "ratings.dat", rows, "::")


SPEC = TabularSpec(label="clicked", fields=(
    FieldSpec("user", "categorical"), FieldSpec("price", "numeric"),
    FieldSpec("tags", "sequence", max_len=2),
))
TABULAR = [["clicked", "user", "price", "tags"], ["1", "u1", "2.5", "a|b"],
           ["0", "u2", "", "b"], ["true", "u1", "4", "a|c|b"], ["false", "u3", "1", ""]]


def parquet(path: Path, rows: Rows) -> Path:
    header, *values = rows
    pq.write_table(pa.table({name: [row[k] for row in values]
                             for k, name in enumerate(header)}), path)
    return path


# format, reader options, rows (with a header if the format has one), label column, writer
Case = tuple[str, dict, Rows, int, Callable[[Path, Rows], Path]]
CASES: dict[str, Case] = {
    "criteo": ("criteo", {"min_count": 1}, criteo_rows(), 0,
               lambda d, r: write_rows(d / "t.txt", r, "\t")),
    "avazu": ("avazu", {"min_count": 1}, avazu_rows(), 1,
              lambda d, r: write_rows(d / "t.csv", r, ",")),
    "frappe-csv": ("frappe", {}, frappe_rows(), 0, lambda d, r: write_rows(d / "t.csv", r, ",")),
    "frappe-libfm": ("frappe", {}, libfm_rows(), 0,
                     lambda d, r: write_rows(d / "t.libfm", r, " ")),
    "movielens-csv": ("movielens", {}, [["userId", "movieId", "rating", "timestamp"], *RATINGS],
                      2, lambda d, r: movielens_csv(d / "ml", r)),
    "movielens-dat": ("movielens", {}, RATINGS, 2,
                      lambda d, r: movielens_dat(d / "ml", r)),
    "csv": ("csv", {"tabular": SPEC}, TABULAR, 0, lambda d, r: write_rows(d / "t.csv", r, ",")),
    "parquet": ("parquet", {"tabular": SPEC}, TABULAR, 0, lambda d, r: parquet(d / "t.pq", r)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_unlabelled_file_gets_the_ids_of_its_labelled_twin(tmp_path: Path, case: str) -> None:
    fmt, options, rows, label_column, write = CASES[case]
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    labelled = write(tmp_path / "with", rows)
    unlabelled = write(tmp_path / "without", without(rows, label_column))
    store = build(tmp_path, fmt, [labelled], **options)
    want, want_raw = store.encode_file(labelled)
    got, got_raw = store.encode_file(unlabelled)

    train = store.split("train")
    np.testing.assert_array_equal(want.label, train.label)  # the labelled file is the train set
    assert len(got) == len(want) == len(train) > 0
    np.testing.assert_array_equal(got.categorical, want.categorical)
    np.testing.assert_array_equal(got.numeric, want.numeric)
    for got_seq, want_seq in zip(got.sequences, want.sequences, strict=True):
        np.testing.assert_array_equal(got_seq, want_seq)
    assert np.isnan(got.label).all()
    label_name = store.encoder.schema.label
    assert got_raw.num_rows == want_raw.num_rows
    assert label_name in want_raw.column_names and label_name not in got_raw.column_names


def test_training_still_needs_the_label(tmp_path: Path) -> None:
    rows = without(criteo_rows(), 0)
    path = write_rows(tmp_path / "t.txt", rows, "\t")
    with pytest.raises(DataError, match="expected 40 columns, found 39") as info:
        build(tmp_path, "criteo", [path])
    assert info.value.line == 1
    avazu = write_rows(tmp_path / "a.csv", without(avazu_rows(), 1), ",")
    with pytest.raises(DataError, match="missing Avazu columns: click"):
        build(tmp_path, "avazu", [avazu], out="avazu")


def test_bad_rows_of_unlabelled_files_name_file_line_and_field(tmp_path: Path) -> None:
    rows = criteo_rows()
    store = build(tmp_path, "criteo", [write_rows(tmp_path / "t.txt", rows, "\t")])
    bad = without(rows, 0)
    bad[2][3] = "x"  # I4
    path = write_rows(tmp_path / "bad.txt", bad, "\t")
    with pytest.raises(DataError, match="not a number") as info:
        store.encode_file(path)
    assert (info.value.file, info.value.line, info.value.field) == (str(path), 3, "I4")
    mixed = write_rows(tmp_path / "mixed.txt", [*without(rows, 0)[:2], rows[2]], "\t")
    with pytest.raises(DataError, match="expected 39 columns, found 40") as info:
        store.encode_file(mixed)
    assert info.value.line == 3


def test_predict_on_an_unlabelled_file(tmp_path: Path) -> None:
    """End to end: the same predictions with and without the label column, appended to the
    raw rows."""
    rng = np.random.default_rng(0)
    lines = [criteo_line(str(int(c == "a")), I1=str(rng.integers(0, 9)), C1=c)
             for c in rng.choice(["a", "b", "c"], size=300)]
    raw, store, run = tmp_path / "raw.txt", tmp_path / "store", tmp_path / "run"
    write_lines(raw, lines)
    assert main(["data", "prepare", "--format", "criteo", "--min-count", "1", "--out",
                 str(store), str(raw)]) == 0
    assert main(["train", "--data", str(store), "--model", "lr", "--out", str(run),
                 "--epochs", "1", "--set", "train.batch_size=100"]) == 0
    few = [line.split("\t") for line in lines[:6]]
    outputs = {}
    for name, rows in (("with", few), ("without", without(few, 0))):
        out = tmp_path / f"{name}.csv"
        path = write_rows(tmp_path / f"{name}.txt", rows, "\t")
        assert main(["predict", str(run), "--input", str(path), "--out", str(out)]) == 0
        with open(out, newline="") as handle:
            outputs[name] = list(csv.DictReader(handle))
    got, want = outputs["without"], outputs["with"]
    assert len(got) == 6 and "label" not in got[0]
    assert list(got[0]) == list(want[0])[1:]  # the raw columns, then "prediction"
    assert [r["C1"] for r in got] == [row[14] for row in few]
    assert [r["prediction"] for r in got] == [r["prediction"] for r in want]
    probs = np.array([float(r["prediction"]) for r in got])
    assert ((probs > 0) & (probs < 1)).all()

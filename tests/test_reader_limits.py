"""Inputs at the edges of what the readers parse: long lines, byte-order marks, and a run
folder's config edited by hand. Each gives the rows or a clear error naming file and line,
never a traceback of the parser underneath."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from data_files import build, criteo_line, write_lines
from mutualctr.cli import main
from mutualctr.data.readers import text as text_reader
from mutualctr.data.readers.base import BadRows
from mutualctr.data.readers.tabular import load_spec
from mutualctr.data.schema import OOV_ID
from mutualctr.data.store import EncodedStore
from mutualctr.errors import DataError
from test_data_readers import SCHEMA_YAML


def read_all(path: Path, mode: str = "error", block_size: int = 64) -> tuple[list, list, BadRows]:
    bad = BadRows(mode)  # type: ignore[arg-type]
    rows: list[list[str]] = []
    lines: list[int] = []
    for table, table_lines in text_reader.read_delimited(path, bad, delimiter=",",
                                                         block_size=block_size, chunk_rows=1):
        columns = [[v.decode() for v in table.column(i).to_pylist()]
                   for i in range(table.num_columns)]
        rows += [list(row) for row in zip(*columns, strict=True)]
        lines += table_lines.tolist()
    return rows, lines, bad


def test_lines_longer_than_a_block_are_read_whole_with_their_line_numbers(tmp_path: Path) -> None:
    long_a, long_b = "a" * 300, "b;" * 2000  # 4.7 and 62 blocks of 64 bytes
    rows = [["1", "u1", long_a], ["0", "u2", "x"], ["1", long_b, "y"], ["0", "u3", "z"]]
    path = tmp_path / "long.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([["clicked", "user", "tags"], *rows])
    got, lines, _ = read_all(path)
    assert got == rows
    assert lines == [2, 3, 4, 5]


def test_bad_rows_around_a_long_line_are_reported_once_in_skip_mode(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "mixed.csv", [
        "clicked,user,tags", "1,u1", "0,u2,x", "1,u3," + "c" * 500, "0,u4,y,extra", "1,u5,z",
    ])
    got, lines, bad = read_all(path, mode="skip")
    assert [row[1] for row in got] == ["u2", "u3", "u5"]
    assert lines == [3, 4, 6]
    assert bad.count == 2
    assert sorted(example["line"] for example in bad.examples) == [2, 5]


def test_a_line_over_the_limit_is_an_error_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(text_reader, "MAX_LINE_BYTES", 1000)
    path = write_lines(tmp_path / "huge.csv", ["clicked,user,tags", "1,u1,a", "0,u2," + "x" * 2000])
    with pytest.raises(DataError, match=r"huge\.csv, line 3: line is 2,005 bytes, longer than "
                                         r"the 1,000"):
        read_all(path)


def test_a_csv_value_over_pythons_field_limit_prepares_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A 2 MiB value (over the 1 MiB block and the csv module's 128 KiB field limit) beside a
    row with a missing column: the store is built in skip mode and the error names the row."""
    (tmp_path / "schema.yaml").write_text(SCHEMA_YAML)
    big = ";".join(["t"] * (1 << 20))
    path = write_lines(tmp_path / "long.csv", [
        "clicked,user,price,tags", "1,u1,1,a;b", f"0,u2,3,{big}", "1,u1", "1,u3,2,a",
    ])
    common = ["data", "prepare", str(path), "--format", "csv",
              "--schema", str(tmp_path / "schema.yaml")]
    assert main([*common, "--out", str(tmp_path / "strict")]) == 2
    assert "long.csv, line 4: expected 4 columns, found 2" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "store"), "--on-bad-row", "skip",
                 "--split", "random", "--ratios", "1", "0", "0"]) == 0
    store = EncodedStore.open(tmp_path / "store")
    train = store.split("train")
    np.testing.assert_array_equal(train.label, [1, 0, 1])
    # "t" 2^20 times, truncated to max_len 2: its code twice
    t_code = OOV_ID + 1 + store.encoder.vocabs["tags"].to_pylist().index("t")
    np.testing.assert_array_equal(train.sequences[0][1], [t_code, t_code])


def test_a_criteo_line_over_the_block_size_is_read(tmp_path: Path) -> None:
    lines = [criteo_line("1", C1="a", I1="3") for _ in range(6)]
    lines.insert(3, criteo_line("0", C1="b" * (3 << 20), I1="5"))
    store = build(tmp_path, "criteo", [write_lines(tmp_path / "day_0.txt", lines)],
                  min_count=1)
    train = store.split("train")
    np.testing.assert_array_equal(train.label, [1, 1, 1, 0, 1, 1, 1])


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    (tmp_path / "schema.yaml").write_text(SCHEMA_YAML)
    body = "user,clicked,price,tags\nu1,1,1,a;b\nu2,0,3,b\n"
    plain = tmp_path / "plain.csv"
    plain.write_text(body)
    marked = tmp_path / "marked.csv"
    marked.write_text(body, encoding="utf-8-sig")
    spec = load_spec(tmp_path / "schema.yaml")
    stores = [build(tmp_path, "csv", [path], out=path.stem, tabular=spec)
              for path in (plain, marked)]
    assert stores[0].encoder.vocabs["user"].to_pylist() == \
        stores[1].encoder.vocabs["user"].to_pylist()
    np.testing.assert_array_equal(stores[0].split("train").categorical,
                                  stores[1].split("train").categorical)


def test_a_byte_order_mark_before_a_headerless_criteo_file_is_dropped(tmp_path: Path) -> None:
    lines = [criteo_line("1", C1="a"), criteo_line("0", C1="b")]
    path = tmp_path / "day_0.txt"
    path.write_text("\ufeff" + "".join(line + "\n" for line in lines), encoding="utf-8")
    store = build(tmp_path, "criteo", [path], min_count=1)
    np.testing.assert_array_equal(store.split("train").label, [1, 0])


def test_a_yaml_tag_in_a_run_folders_config_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("method: train\ntrain: !!python/object/apply:os.system "
                                     "['touch planted']\n")
    lines = [criteo_line(str(i % 2), C1="ab"[i % 2]) for i in range(20)]
    store = build(tmp_path, "criteo", [write_lines(tmp_path / "day_0.txt", lines)], min_count=1)
    train = ["train", "--out", str(run), "--data", str(store.root), "--model", "deepfm"]
    for command in ([*train, "--resume"], train):  # read for --resume, and to compare configs
        assert main(command) == 2
        err = capsys.readouterr().err
        assert re.search(r"(?s)run/config\.yaml is not valid YAML.*could not determine a "
                         r"constructor.*config\.yaml was edited or damaged: restore it", err), err
    assert not (tmp_path / "planted").exists()

"""data prepare: bad input, skipping, splits, store reuse and refusal, probabilities, CLI."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from data_files import ALL_TRAIN, build, criteo_line, write_lines
from full_disk import FsyncFails, enospc, open_filling_up, temporary_files
from mutualctr.cli import main
from mutualctr.data import prepare as prepare_module
from mutualctr.data import store as store_module
from mutualctr.data.prepare import SplitOptions, prepare, row_uniforms
from mutualctr.data.readers import ReaderOptions
from mutualctr.data.readers.base import BadRows
from mutualctr.data.readers.criteo import COLUMNS, CriteoReader
from mutualctr.data.readers.text import read_delimited
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError
from mutualctr.metrics import auc

GOOD = criteo_line("1", I1="3", C1="ab")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def prepare_error(tmp_path: Path, lines: list[str] | bytes, fmt: str = "criteo") -> DataError:
    path = tmp_path / "bad.txt"
    if isinstance(lines, bytes):
        path.write_bytes(lines)
    else:
        write_lines(path, lines)
    with pytest.raises(DataError) as info:
        prepare([path], tmp_path / "store", fmt, split=ALL_TRAIN)
    assert info.value.file == str(path)
    assert not (tmp_path / "store" / "meta.json").exists()
    return info.value


@pytest.mark.parametrize(
    ("bad_line", "field", "reason"),
    [
        ("\t".join(GOOD.split("\t")[:-1]), None, "expected 40 columns, found 39"),
        (criteo_line("1", I3="abc"), "I3", "not a number, got 'abc'"),
        (criteo_line("1", I3="inf"), "I3", "not a finite number"),
        (criteo_line("2"), "label", "label must be one of '0', '1', got '2'"),
        (criteo_line(""), "label", "label must be one of"),
    ],
)
def test_bad_row_names_file_line_and_field(
    tmp_path: Path, bad_line: str, field: str | None, reason: str,
) -> None:
    err = prepare_error(tmp_path, [GOOD, GOOD, bad_line, GOOD])
    assert (err.line, err.field) == (3, field)
    assert reason in str(err) and "line 3" in str(err)


def test_undecodable_bytes(tmp_path: Path) -> None:
    text = GOOD + "\n" + criteo_line("0", C5="\udcff") + "\n"
    content = text.encode("utf-8", "surrogateescape")
    err = prepare_error(tmp_path, content)
    assert (err.line, err.field) == (2, "C5")
    assert "not UTF-8" in str(err)


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    assert "file is empty" in str(prepare_error(tmp_path, b""))
    header_only = prepare_error(tmp_path, ["label,user,item"], fmt="frappe")
    assert "missing Frappe columns" in str(header_only)
    frappe_header = "label,user,item,daytime,weekday,isweekend,homework,cost,weather,country,city"
    assert "no data rows" in str(prepare_error(tmp_path, [frappe_header], fmt="frappe"))


def test_earliest_bad_line_is_reported(tmp_path: Path) -> None:
    err = prepare_error(tmp_path, [GOOD, criteo_line("1", I9="x"), criteo_line("1", I1="y")])
    assert (err.line, err.field) == (2, "I9")


def test_skip_mode_counts_and_records_every_skipped_row(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.txt", [
        GOOD, "1\t2", criteo_line("7"), GOOD, criteo_line("0", I2="x"), GOOD,
    ])
    store = prepare([path], tmp_path / "store", "criteo", split=ALL_TRAIN,
                    on_bad_row="skip").store
    skipped = store.meta["skipped"]
    assert store.meta["splits"]["train"]["rows"] == 3
    assert skipped["rows"] == 3
    assert skipped["by_reason"] == {
        "expected 40 columns, found 2": 1, "label: label must be one of '0', '1'": 1,
        "I2: not a number": 1,
    }
    assert [(e["line"], e["field"]) for e in skipped["examples"]] == [
        (2, None), (3, "label"), (5, "I2"),
    ]


def test_line_numbers_stay_right_across_blocks_with_dropped_rows(tmp_path: Path) -> None:
    lines = [criteo_line(str(i % 2), I1=str(i)) for i in range(60)]
    lines[7] = "only\tthree\tcolumns"
    lines[31] = "x"
    lines[44] = criteo_line("1", I1="nan?")
    path = write_lines(tmp_path / "train.txt", lines)
    blocks = read_delimited(path, BadRows("skip"), delimiter="\t", column_names=COLUMNS,
                            quoted=False, block_size=256, chunk_rows=1)
    assert len(list(blocks)) >= 8
    bad = BadRows("skip")
    chunks = list(CriteoReader(block_size=256).read(path, bad))
    kept = np.concatenate([c.lines for c in chunks])
    np.testing.assert_array_equal(kept, [i + 1 for i in range(60) if i not in (7, 31, 44)])
    assert [e["line"] for e in bad.examples] == [8, 32, 45]


def test_random_split_is_a_seeded_function_of_each_row() -> None:
    lines = np.arange(1, 200_001)
    u = row_uniforms(5, 0, lines)
    np.testing.assert_array_equal(row_uniforms(5, 0, lines[1000:1010]), u[1000:1010])
    assert not np.array_equal(row_uniforms(6, 0, lines[:100]), u[:100])
    assert not np.array_equal(row_uniforms(5, 1, lines[:100]), u[:100])
    fractions = np.histogram(u, bins=[0, 0.8, 0.9, 1.0])[0] / len(u)
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.003)


def synthetic_criteo(path: Path, rows: int, seed: int = 0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    prob = rng.random(rows)
    label = (rng.random(rows) < prob).astype(int)
    lines = [
        criteo_line(str(y), I1=str(int(10 * p)), C1=f"{rng.integers(0, 30):x}", C2=str(i))
        for i, (y, p) in enumerate(zip(label, prob, strict=True))
    ]
    write_lines(path, lines)
    probs = path.with_suffix(".probs")
    probs.write_text("".join(f"{p:.17g}\n" for p in prob))
    return probs, prob


def test_splits_are_deterministic_and_match_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    synthetic_criteo(path, 500)
    split = SplitOptions("random", (0.6, 0.2, 0.2), seed=3)
    a = prepare([path], tmp_path / "a", "criteo", split=split).store
    b = prepare([path], tmp_path / "b", "criteo", split=split).store
    which = np.searchsorted([0.6, 0.8], row_uniforms(3, 0, np.arange(1, 501)), side="right")
    for k, name in enumerate(("train", "valid", "test")):
        for (_, x), (_, y) in zip(a.split(name).arrays(), b.split(name).arrays(), strict=True):
            np.testing.assert_array_equal(x, y)
        assert len(a.split(name)) == (which == k).sum()
    c = prepare([path], tmp_path / "c", "criteo",
                split=SplitOptions("random", (0.6, 0.2, 0.2), seed=4)).store
    assert not np.array_equal(c.split("train").label, a.split("train").label)


def test_chronological_and_file_splits(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.txt", [criteo_line(str(i % 2), C1=str(i)) for i in range(10)])
    chrono = prepare([path], tmp_path / "chrono", "criteo",
                     split=SplitOptions("chronological", (0.8, 0.1, 0.1))).store
    assert [chrono.meta["splits"][n]["rows"] for n in ("train", "valid", "test")] == [8, 1, 1]
    np.testing.assert_array_equal(chrono.split("test").label, [1])
    valid = write_lines(tmp_path / "v.txt", [criteo_line("1", C1="0")])
    files = prepare([path, valid], tmp_path / "files", "criteo",
                    split=SplitOptions("files"), reader_options=ReaderOptions(min_count=1)).store
    assert files.split_names == ("train", "valid")
    assert files.split("valid").categorical[0, 13] == 2 + sorted(map(str, range(10))).index("0")


def test_chronological_split_is_refused_for_movielens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sorted by user"):
        prepare([SHARED_DATA / "movielens_latest_small"], tmp_path / "s", "movielens",
                split=SplitOptions("chronological"))


def test_store_is_reused_refused_or_overwritten(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.txt", [GOOD, criteo_line("0", C1="x")])
    out = tmp_path / "store"
    first = prepare([path], out, "criteo")
    assert not first.reused
    stamp = os.stat(out / "train" / "categorical.npy").st_mtime_ns
    again = prepare([path], out, "criteo")
    assert again.reused
    assert os.stat(out / "train" / "categorical.npy").st_mtime_ns == stamp
    with pytest.raises(DataError, match="setting 'min_count'"):
        prepare([path], out, "criteo", reader_options=ReaderOptions(min_count=3))
    write_lines(path, [GOOD, criteo_line("1", C1="x")])
    with pytest.raises(DataError, match="other inputs"):
        prepare([path], out, "criteo")
    rebuilt = prepare([path], out, "criteo", overwrite=True)
    assert not rebuilt.reused and rebuilt.store.split("valid").label.sum() + rebuilt.store.split(
        "train").label.sum() + rebuilt.store.split("test").label.sum() == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an encoded store"):
        prepare([path], tmp_path / "other", "criteo")


def test_probabilities_are_aligned_and_give_bayes_auc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "train.txt"
    probs, prob = synthetic_criteo(path, 400, seed=1)
    out = tmp_path / "store"
    code = main(["data", "prepare", "--format", "criteo", str(path), "--probs", str(probs),
                 "--out", str(out), "--min-count", "1"])
    assert code == 0
    store = EncodedStore.open(out)
    which = np.searchsorted([0.8, 0.9], row_uniforms(0, 0, np.arange(1, 401)), side="right")
    for k, name in enumerate(store.split_names):
        rows = np.flatnonzero(which == k)  # the split's rows, in file order
        np.testing.assert_array_equal(store.split(name).prob, prob[rows].astype(np.float32))
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    train = store.split("train")
    assert f"Bayes AUC {auc(train.label, train.prob):.4f}" in printed
    short = tmp_path / "short.probs"
    short.write_text("0.5\n")
    assert main(["data", "prepare", "--format", "criteo", str(path), "--probs", str(short),
                 "--out", str(tmp_path / "s2")]) == 2
    assert "has 1 lines but the data has a row on line" in capsys.readouterr().err


class _StreamOnFullDisk:
    """Stands for pyarrow's IPC stream writer on a full disk: a few bytes, then ENOSPC."""

    def __init__(self, sink: str, schema: object) -> None:
        Path(sink).write_bytes(b"partial")

    def write_batch(self, batch: object) -> None:
        raise enospc()

    def close(self) -> None:
        pass


def _fill_the_disk(site: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``site``'s write fail with ENOSPC; returns the path the error must name."""
    if site == "arrays":  # the first array file takes 1000 bytes, then the disk is full
        monkeypatch.setattr(store_module, "open", open_filling_up(1000), raising=False)
        return "train/categorical.npy: "
    if site == "cache":
        monkeypatch.setattr(prepare_module.pa.ipc, "new_stream", _StreamOnFullDisk)
        return f"{prepare_module.CACHE_FILE}: "
    FsyncFails(monkeypatch, "meta", ".json")
    return "meta.json: "


@pytest.mark.parametrize("site", ["cache", "arrays", "meta"])
def test_full_disk_during_prepare_names_the_file_leaves_no_store_and_a_rerun_builds_it(
    site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "train.txt"
    synthetic_criteo(path, 300)
    out = tmp_path / "store"
    args = ["data", "prepare", "--format", "criteo", "--min-count", "1", "--out", str(out),
            str(path)]
    named = _fill_the_disk(site, monkeypatch)
    assert main(args) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert re.search(re.escape(named) + r"No space left on device \((needs at least \d+ "
                     r"bytes, )?\d+ bytes free\)", err), err
    assert str(out) in err
    assert not (out / "meta.json").exists()  # no reader takes the folder for a store
    assert temporary_files(out) == [] and not (out / prepare_module.CACHE_FILE).exists()
    assert main(args) == 0  # the unfinished store is rebuilt without --overwrite
    straight = prepare([path], tmp_path / "straight", "criteo",
                       reader_options=ReaderOptions(min_count=1)).store
    rebuilt = EncodedStore.open(out)
    for name in straight.split_names:
        np.testing.assert_array_equal(rebuilt.split(name).categorical,
                                      straight.split(name).categorical)


def test_cli_reports_bad_rows_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_lines(tmp_path / "t.txt", [GOOD, criteo_line("1", I4="4x")])
    assert main(["data", "prepare", "--format", "criteo", str(path), "--out",
                 str(tmp_path / "s")]) == 2
    assert f"file {path}, line 2, field 'I4': not a number" in capsys.readouterr().err
    assert main(["data", "prepare", "--format", "criteo", str(path), "--out",
                 str(tmp_path / "s"), "--on-bad-row", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "skipped rows: 1" in printed and "I4: not a number: 1" in printed


def test_movielens_latest_small(tmp_path: Path) -> None:
    folder = SHARED_DATA / "movielens_latest_small"
    store = build(tmp_path, "movielens", [folder], split=SplitOptions(seed=0))
    splits = store.meta["splits"]
    assert sum(s["rows"] for s in splits.values()) == 100_836  # SOURCE.md
    assert sum(s["positives"] for s in splits.values()) == 48_580
    sizes = {f.name: f.vocab_size for f in store.feature_map.features}
    assert sizes["user"] == 610 + 2  # every user has >= 20 ratings, all in train
    assert sizes["weekday"] == 7 + 2 and sizes["hour"] == 24 + 2
    assert store.feature_map.sequence[0].max_len == 10
    assert 0.78 < splits["train"]["rows"] / 100_836 < 0.82
    train = store.split("train")
    assert train.categorical.min() >= 2  # no OOV in the rows the vocabulary was fitted on
    assert train.sequences[0][:, 0].min() >= 2


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [("0.5\n1.5\n0.1\n", 2, "expected a probability in [0, 1]"),
     ("0.5\nx\n0.1\n", 2, "expected a probability in [0, 1]"),
     ("0.5\n0.2,0.3\n0.1\n", 2, "expected 1 columns, found 2"),
     ("", 1, "file is empty")],
)
def test_bad_probability_files(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = write_lines(tmp_path / "t.txt", [GOOD, GOOD, GOOD])
    probs = tmp_path / "p.txt"
    probs.write_text(content)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        prepare([path], tmp_path / "store", "criteo", probs=probs)
    assert (info.value.file, info.value.line) == (str(probs), line)

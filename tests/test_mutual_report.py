"""Report helpers: markdown tables, CSV and plots (the statistics: test_statistics.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mutualctr.experiments.report import (
    format_percent,
    markdown_table,
    plot_grouped_bars,
    plot_lines,
    write_csv,
)


def test_format_percent_is_signed() -> None:
    assert format_percent(0.0031) == "+0.31%"
    assert format_percent(-0.00046, digits=3) == "-0.046%"


def test_markdown_table_layout() -> None:
    text = markdown_table(["model", "AUC"], [["deepfm", "0.8000"]])
    assert text.splitlines() == ["| model | AUC |", "|:--|--:|", "| deepfm | 0.8000 |"]
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["x"]])


def test_csv_and_plots_are_written(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", [{"a": 1, "b": 2}, {"a": 3, "c": 4}])
    with (tmp_path / "r.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [{"a": "1", "b": "2", "c": ""}, {"a": "3", "b": "", "c": "4"}]
    plot_lines(tmp_path / "n.png", [2, 3], {"deepfm": [(0.8, 0.01), (0.81, 0.0)]},
               xlabel="N", ylabel="AUC", title="t")
    plot_grouped_bars(tmp_path / "b.png", ["deepfm"], {"alone": [(0.8, 0.01)]},
                      ylabel="AUC", title="t")
    for name in ("n.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Preprocessing: ``mutualctr data prepare`` against FuxiCTR 2.3.10's FeatureProcessor.

On Criteo-format rows from the synthetic generator (seed 0) this script measures, side by side:

1. our preprocessing (random 8:1:1 split, encoder fitted on train with min count 10 and
   ``floor(ln(x)^2)`` integer buckets, the store written), twice: the wall time of the command
   ``mutualctr data prepare --format criteo FILE --out DIR`` (interpreter start and imports
   included) and the time of ``mutualctr.data.prepare.prepare`` inside the process;
2. the time FuxiCTR 2.3.10 spends in ``build_dataset`` with its Criteo_x4 settings (min count 10,
   ``convert_to_bucket``) inside the process, run through the FuxiCTR virtual environment's
   Python. FuxiCTR gets the same rows already split 8:1:1 into three files (its 2.3.10 reader
   cannot split a lazy frame); that split is not timed, which favours FuxiCTR;
3. the peak resident memory of our prepare on ``--rows`` and on ``--big-rows`` rows (the
   streaming claim: the ratio should stay near 1).

Usage::

    python benchmarks/bench_preprocess.py --rows 1000000 --big-rows 10000000 --work "$WORK/bench" \\
        --fuxi-python "$FUXIENV/bin/python"

``$WORK`` is an absolute scratch folder; the FuxiCTR environment ``$FUXIENV`` is set up as
benchmarks/README.md says (``--fuxi-python`` takes its Python).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mutualctr.data.synthetic import generate_criteo_synthetic

REFERENCE_DIR = Path(__file__).resolve().parent / "fuxictr_reference"
COLUMNS = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]


def synth_file(work: Path, rows: int) -> Path:
    """The generator's output for ``rows`` rows (seed 0), reused when already there."""
    path = work / f"criteo_synth_{rows}.txt"
    if not path.is_file():
        partial = path.with_suffix(".partial")
        generate_criteo_synthetic(partial, rows, seed=0)
        partial.rename(path)
    return path


def run_measured(command: list[str], log: Path) -> tuple[float, float, str]:
    """Run ``command``; its wall seconds, its own peak RSS in MiB (``wait4``) and its stdout."""
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.with_suffix(".err").read_text()[-3000:]
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{tail}")
    return seconds, usage.ru_maxrss / 1024, log.with_suffix(".out").read_text()


# Times the pipeline inside the process, after imports: what FuxiCTR's side measures too.
_TIME_PREPARE = """
import json, sys, time
from pathlib import Path
from mutualctr.data.prepare import prepare
start = time.perf_counter()
prepare([Path(sys.argv[1])], Path(sys.argv[2]), "criteo")
print("RESULT " + json.dumps({"seconds": time.perf_counter() - start}))
"""


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def prepare_ours(raw: Path, work: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``mutualctr data prepare`` on ``raw``."""
    out = _fresh(work / f"store_{raw.stem}")
    command = [sys.executable, "-m", "mutualctr", "data", "prepare", "--format", "criteo",
               str(raw), "--out", str(out)]
    seconds, rss, _ = run_measured(command, work / f"ours_{raw.stem}")
    return seconds, rss


def prepare_ours_in_process(raw: Path, work: Path) -> float:
    """Seconds of :func:`mutualctr.data.prepare.prepare` on ``raw``, imports excluded."""
    out = _fresh(work / f"store_{raw.stem}")
    _, _, stdout = run_measured([sys.executable, "-c", _TIME_PREPARE, str(raw), str(out)],
                                work / f"ours_in_process_{raw.stem}")
    return _result(stdout)["seconds"]


def _result(stdout: str) -> dict[str, float]:
    line = next(x for x in stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def split_for_fuxictr(raw: Path, work: Path, seed: int = 0) -> dict[str, Path]:
    """Random 8:1:1 split of ``raw`` into three TSV files with a header (FuxiCTR's input)."""
    read = pacsv.ReadOptions(column_names=COLUMNS)
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(COLUMNS, pa.string()),
                                   strings_can_be_null=False)
    table = pacsv.read_csv(raw, read_options=read, convert_options=convert,
                           parse_options=pacsv.ParseOptions(delimiter="\t"))
    order = np.random.default_rng(seed).permutation(len(table))
    cut_train, cut_valid = int(0.8 * len(order)), int(0.9 * len(order))
    parts = {"train": order[:cut_train], "valid": order[cut_train:cut_valid],
             "test": order[cut_valid:]}
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none")
    paths = {}
    for name, rows in parts.items():
        paths[name] = work / f"fuxictr_{raw.stem}_{name}.csv"
        pacsv.write_csv(table.take(np.sort(rows)), paths[name], write_options=options)
    return paths


def prepare_fuxictr(raw: Path, work: Path, fuxi_python: str) -> float:
    """Seconds FuxiCTR's ``build_dataset`` takes on the 8:1:1 split of ``raw``."""
    paths = split_for_fuxictr(raw, work)
    out = _fresh(work / f"fuxictr_{raw.stem}_data")
    command = [fuxi_python, str(REFERENCE_DIR / "run_preprocess.py"),
               "--train", str(paths["train"]), "--valid", str(paths["valid"]),
               "--test", str(paths["test"]), "--work", str(out), "--min-count", "10"]
    _, _, stdout = run_measured(command, work / f"fuxictr_{raw.stem}")
    return _result(stdout)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000,
                        help="rows of the file for the memory comparison (0: skip it)")
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "mutualctr_bench_preprocess",
                        help="scratch folder (absolute; default in the system temp folder)")
    parser.add_argument("--fuxi-python", default=os.environ.get("FUXI_PYTHON", ""),
                        help="Python of the FuxiCTR 2.3.10 environment (default: $FUXI_PYTHON; "
                             "'' skips FuxiCTR)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    raw = synth_file(args.work, args.rows)
    ours_s, ours_rss = prepare_ours(raw, args.work)
    inner_s = prepare_ours_in_process(raw, args.work)
    print(f"rows {args.rows:,d}, load average {os.getloadavg()[0]:.1f}")
    print(f"mutualctr data prepare (command, wall)   {ours_s:8.2f} s   peak RSS {ours_rss:.0f} MiB")
    print(f"mutualctr prepare() in process           {inner_s:8.2f} s")
    if args.fuxi_python:
        fuxi_s = prepare_fuxictr(raw, args.work, args.fuxi_python)
        print(f"FuxiCTR 2.3.10 build_dataset in process  {fuxi_s:8.2f} s")
        print(f"speed-up, in process: {fuxi_s / inner_s:.1f}x; command wall: "
              f"{fuxi_s / ours_s:.1f}x   (target >= 10)")
    if args.big_rows:
        big_s, big_rss = prepare_ours(synth_file(args.work, args.big_rows), args.work)
        print(f"rows {args.big_rows:,d}, load average {os.getloadavg()[0]:.1f}")
        print(f"mutualctr data prepare (command, wall)   {big_s:8.2f} s   "
              f"peak RSS {big_rss:.0f} MiB")
        print(f"peak RSS ratio {args.big_rows:,d} / {args.rows:,d} rows: "
              f"{big_rss / ours_rss:.2f}   (target <= 1.2)")


if __name__ == "__main__":
    main()

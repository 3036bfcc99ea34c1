"""Criteo size on one machine: how each stage's cost grows from 1M to 10M to 45M rows.

For each size, in order, each stage a command of its own (so its peak RSS is its own):

1. ``mutualctr data synth --regime criteo --rows N --seed 0``: Criteo-format rows with Criteo's
   vocabulary sizes (seed fixed);
2. ``mutualctr data prepare --format criteo --min-count 2``: the encoded store;
3. ``mutualctr train --model deepfm --epochs 1``: one DeepFM, one epoch;
4. ``mutualctr mutual --init RUN x4 --epochs 1``: a batched group of four DeepFMs finetuned
   mutually from that run for one epoch.

The training stages run under ``--optimizer`` (``train.optimizer``: ``adam``, or ``lazy_adam``,
which updates only the embedding rows a batch looks up), and ``--hash-buckets N`` prepares a
store of its own with fields of more than N kept values hashed; keep the results of each
setting in a ``--json`` of its own.

Per stage: wall time, rows/s (rows of the stage's input; training: training-split rows), peak
RSS of the command (``wait4``'s ``ru_maxrss``) and the peaks of its anonymous and file-backed
parts (sampled from ``/proc``: the memory-mapped store's pages count in the RSS but are page
cache), disk its output takes. Then each figure's growth
against the smallest size, and against the goals: prepare's peak RSS at the largest size within
1.3x of the smallest; training RSS = parameters + optimizer + a constant (no growth with rows:
the store is memory-mapped); the group's epoch at most 2x one model's. ``--plot`` draws the
growth curves. Usage::

    python benchmarks/bench_scale.py --rows 1000000 10000000 45000000 --work SCRATCH \\
        --json scale.json --plot scale.png

Disk: about 11 GB of raw text and 7 GB of store at 45M rows (SCRATCH is left in place); the
summary can be redrawn from ``--json`` with ``--report-only``. Results accumulate in ``--json``:
a later run adds its sizes and stages (``--stages synth prepare`` at a size whose training
would not fit the time at hand) to those already there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ("synth", "prepare", "train", "group")
FIGURES = ("wall_s", "rows_per_s", "peak_rss_mib", "peak_anon_mib", "peak_file_mib", "disk_mib")
GOALS = {"prepare": "peak RSS within 1.3x of the smallest size",
         "train": "peak RSS flat in rows (model + optimizer + constant)",
         "group": "epoch at most 2x one model's"}


def _rss_parts(pid: int) -> tuple[float, float]:
    """``(RssAnon, RssFile)`` of ``pid`` in MiB (Linux ``/proc``; zeros where unreadable)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    kib = {line.split(":")[0]: float(line.split()[1]) for line in text.splitlines()
           if line.startswith(("RssAnon:", "RssFile:"))}
    return kib.get("RssAnon", 0.0) / 1024, kib.get("RssFile", 0.0) / 1024


def measure(command: list[str], log: Path, every_s: float = 0.2) -> dict[str, float]:
    """Run ``command``; its wall time and peak RSS (MiB), and the peaks of the RSS's two parts
    sampled every ``every_s``: anonymous memory (what the process allocated) and file pages
    (the memory-mapped store and libraries, page cache the kernel can drop), since ``wait4``'s
    peak counts both. Output goes to ``log``."""
    start = time.perf_counter()
    peak_anon = peak_file = 0.0
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:  # ended; usage is its resources
                break
            anon, mapped = _rss_parts(proc.pid)
            peak_anon, peak_file = max(peak_anon, anon), max(peak_file, mapped)
            time.sleep(every_s)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024,
            "peak_anon_mib": peak_anon, "peak_file_mib": peak_file}


def disk_mib(*paths: Path) -> float:
    total = 0
    for path in paths:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total / 2**20


@dataclass(frozen=True)
class Settings:
    """The settings of one benchmark run: training batch size and threads, ``train.optimizer``
    of the training stages, ``data prepare --hash-buckets`` (0: none)."""

    batch_size: int = 4000
    threads: int = 1
    optimizer: str = "adam"
    hash_buckets: int = 0

    @property
    def store(self) -> str:
        """The store's folder name: one per hashing setting, so they can sit side by side."""
        return f"store_hash{self.hash_buckets}" if self.hash_buckets else "store"


def stage_commands(rows: int, work: Path, settings: Settings
                   ) -> dict[str, tuple[list[str], list[Path]]]:
    """Each stage's command and the outputs whose size is its disk use; the training run
    folders are named after the optimizer."""
    def cli(*args: str) -> list[str]:
        return [sys.executable, "-m", "mutualctr", *args]

    raw, probs, store = work / "raw.txt", work / "probs.txt", work / settings.store
    single, group = work / f"deepfm_{settings.optimizer}", work / f"group_{settings.optimizer}"
    hashing = ["--hash-buckets", str(settings.hash_buckets)] if settings.hash_buckets else []
    common = ["--set", f"train.batch_size={settings.batch_size}",
              "--set", f"train.num_threads={settings.threads}",
              "--set", f"train.optimizer={settings.optimizer}", "--epochs", "1", "--overwrite"]
    return {
        "synth": (cli("data", "synth", "--regime", "criteo", "--rows", str(rows), "--seed",
                      "0", "--out", str(raw), "--probs", str(probs)), [raw, probs]),
        "prepare": (cli("data", "prepare", "--format", "criteo", str(raw), "--probs",
                        str(probs), "--min-count", "2", *hashing, "--out", str(store),
                        "--overwrite"),
                    [store]),
        "train": (cli("train", "--data", str(store), "--model", "deepfm", "--out",
                      str(single), *common), [single]),
        "group": (cli("mutual", "--data", str(store), "--init", *[str(single)] * 4, "--out",
                      str(group), *common), [group]),
    }


def training_rows(store: Path) -> int:
    meta = json.loads((store / "meta.json").read_text())
    return int(meta["splits"]["train"]["rows"])


def run_size(rows: int, work: Path, settings: Settings,
             stages: tuple[str, ...] = STAGES) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"rows": rows}
    for stage, (command, outputs) in stage_commands(rows, work, settings).items():
        if stage not in stages:
            continue
        print(f"[{rows:,} rows] {stage} ...", flush=True)
        figures = measure(command, work / f"{stage}.log")
        stage_rows = training_rows(work / settings.store) if stage in ("train", "group") else rows
        figures |= {"rows_per_s": stage_rows / figures["wall_s"], "disk_mib": disk_mib(*outputs)}
        results[stage] = figures
        print("    " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()), flush=True)
    return results


def summary(results: list[dict[str, Any]]) -> str:
    """One markdown table per figure: each stage per size, and its growth over the smallest."""
    lines = []
    for figure in FIGURES:
        lines += [f"### {figure}", "", "| stage | " + " | ".join(
            f"{r['rows']:,}" for r in results) + " | growth |",
            "|---|" + "---|" * (len(results) + 1)]
        for stage in STAGES:
            cells = [f"{r[stage][figure]:,.1f}" if figure in r.get(stage, {}) else "-"
                     for r in results]
            growth = _growth(results, stage, figure)
            lines.append(f"| {stage} | " + " | ".join(cells) + f" | {growth} |")
        lines.append("")
    lines += ["### goals", "",
              f"- prepare peak RSS {_growth(results, 'prepare', 'peak_rss_mib')} the smallest "
              f"size's ({GOALS['prepare']})",
              f"- training peak RSS {_growth(results, 'train', 'peak_rss_mib')}, its anonymous "
              f"part {_growth(results, 'train', 'peak_anon_mib')} ({GOALS['train']}; the "
              "parameters grow with the vocabulary, the file part with the mapped store)"]
    for r in results:
        if "train" in r and "group" in r:
            lines.append(f"- {r['rows']:,} rows: group epoch / one model's epoch = "
                         f"{r['group']['wall_s'] / r['train']['wall_s']:.2f}x ({GOALS['group']})")
    return "\n".join(lines)


def _growth(results: list[dict[str, Any]], stage: str, figure: str) -> str:
    """The largest size's figure over the smallest's, among the sizes where ``stage`` ran."""
    ran = [r for r in results if figure in r.get(stage, {})]
    if len(ran) < 2:
        return "-"
    return f"{ran[-1][stage][figure] / ran[0][stage][figure]:.2f}x"


def merged(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` results updated by ``new`` stage by stage, sizes in order: a size run again
    with some stages keeps its other stages' figures."""
    by_rows = {r["rows"]: dict(r) for r in old}
    for r in new:
        by_rows.setdefault(r["rows"], {}).update(r)
    return [by_rows[n] for n in sorted(by_rows)]


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"wall_s": "wall time (s)", "peak_rss_mib": "peak RSS (MiB)",
              "peak_anon_mib": "peak RSS, anonymous part (MiB)", "disk_mib": "disk (MiB)"}
    fig, axes = plt.subplots(1, len(panels), figsize=(17, 3.8))
    for ax, (figure, title) in zip(axes, panels.items(), strict=True):
        for stage in STAGES:
            ran = [r for r in results if stage in r]
            ax.plot([r["rows"] for r in ran], [r[stage][figure] for r in ran], marker="o",
                    label=stage)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 45_000_000])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (kept)")
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write (or with --report-only read) results")
    parser.add_argument("--plot", type=Path, help="growth curves as an image")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                        help="run these stages only (e.g. synth prepare at the largest size)")
    parser.add_argument("--optimizer", default="adam", choices=("adam", "lazy_adam"),
                        help="train.optimizer of the training stages (a --json of its own)")
    parser.add_argument("--hash-buckets", type=int, default=0,
                        help="data prepare --hash-buckets (a store and a --json of its own)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    settings = Settings(args.batch_size, args.threads, args.optimizer, args.hash_buckets)
    earlier = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    if args.report_only:
        results = earlier
    else:
        results = merged(earlier, [
            run_size(n, args.work / f"rows_{n}", settings, tuple(args.stages))
            for n in sorted(args.rows)])
        if args.json:  # accumulates: a later run adds sizes and stages
            args.json.write_text(json.dumps(results, indent=1))
    print(summary(results))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()

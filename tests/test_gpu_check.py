"""benchmarks/gpu_check.py's dry run: the GPU check's code path, on the CPU with tiny sizes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mutualctr.training import precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check


@pytest.mark.slow
def test_dry_run_trains_every_job_without_and_with_amp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    out = tmp_path / "gpu_check.json"
    results = gpu_check.main(["--dry-run", "--work", str(tmp_path), "--json-out", str(out)])
    jobs = [job.label for job in gpu_check.jobs()]
    assert jobs[:2] == ["deepfm", "dcn"] and "4 x deepfm (batched)" in jobs
    assert jobs[-2:] == ["deepfm, lazy_adam", "4 x deepfm (batched), lazy_adam"]
    with_amp = {job.label: "float32" if job.model in precision.AUTOCAST_UNSAFE else "bfloat16"
                for job in gpu_check.jobs()}  # amp: auto keeps DIN in float32
    assert [(r["job"], r["precision"]) for r in results] == [
        (job, p) for job in jobs for p in ("float32", with_amp[job])
    ]
    for r in results:
        assert r["device"] == "cpu" and r["rows_per_second"] > 0 and 0 < r["test_auc"] < 1
    assert json.loads(out.read_text()) == results

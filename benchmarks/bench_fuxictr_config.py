"""FuxiCTR dataset configs: do our vocabularies keep the tokens FuxiCTR's own keep?

Each case is a FuxiCTR ``dataset_config.yaml`` over FuxiCTR's demo data (the Taobao sample,
``../shared/data/fuxictr_demo``), laid out as FuxiCTR's ``demo/`` folder expects it. Ours:
``data prepare --fuxictr-config`` (``mutualctr.data.fuxictr_config``). FuxiCTR's: its own
``FeatureProcessor`` fitted on the same train file in FuxiCTR 2.3.10's virtual environment
(``fuxictr_reference/run_vocab.py``). Per categorical or sequence field: the vocabulary sizes
and whether the kept tokens are the same set, i.e. the same values become OOV under
``min_categr_count``. Known difference, reported as such: a missing value is a value of its own
in ours and OOV in FuxiCTR's (its ``fill_na`` ``""`` is left out of the vocabulary).

Cases: demo example1 unchanged; the Taobao sample as users describe it for DIN (example1's
fields plus ``price`` and the ``click_sequence`` history sharing ``adgroup_id``'s embedding)
with ``min_categr_count`` 1 and 2. Usage::

    python benchmarks/bench_fuxictr_config.py --work DIR --fuxi-python "$FUXIENV/bin/python"
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mutualctr.data.fuxictr_config import load_dataset, prepare_dataset

DEMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "fuxictr_demo"
REFERENCE = Path(__file__).resolve().parent / "fuxictr_reference" / "run_vocab.py"
MISSING = ""


def demo_layout(work: Path) -> Path:
    """FuxiCTR's demo layout: the folder it runs in, with the data at ``../data/tiny_csv``."""
    data = work / "data" / "tiny_csv"
    data.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        link = data / f"{split}_sample.csv"
        if not link.exists():
            link.symlink_to(DEMO / f"{split}_sample.csv")
    (work / "demo").mkdir(exist_ok=True)
    return work / "demo"


def cases() -> dict[str, tuple[str, dict[str, Any]]]:
    """Name -> (dataset id, its config)."""
    example1 = yaml.safe_load(
        (DEMO / "configs" / "example1_config" / "dataset_config.yaml").read_text())
    found = {"demo example1": ("tiny_example1", example1["tiny_example1"])}
    for count in (1, 2):
        params = copy.deepcopy(example1["tiny_example1"])
        params["min_categr_count"] = count
        params["feature_cols"] += [
            {"name": "price", "active": True, "dtype": "float", "type": "numeric",
             "normalizer": "StandardScaler"},
            {"name": "click_sequence", "active": True, "dtype": "str", "type": "sequence",
             "splitter": "^", "max_len": 5, "share_embedding": "adgroup_id"},
        ]
        found[f"Taobao DIN, min_categr_count {count}"] = (f"taobao_din_min{count}", params)
    return found


def our_vocabularies(config: Path, dataset_id: str, root: Path, out: Path
                     ) -> dict[str, dict[str, Any]]:
    store = prepare_dataset(load_dataset(config, dataset_id, root), out, overwrite=True).store
    vocabs = store.encoder.to_dict()["vocabs"]
    result = {}
    for feature in store.feature_map.features:
        if feature.type == "numeric":
            continue
        values = vocabs[feature.share_with or feature.name]["values"]
        result[feature.name] = {"tokens": sorted(str(v) for v in values),
                                "vocab_size": feature.vocab_size}
    return result


def fuxictr_vocabularies(fuxi_python: str, config: Path, dataset_id: str, root: Path,
                         work: Path) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [fuxi_python, str(REFERENCE), "--config", str(config), "--dataset-id", dataset_id,
         "--work", str(work)], cwd=root, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"FuxiCTR failed on {dataset_id}:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, Any]]:
    """Per field: sizes, and the tokens kept by one side only (the missing value apart)."""
    rows = []
    for name, mine in ours.items():
        other = theirs[name]
        only_ours = set(mine["tokens"]) - set(other["tokens"])
        only_theirs = set(other["tokens"]) - set(mine["tokens"])
        rows.append({
            "field": name, "ours": mine["vocab_size"], "fuxictr": other["vocab_size"],
            "missing_kept": MISSING in only_ours,
            "agree": not (only_ours - {MISSING}) and not only_theirs,
            "only_ours": sorted(only_ours - {MISSING}), "only_fuxictr": sorted(only_theirs),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder")
    parser.add_argument("--fuxi-python", default=os.environ.get("FUXI_PYTHON", ""),
                        help="the Python of FuxiCTR 2.3.10's virtual environment")
    args = parser.parse_args()
    if not args.fuxi_python:
        sys.exit("--fuxi-python (or FUXI_PYTHON) is needed: benchmarks/README.md")
    work = args.work.resolve()
    root = demo_layout(work)
    disagreements = 0
    for label, (dataset_id, params) in cases().items():
        config = work / "configs" / dataset_id
        config.mkdir(parents=True, exist_ok=True)
        (config / "dataset_config.yaml").write_text(yaml.safe_dump({dataset_id: params}))
        ours = our_vocabularies(config, dataset_id, root, work / "stores" / dataset_id)
        theirs = fuxictr_vocabularies(args.fuxi_python, config, dataset_id, root,
                                      work / "fuxictr")
        rows = compare(ours, theirs)
        print(f"\n{label} ({dataset_id})\n| field | ours | FuxiCTR | kept tokens agree | "
              "missing value |\n|---|---:|---:|---|---|")
        for row in rows:
            missing = "own id (FuxiCTR: OOV)" if row["missing_kept"] else "-"
            print(f"| {row['field']} | {row['ours']} | {row['fuxictr']} | "
                  f"{'yes' if row['agree'] else 'NO'} | {missing} |")
            if not row["agree"]:
                disagreements += 1
                print(f"  only ours: {row['only_ours'][:10]}; only FuxiCTR: "
                      f"{row['only_fuxictr'][:10]}")
    print(f"\nfields whose kept tokens differ: {disagreements}")


if __name__ == "__main__":
    main()

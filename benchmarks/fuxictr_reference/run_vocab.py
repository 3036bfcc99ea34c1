"""FuxiCTR 2.3.10's vocabularies of one dataset config (run by bench_fuxictr_config.py).

Reads the dataset as FuxiCTR's ``run_expid.py`` does (``load_dataset_config``, paths relative
to the current folder, which the caller sets) and fits FuxiCTR's own ``FeatureProcessor`` on the
train file: ``read_data``, ``preprocess`` (its ``fill_na``), ``fit`` with the config's
``min_categr_count``. The transform to parquet (Ray) is not run: the vocabularies are fitted
before it. Prints ``RESULT {json}``: per categorical or sequence field, its tokenizer's kept
tokens (``__PAD__`` and ``__OOV__`` left out), the index of its OOV token and its vocabulary
size, and which field's tokenizer it shares (``share_embedding``).

Usage (inside the FuxiCTR virtual environment, from the folder FuxiCTR runs in)::

    python run_vocab.py --config CONFIG_DIR --dataset-id ID --work DIR
"""

from __future__ import annotations

import argparse
import json
import logging

from fuxictr.preprocess import FeatureProcessor
from fuxictr.utils import load_dataset_config

SPECIAL = ("__PAD__", "__OOV__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="folder of dataset_config.yaml")
    parser.add_argument("--dataset-id", required=True)
    parser.add_argument("--work", required=True, help="FuxiCTR's data_root (its output)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    params = load_dataset_config(args.config, args.dataset_id)
    params["data_root"] = args.work
    processor = FeatureProcessor(**params)
    train = processor.preprocess(processor.read_data(
        params["train_data"], data_format=params.get("data_format", "csv"),
        sep=params.get("sep", ",")))
    processor.fit(train, min_categr_count=params.get("min_categr_count", 1))
    fields = {}
    for name, spec in processor.feature_map.features.items():
        if spec["type"] not in ("categorical", "sequence"):
            continue
        vocab = processor.processor_dict[f"{name}::tokenizer"].vocab
        fields[name] = {
            "tokens": sorted(str(t) for t in vocab if t not in SPECIAL),
            "oov_index": vocab["__OOV__"], "vocab_size": spec["vocab_size"],
            "share_embedding": spec.get("share_embedding"),
        }
    print("RESULT " + json.dumps(fields), flush=True)


if __name__ == "__main__":
    main()

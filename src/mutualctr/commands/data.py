"""``mutualctr data``: prepare encoded stores, describe them, generate synthetic click logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mutualctr.data.readers import FORMATS, ReaderOptions
from mutualctr.data.readers.base import ON_BAD_ROW_CHOICES
from mutualctr.data.readers.tabular import load_spec
from mutualctr.data.store import EncodedStore, SplitArrays
from mutualctr.errors import ConfigError

if TYPE_CHECKING:
    from mutualctr.data.prepare import PrepareResult
from mutualctr.metrics import auc


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare, describe and generate datasets")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    prep = actions.add_parser("prepare", help="encode raw click logs into a store folder")
    prep.add_argument("inputs", nargs="*", type=Path,
                      help="raw file(s); with --split files: train valid [test] (none with "
                      "--fuxictr-config)")
    prep.add_argument("--format", choices=FORMATS, help="required unless --fuxictr-config")
    prep.add_argument("--out", required=True, type=Path, help="store folder")
    prep.add_argument("--split", default="random",
                      choices=("random", "chronological", "time", "files", "user-last"))
    prep.add_argument("--time-column", help="--split time or user-last with csv / parquet: the "
                      "column of row times (numbers, e.g. Unix seconds)")
    prep.add_argument("--ratios", nargs=3, type=float, default=(0.8, 0.1, 0.1),
                      metavar=("TRAIN", "VALID", "TEST"))
    prep.add_argument("--seed", type=int, default=0, help="seed of the random split")
    prep.add_argument("--min-count", type=int, default=None,
                      help="rarer train values become OOV (default: Criteo 10, Avazu 2, else 1)")
    prep.add_argument("--hash-buckets", type=int, default=0, metavar="N",
                      help="hash a field into N buckets when it would keep more than N values "
                      "(bounds every embedding table; default: never)")
    prep.add_argument("--schema", type=Path, help="schema YAML (csv / parquet formats)")
    prep.add_argument("--criteo-numeric", action="store_true",
                      help="keep Criteo's integer fields numeric (log, standardised)")
    prep.add_argument("--frappe-form", default="auto", choices=("auto", "csv", "libfm"))
    prep.add_argument("--rating-threshold", type=float, default=4.0,
                      help="MovieLens: label = rating >= this")
    prep.add_argument("--drop-rating", type=float, default=None,
                      help="MovieLens: leave out ratings equal to this (e.g. 3)")
    prep.add_argument("--history-len", type=int, default=0, metavar="N",
                      help="MovieLens: each rating also gets the user's N newest earlier "
                      "ratings (hist_item, hist_genre) and the movie's genre (0: off)")
    prep.add_argument("--probs", type=Path, help="true click probabilities, one per data row "
                      "(criteo, csv, parquet)")
    prep.add_argument("--on-bad-row", default="error", choices=ON_BAD_ROW_CHOICES)
    prep.add_argument("--overwrite", action="store_true",
                      help="rebuild a store built from other inputs or settings")
    prep.set_defaults(func=run_prepare)
    _add_fuxictr_arguments(prep)
    _add_user_log_arguments(prep)

    schema = actions.add_parser("schema", help="print the mutualctr schema YAML equivalent to "
                                "a FuxiCTR dataset config (keep it for data prepare --schema)")
    _add_fuxictr_arguments(schema, required=True)
    schema.set_defaults(func=run_schema)

    info = actions.add_parser("info", help="describe an encoded store")
    info.add_argument("store", type=Path)
    info.set_defaults(func=run_info)

    synth = actions.add_parser("synth", help="click logs from a hidden model: Criteo format, "
                               "or a behaviour-sequence log (--sequences)")
    synth.add_argument("--rows", type=int, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--probs", type=Path, help="also write each row's true probability")
    synth.add_argument("--regime", default=None, choices=("default", "criteo"),
                       help="criteo: ID vocabularies 30x larger, so deep models overfit after "
                       "one epoch as on real Criteo (prepare with --min-count 2)")
    synth.add_argument("--sequences", action="store_true",
                       help="a time-ordered CSV log of users whose clicks depend on their "
                       "earlier clicks, with OUT's schema (<stem>.schema.yaml) beside it")
    synth.add_argument("--history-len", type=int, default=None, metavar="N",
                       help="--sequences: the clicks the hidden model looks back on, and the "
                       "schema's history max_len (default 50)")
    synth.set_defaults(func=run_synth)


def run_prepare(args: argparse.Namespace) -> int:
    from mutualctr.data.prepare import SplitOptions, prepare

    if args.fuxictr_config is not None:
        return _prepare_fuxictr(args)
    if not args.inputs or args.format is None:
        raise ConfigError("data prepare needs input files and --format (or --fuxictr-config "
                          "FILE --dataset-id ID)")
    options = ReaderOptions(
        min_count=args.min_count,
        tabular=load_spec(args.schema) if args.schema is not None else None,
        criteo_numeric=args.criteo_numeric, frappe_form=args.frappe_form,
        rating_threshold=args.rating_threshold, drop_rating=args.drop_rating,
        history_len=args.history_len, hash_buckets=args.hash_buckets,
    )
    result = prepare(
        args.inputs, args.out, args.format, reader_options=options,
        split=SplitOptions(args.split, tuple(args.ratios), args.seed, args.time_column,
                           args.user_column, args.user_last),
        probs=args.probs,
        on_bad_row=args.on_bad_row, overwrite=args.overwrite, history_log=args.history_log,
    )
    return _summarised(result, args.out)


# Logs of user events (data.readers.history, data.prepare): history-only events and the
# per-user split
def _add_user_log_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("user event logs")
    group.add_argument("--history-log", nargs="+", type=Path, default=[], metavar="FILE",
                       help="csv / parquet with a schema 'history' key: events that enter "
                       "later rows' histories without being rows (e.g. each user's first "
                       "item); the history's user, time and columns, the label optional; "
                       "merged with the rows by time, so both sorted by time")
    group.add_argument("--user-column", help="--split user-last with csv / parquet: the column "
                       "of users (default: the schema history's user)")
    group.add_argument("--user-last", type=int, default=1, metavar="K",
                       help="--split user-last: each user's rows at its K newest times to test, "
                       "at the K times before to valid, the rest to train (default 1)")


# FuxiCTR dataset configs (data.fuxictr_config): `data prepare --fuxictr-config` and
# `data schema`
FUXICTR_EXCLUSIVE = ("inputs", "format", "schema", "min_count", "time_column", "probs")


def _add_fuxictr_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    group = parser.add_argument_group("FuxiCTR dataset config" + (
        "" if required else " (instead of inputs, --format and --schema)"))
    group.add_argument("--fuxictr-config", type=Path, metavar="FILE", required=required,
                       help="a FuxiCTR dataset_config.yaml (or its folder), as FuxiCTR reads it")
    group.add_argument("--dataset-id", metavar="ID", required=required,
                       help="the dataset of --fuxictr-config")
    group.add_argument("--fuxictr-root", type=Path, metavar="DIR",
                       help="the folder FuxiCTR runs in, which the config's data paths are "
                       "relative to (default: the current directory)")


def _fuxictr_dataset(args: argparse.Namespace) -> Any:
    from mutualctr.data.fuxictr_config import load_dataset

    if args.dataset_id is None:
        raise ConfigError("--fuxictr-config needs --dataset-id ID (the dataset's key in it)")
    return load_dataset(args.fuxictr_config, args.dataset_id, args.fuxictr_root)


def _prepare_fuxictr(args: argparse.Namespace) -> int:
    from mutualctr.data.fuxictr_config import prepare_dataset

    given = [name for name in FUXICTR_EXCLUSIVE if getattr(args, name)]
    given += ["split"] if args.split != "random" else []
    if given:
        flags = ", ".join(n if n == "inputs" else "--" + n.replace("_", "-") for n in given)
        raise ConfigError(f"--fuxictr-config gives the data, its schema and its splits; "
                          f"leave out {flags}")
    dataset = _fuxictr_dataset(args)
    for note in dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    result = prepare_dataset(dataset, args.out, on_bad_row=args.on_bad_row,
                             overwrite=args.overwrite, hash_buckets=args.hash_buckets)
    return _summarised(result, args.out)


def _summarised(result: PrepareResult, out: Path) -> int:
    """Print what ``data prepare`` built (or that it reused the store already there)."""
    if result.reused:
        print(f"{out}: already built from these inputs and settings; nothing to do")
    print(describe(result.store, with_auc=False))
    return 0


def run_schema(args: argparse.Namespace) -> int:
    from mutualctr.data.fuxictr_config import schema_yaml

    print(schema_yaml(_fuxictr_dataset(args)), end="")
    return 0


def run_info(args: argparse.Namespace) -> int:
    print(describe(EncodedStore.open(args.store), with_auc=True))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    if args.sequences:
        return _synth_sequences(args)
    from mutualctr.data.synthetic import generate_criteo_synthetic

    if args.history_len is not None:
        raise ConfigError("--history-len goes with --sequences")
    generate_criteo_synthetic(
        args.out, args.rows, args.seed, probs_out=args.probs, regime=args.regime or "default"
    )
    print(f"wrote {args.rows} rows to {args.out}" + (f" and {args.probs}" if args.probs else ""))
    return 0


def _synth_sequences(args: argparse.Namespace) -> int:
    from mutualctr.data.synthetic_sequences import DEFAULT_HISTORY_LEN, generate_sequence_log

    if args.regime is not None:
        raise ConfigError("--regime is for the Criteo-format generator, not --sequences")
    schema = generate_sequence_log(args.out, args.rows, args.seed, probs_out=args.probs,
                                   history_len=DEFAULT_HISTORY_LEN if args.history_len is None
                                   else args.history_len)
    probs = f" --probs {args.probs}" if args.probs else ""
    print(f"wrote {args.rows} rows to {args.out}, its schema to {schema}"
          + (f" and {args.probs}" if args.probs else "")
          + f"\nprepare it with: mutualctr data prepare {args.out} --format csv --schema "
          f"{schema}{probs} --split time --time-column time --out STORE")
    return 0


def bayes_auc(split: SplitArrays) -> float | None:
    """AUC of the true probabilities: the best any model can reach on this split."""
    if split.prob is None or len(split) == 0 or split.label.min() == split.label.max():
        return None
    return auc(split.label, split.prob)


def describe(store: EncodedStore, with_auc: bool) -> str:
    meta: dict[str, Any] = store.meta
    lines = [f"store {store.root} (format {meta['format']})", "splits:"]
    for name, split in meta["splits"].items():
        rate = split["positive_rate"]
        text = f"  {name:<6} {split['rows']:>10,} rows  positive rate " + (
            f"{rate:.4f}" if rate is not None else "-")
        if with_auc and split["has_prob"]:
            value = bayes_auc(store.split(name))
            text += f"  Bayes AUC {value:.4f}" if value is not None else "  Bayes AUC -"
        lines.append(text)
    lines.append("fields:")
    for feature in store.feature_map.features:
        size = "numeric" if feature.type == "numeric" else f"vocab {feature.vocab_size:,}"
        extra = f", max_len {feature.max_len}" if feature.type == "sequence" else ""
        extra += f", ids of {feature.share_with}" if feature.share_with else ""
        lines.append(f"  {feature.name:<18} {feature.type:<12} {size}{extra}")
    lines += _history_lines(store)
    skipped = meta["skipped"]
    lines.append(f"skipped rows: {skipped['rows']:,}")
    lines += [f"  {reason}: {n:,}" for reason, n in skipped["by_reason"].items()]
    lines += [f"  first: {e['file']} line {e['line']}: {e['reason']}"
              for e in skipped["examples"][:3]]
    lines += [f"left out on purpose ({reason}): {n:,}"
              for reason, n in skipped["filtered"].items()]
    return "\n".join(lines)


def _history_lines(store: EncodedStore) -> list[str]:
    """Each history field's file and length statistics per split (none without histories)."""
    from mutualctr.data.history_lengths import history_lengths, store_history

    history = store_history(store)
    if history is None:
        return []
    events = history.events or "unset (a log with one label: every row)"
    return [f"histories (events: {events}; length = events in a row's history):"] + [
        f"  {lengths.line()}" for lengths in history_lengths(store)]

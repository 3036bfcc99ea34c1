"""``mutualctr dagfm``: KD-DAGFM (Tian et al., WSDM 2023), a teacher (DCNv2 by default)
distilled into a DAGFM student and finetuned, in three run folders under ``--out``
(``teacher/``, ``distill/``, ``finetune/``; finished phases are reused)."""

from __future__ import annotations

import argparse

from mutualctr.cli_config import add_run_arguments, run_method_command
from mutualctr.methods import dagfm


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dagfm", help="KD-DAGFM: distil a teacher into a DAGFM student, then finetune it",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--teacher", metavar="MODEL", help="alias of teacher.model (dcnv2)")
    parser.add_argument("--interaction", choices=("inner", "outer"),
                        help="the DAGFM student's interaction (alias of "
                             "student.model_config.interaction)")
    parser.add_argument("--embedding-dim", type=int, help="alias of `embedding_dim`")
    add_run_arguments(parser, keys="data, teacher, student, alpha, beta, embedding_dim, train")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    student = None if args.interaction is None else {
        "model": "dagfm", "model_config": {"interaction": args.interaction}}
    flags = {"teacher.model": args.teacher, "student": student,
             "embedding_dim": args.embedding_dim}
    return run_method_command(args, dagfm.TEACHER_PHASE, flags, run=dagfm.run,
                              config_folder=args.out / dagfm.PHASES[0])

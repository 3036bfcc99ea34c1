"""``mutualctr ektf``: train one EKTF group (or an ablation / KD baseline) into a run folder.

Students share one embedding: ``--k`` MLP students (EKTF_MLP) or ``--students`` registry
models (EKTF_Latest: ``--students pnn final ecn``). Each epoch reports the teacher and every
student; early stopping watches the teacher. ``--export-best DIR`` writes the best student
(validation AUC) as a standalone single-model run folder for serving. KD-DAGFM is
``mutualctr dagfm``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mutualctr.cli_config import add_run_arguments, run_method_command
from mutualctr.config import to_dict
from mutualctr.methods import ektf


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ektf", help="train K students over one embedding with EKTF (or a KD baseline)",
        description=__doc__.split("\n\n")[0],
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--k", type=int, help="K MLP students (alias of `students`; default 3)")
    who.add_argument("--students", nargs="+", metavar="MODEL",
                     help="heterogeneous students by registry name, e.g. pnn final ecn "
                          "(alias of `students`)")
    parser.add_argument("--hidden", type=int, nargs="+",
                        help="the MLP students' hidden units (with --k; default 400 400 400)")
    parser.add_argument("--objective", choices=ektf.OBJECTIVES, help="alias of `objective` "
                        "(default ektf)")
    parser.add_argument("--detach-weights", action="store_const", const=True,
                        help="treat the examination weights as constants (default: gradients "
                             "flow through them, as in the authors' code)")
    parser.add_argument("--embedding-dim", type=int, help="alias of `embedding_dim`")
    parser.add_argument("--export-best", type=Path, metavar="DIR",
                        help="also write the best student as a standalone run folder")
    add_run_arguments(parser, keys="data, students, objective, detach_weights, embedding_dim, "
                      "train")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    students = None
    if args.students:
        students = to_dict(ektf.latest_students(args.students))
    elif args.k is not None or args.hidden is not None:
        hidden = {"hidden_units": args.hidden} if args.hidden else {}
        students = to_dict(ektf.mlp_students(3 if args.k is None else args.k, hidden))
    flags = {"students": students, "objective": args.objective,
             "detach_weights": args.detach_weights, "embedding_dim": args.embedding_dim}
    code = run_method_command(args, ektf.METHOD, flags)
    if args.export_best is not None and not args.print_config:
        name = ektf.export_best_student(args.out, args.export_best)
        print(f"best student {name} written to {args.export_best}")
    return code

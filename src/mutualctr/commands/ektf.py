"""``mutualctr ektf``: train one EKTF group (or an ablation / KD baseline) into a run folder.

Students share one embedding: ``--k`` MLP students (EKTF_MLP) or ``--students`` registry
models (EKTF_Latest: ``--students pnn final ecn``). Each epoch reports the teacher and every
student; early stopping watches the teacher. ``--objective dagfm --students dagfm`` runs
KD-DAGFM instead (a DCNv2 teacher, distillation, finetuning; early stopping watches the
student). ``--export-best DIR`` writes the best student (validation AUC) as a standalone
single-model run folder for serving.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mutualctr.config import TrainConfig, from_dict
from mutualctr.experiments.ektf_runs import (
    OBJECTIVES,
    Method,
    export_best_student,
    train_method,
)
from mutualctr.training.shared_embedding import MLP_STUDENT, StudentSpec, mlp_students


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ektf", help="train K students over one embedding with EKTF (or a KD baseline)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--data", required=True, help="encoded store folder")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--k", type=int, default=3, help="number of MLP students (default 3)")
    who.add_argument("--students", nargs="+", metavar="MODEL",
                     help="heterogeneous students by registry name, e.g. pnn final ecn")
    parser.add_argument("--hidden", type=int, nargs="+",
                        default=MLP_STUDENT["hidden_units"], help="MLP students' hidden units")
    parser.add_argument("--objective", choices=OBJECTIVES, default="ektf")
    parser.add_argument("--detach-weights", action="store_true",
                        help="treat the examination weights as constants (default: gradients "
                             "flow through them, as in the authors' code)")
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--export-best", type=Path, metavar="DIR",
                        help="also write the best student as a standalone run folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.students:
        students = tuple(StudentSpec(model) for model in args.students)
    else:
        students = tuple(mlp_students(args.k, {"hidden_units": args.hidden}))
    method = Method(students, args.objective, args.detach_weights)
    train = from_dict(TrainConfig, {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "device": args.device, "num_threads": args.threads,
    })
    metrics = train_method(method, args.data, args.out, train, args.embedding_dim,
                           overwrite=args.overwrite)
    print(json.dumps(metrics, indent=2))
    if args.export_best is not None:
        name = export_best_student(args.out, args.export_best)
        print(f"best student {name} written to {args.export_best}")
    return 0

"""The runs of ``mutualctr experiment yilmaz``: the four research questions of Yilmaz &
Aldemir (2024), "Mutual Learning for Finetuning Click-Through Rate Prediction Models".

* RQ1: does mutual learning help *from scratch*? Independent runs (``--seeds`` per model) vs
  one group of ``--seeds`` instances of the model trained mutually from random initialisation
  (member i initialised exactly like independent run i, so the runs pair up).
* RQ2: does it help as *finetuning*? The independent runs of each model finetuned together
  (learning rate 7e-4, about one epoch, best epoch per member on validation). As a control,
  the same runs finetuned for the same epochs *alone* (no mutual term), which separates the
  mutual term's effect from that of training longer; the paper has no such control.
* RQ3: the best pretrained run of every architecture finetuned together (a mixed group) vs
  the same-model groups of RQ2.
* RQ4: the group size: for each model, the pretrained runs sorted by validation AUC, groups of
  the best N for N = 2 .. ``--max-group`` (each step drops the worst).

Every run is a run folder under ``--out`` (``independent/``, ``scratch/``, ``finetune/``,
``alone/``, ``mixed/``, ``size/``); a finished run with the same config is reused, so an
interrupted experiment continues where it stopped. The report (:mod:`.yilmaz_report`) is built
from the run folders only; the command is :mod:`.yilmaz`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mutualctr.config import TrainConfig
from mutualctr.errors import ConfigError
from mutualctr.methods import runner
from mutualctr.methods.members import MemberConfig, member_auc
from mutualctr.methods.mutual import FINETUNE_LR, METHOD, MutualConfig
from mutualctr.models.registry import get_model_class
from mutualctr.training.trainer import Metrics

PAPER_MODELS = ("deepfm", "dcn", "pnn", "fibinet")
QUESTIONS = (1, 2, 3, 4)
PAPER_BATCH_SIZE = 4000


@dataclass
class YilmazConfig:
    """What the experiment runs. ``train`` is used for pretraining and RQ1's scratch groups,
    ``finetune`` for every finetuning group; independent run k (1-based) of a model is seeded
    with ``train.seed + k``."""

    data: str = ""
    models: tuple[str, ...] = PAPER_MODELS
    seeds: int = 4  # independent runs per model (a group needs two)
    questions: tuple[int, ...] = QUESTIONS
    max_group: int = 5  # RQ4's largest group
    control: bool = True  # RQ2's control: the same runs finetuned alone
    model_config: dict[str, Any] = field(default_factory=dict)  # for every model
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=PAPER_BATCH_SIZE))
    finetune: TrainConfig = field(
        default_factory=lambda: TrainConfig(lr=FINETUNE_LR, epochs=1, batch_size=PAPER_BATCH_SIZE)
    )

    def __post_init__(self) -> None:
        if self.seeds < 2:
            raise ConfigError(f"seeds must be >= 2 (a group needs two models), got {self.seeds}")
        unknown = sorted(set(self.questions) - set(QUESTIONS))
        if unknown:
            raise ConfigError(f"unknown research questions {unknown}; choose from {QUESTIONS}")
        if 3 in self.questions and len(self.models) < 2:
            raise ConfigError("RQ3 (mixed groups) needs at least two models")
        if 4 in self.questions and self.max_group < 2:
            raise ConfigError(f"max_group must be >= 2, got {self.max_group}")
        for name in self.models:
            get_model_class(name)  # an unknown model fails before any training

    @property
    def pretrained_runs(self) -> int:
        """Independent runs per model: ``seeds``, or more when RQ4 needs larger groups."""
        return max(self.seeds, self.max_group) if 4 in self.questions else self.seeds


class YilmazExperiment:
    """Plans, runs (reusing finished runs) and collects the experiment's run folders."""

    def __init__(self, config: YilmazConfig, out: Path, overwrite: bool = False,
                 log: TextIO | None = None) -> None:
        self.s, self.out, self.overwrite = config, out, overwrite
        self.log = log if log is not None else sys.stderr
        self.planned = self._count_runs()
        self.done = 0

    # -- run folders ----------------------------------------------------------------------

    def independent_dir(self, model: str, k: int) -> Path:
        return self.out / "independent" / model / f"seed{k}"

    def independent_runs(self, model: str, count: int | None = None) -> list[Path]:
        return [self.independent_dir(model, k) for k in range(1, (count or self.s.seeds) + 1)]

    def ranked_runs(self, model: str) -> list[Path]:
        """All pretrained runs of ``model``, best validation AUC first."""
        runs = self.independent_runs(model, self.s.pretrained_runs)
        return sorted(runs, key=lambda r: -member_auc(r)["valid"])

    def _count_runs(self) -> int:
        s, m = self.s, len(self.s.models)
        per_model = s.pretrained_runs
        per_model += (1 in s.questions) + (2 in s.questions) * (1 + s.control)
        per_model += (s.max_group - 1) if 4 in s.questions else 0
        return per_model * m + (3 in s.questions)

    # -- running --------------------------------------------------------------------------

    def _seed_train(self, k: int) -> TrainConfig:
        return dataclasses.replace(self.s.train, seed=self.s.train.seed + k)

    def ensure(self, out: Path, config: MutualConfig, what: str) -> Metrics:
        """The metrics of the run ``config`` in ``out``, training it unless already finished."""
        self.done += 1
        header = f"[{self.done}/{self.planned}] {what}"
        if not self.overwrite and runner.is_done(METHOD, config, out):
            print(f"{header}: done before, reusing {out}", file=self.log, flush=True)
        else:
            print(f"{header} -> {out}", file=self.log, flush=True)
        return runner.run(METHOD, config, out, overwrite=self.overwrite, log=self.log).metrics

    def _group(self, members: list[MemberConfig], train: TrainConfig,
               objective: str = "mutual") -> MutualConfig:
        return MutualConfig(data=self.s.data, members=members, objective=objective, train=train)

    def pretrain(self) -> None:
        for model in self.s.models:
            for k in range(1, self.s.pretrained_runs + 1):
                member = MemberConfig(model=model, model_config=dict(self.s.model_config))
                self.ensure(self.independent_dir(model, k),
                            self._group([member], self._seed_train(k), "independent"),
                            f"independent {model}, seed {k}")

    def rq1_scratch(self) -> None:
        # member i is initialised with seed train.seed + 1 + i, like independent run k = i + 1
        for model in self.s.models:
            members = [MemberConfig(model=model, model_config=dict(self.s.model_config))
                       for _ in range(self.s.seeds)]
            self.ensure(self.out / "scratch" / model,
                        self._group(members, self._seed_train(1)),
                        f"RQ1: {self.s.seeds} x {model} mutual from scratch")

    def _finetune(self, out: Path, runs: Sequence[Path], what: str,
                  objective: str = "mutual") -> None:
        members = [MemberConfig(init=str(r)) for r in runs]
        self.ensure(out, self._group(members, self.s.finetune, objective), what)

    def rq2_finetune(self) -> None:
        for model in self.s.models:
            runs = self.independent_runs(model)
            self._finetune(self.out / "finetune" / model, runs,
                           f"RQ2: {len(runs)} x {model} mutual finetuning")
            if self.s.control:
                self._finetune(self.out / "alone" / model, runs,
                               f"RQ2 control: {len(runs)} x {model} finetuned alone",
                               objective="independent")

    def best_runs(self) -> list[Path]:
        """The best of the first ``seeds`` pretrained runs of every model (RQ3's members)."""
        return [max(self.independent_runs(m), key=lambda r: member_auc(r)["valid"])
                for m in self.s.models]

    def rq3_mixed(self) -> None:
        self._finetune(self.out / "mixed", self.best_runs(),
                       f"RQ3: mixed group {'+'.join(self.s.models)} mutual finetuning")

    def rq4_sizes(self) -> None:
        for model in self.s.models:
            ranked = self.ranked_runs(model)
            for n in range(2, self.s.max_group + 1):
                self._finetune(self.out / "size" / model / f"n{n}", ranked[:n],
                               f"RQ4: best {n} {model} runs, mutual finetuning")

    def run(self) -> None:
        """Train everything the chosen questions need (reusing finished runs)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.pretrain()
        steps = {1: self.rq1_scratch, 2: self.rq2_finetune, 3: self.rq3_mixed,
                 4: self.rq4_sizes}
        for q in sorted(self.s.questions):
            steps[q]()

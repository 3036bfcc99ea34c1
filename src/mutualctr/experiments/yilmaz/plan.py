"""The runs of ``mutualctr experiment yilmaz``: the four research questions of Yilmaz &
Aldemir (2024), "Mutual Learning for Finetuning Click-Through Rate Prediction Models".

The paper's recipe (sections 3.1.4-3.5), which the defaults follow:

* Pretraining, the paper's "independent runs": each model trained alone at lr 1e-3 to its best
  validation epoch (early stopping: at most ``train.epochs`` epochs, ``patience`` epochs
  without a better validation AUC, the best epoch restored). Every schedule is the paper's
  exponential decay to a tenth of the rate over three epochs.
* RQ1: a group of ``seeds`` randomly initialised instances of a model trained mutually from
  scratch with the pretraining settings (member i initialised exactly like independent run i,
  so the runs pair up).
* RQ2: the ``seeds`` independent runs of each model finetuned together for ONE epoch at lr
  7e-4 (section 3.3: "after one epoch, performance started to degrade"). As a control, the
  same runs finetuned for the same epoch *alone* (no mutual term), which separates the mutual
  term's effect from that of training longer; the paper has no such control.
* RQ3: the best pretrained run of every architecture (of RQ2's group) finetuned together.
* RQ4 (section 3.5): RQ2's group of ``seeds`` runs; smaller groups drop the run with the worst
  validation AUC one at a time; larger groups (up to ``max_group``) add further pretrained
  runs. The group of ``seeds`` runs *is* RQ2's group (the same run folder).

Members of one mutual group are not independent samples, so RQ1 and RQ2 can be repeated on
``groups`` disjoint sets of pretrained runs: group g uses independent runs
``(g - 1) * seeds + 1 .. g * seeds``, and the report's paired tests take one value per group.

Every run is a job of :class:`YilmazPlan`, run by :func:`mutualctr.experiments.engine.run_plan`
into a run folder under the experiment folder (``independent/``, ``scratch/``, ``finetune/``,
``alone/``, ``mixed/``, ``size/``), labelled with its ``kind``, ``model`` and ``run`` (an
independent run), ``group`` (RQ1, RQ2) or ``n`` (RQ4's group size); a finished run with the same
config is reused, so an interrupted experiment continues where it stopped. The report
(:mod:`.report`) is built from the runs' records only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mutualctr.errors import ConfigError
from mutualctr.experiments.engine import Job
from mutualctr.methods.members import MemberConfig, member_auc
from mutualctr.methods.mutual import FINETUNE_LR, METHOD, MutualConfig
from mutualctr.models.registry import get_model_class
from mutualctr.training.config import ScheduleConfig, TrainConfig

PAPER_MODELS = ("deepfm", "dcn", "pnn", "fibinet")
QUESTIONS = (1, 2, 3, 4)
PAPER_BATCH_SIZE = 4000
PRETRAIN_MAX_EPOCHS = 10  # the paper gives none; early stopping ends pretraining before
T = TypeVar("T")


def paper_schedule() -> ScheduleConfig:
    """Section 3.1.4: exponential decay to one tenth of the rate in three epochs."""
    return ScheduleConfig(name="exponential", decay_to=0.1, decay_epochs=3.0)


def pretrain_config() -> TrainConfig:
    """Independent runs and RQ1's scratch groups: lr 1e-3, early stopping on validation AUC
    (``TrainConfig``'s default patience, best epoch restored), the paper's schedule."""
    return TrainConfig(epochs=PRETRAIN_MAX_EPOCHS, batch_size=PAPER_BATCH_SIZE,
                       schedule=paper_schedule())


def finetune_config() -> TrainConfig:
    """Mutual finetuning (section 3.3): one epoch at lr 7e-4, the paper's schedule."""
    return TrainConfig(lr=FINETUNE_LR, epochs=1, batch_size=PAPER_BATCH_SIZE,
                       schedule=paper_schedule())


def size_group(base: Sequence[T], valid_auc: Sequence[float], extra: Sequence[T],
               n: int) -> list[T]:
    """RQ4's group of ``n`` (section 3.5), in ``base``'s order: for ``n <= len(base)`` the
    runs left after dropping the worst validation AUC one at a time, else ``base`` plus the
    first ``n - len(base)`` of ``extra``."""
    if n > len(base):
        return [*base, *extra[: n - len(base)]]
    kept = sorted(range(len(base)), key=lambda i: -valid_auc[i])[:n]
    return [base[i] for i in sorted(kept)]


def seed_of(run: Path) -> int:
    """k of an independent run folder ``.../seed{k}``."""
    return int(run.name.removeprefix("seed"))


@dataclass
class YilmazConfig:
    """What the experiment runs. ``train`` is used for pretraining and RQ1's scratch groups,
    ``finetune`` for every finetuning group; independent run k (1-based) of a model is seeded
    with ``train.seed + k``."""

    data: str = ""
    models: tuple[str, ...] = PAPER_MODELS
    seeds: int = 4  # the size of RQ1's and RQ2's groups (runs per group)
    groups: int = 1  # independent repetitions of RQ1's and RQ2's groups (paired tests need 2)
    questions: tuple[int, ...] = QUESTIONS
    max_group: int = 5  # RQ4's largest group
    control: bool = True  # RQ2's control: the same runs finetuned alone
    model_config: dict[str, Any] = field(default_factory=dict)  # for every model
    train: TrainConfig = field(default_factory=pretrain_config)
    finetune: TrainConfig = field(default_factory=finetune_config)

    def __post_init__(self) -> None:
        if self.seeds < 2:
            raise ConfigError(f"seeds must be >= 2 (a group needs two models), got {self.seeds}")
        if self.groups < 1:
            raise ConfigError(f"groups must be >= 1, got {self.groups}")
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
        """Independent runs per model: ``seeds * groups``, or more when RQ4 needs more."""
        runs = self.seeds * self.groups
        return max(runs, self.max_group) if 4 in self.questions else runs


class YilmazPlan:
    """The experiment's run folders and its jobs, in the order they run.

    :meth:`jobs` is lazy: RQ3's and RQ4's groups are chosen by the validation AUC of the
    pretrained runs, so they are planned once those have run.
    """

    def __init__(self, config: YilmazConfig, out: Path) -> None:
        self.s, self.out = config, out

    # -- run folders ----------------------------------------------------------------------

    def independent_dir(self, model: str, k: int) -> Path:
        return self.out / "independent" / model / f"seed{k}"

    def independent_runs(self, model: str, count: int | None = None) -> list[Path]:
        return [self.independent_dir(model, k) for k in range(1, (count or self.s.seeds) + 1)]

    def group_seeds(self, g: int) -> range:
        """The independent runs ``k`` of group ``g`` (1-based); group 1 is the paper's group."""
        first = (g - 1) * self.s.seeds + 1
        return range(first, first + self.s.seeds)

    def group_runs(self, model: str, g: int) -> list[Path]:
        """The pretrained runs of group ``g``."""
        return [self.independent_dir(model, k) for k in self.group_seeds(g)]

    def group_dir(self, kind: str, model: str, g: int) -> Path:
        """RQ1's and RQ2's group ``g`` of ``model``: kind is scratch, finetune or alone."""
        return self.out / kind / model / f"group{g}"

    def size_dir(self, model: str, n: int) -> Path:
        """RQ4's group of ``n``; the group of ``seeds`` runs is RQ2's first group."""
        if n == self.s.seeds:
            return self.group_dir("finetune", model, 1)
        return self.out / "size" / model / f"n{n}"

    def size_groups(self, model: str) -> dict[int, list[Path]]:
        """RQ4's members for N = 2 .. ``max_group`` (section 3.5), from RQ2's first group."""
        base = self.group_runs(model, 1)
        valid = [member_auc(r)["valid"] for r in base]
        extra = self.independent_runs(model, self.s.pretrained_runs)[len(base):]
        return {n: size_group(base, valid, extra, n) for n in range(2, self.s.max_group + 1)}

    def best_runs(self) -> list[Path]:
        """The best pretrained run (validation AUC) of RQ2's first group of every model."""
        return [max(self.group_runs(m, 1), key=lambda r: member_auc(r)["valid"])
                for m in self.s.models]

    def _rq2_has_size(self, n: int) -> bool:
        """RQ4's group of ``n`` is RQ2's first group, already a job of RQ2."""
        return n == self.s.seeds and 2 in self.s.questions

    def __len__(self) -> int:
        s = self.s
        per_model = s.pretrained_runs
        per_model += s.groups * ((1 in s.questions) + (2 in s.questions) * (1 + s.control))
        if 4 in s.questions:
            per_model += sum(not self._rq2_has_size(n) for n in range(2, s.max_group + 1))
        return per_model * len(s.models) + (3 in s.questions)

    # -- jobs -----------------------------------------------------------------------------

    def jobs(self) -> Iterator[Job]:
        """Every run the chosen questions need: the pretraining, then the questions in order."""
        yield from self.pretrain()
        steps = {1: self.rq1_scratch, 2: self.rq2_finetune, 3: self.rq3_mixed,
                 4: self.rq4_sizes}
        for q in sorted(self.s.questions):
            yield from steps[q]()

    def _seed_train(self, k: int) -> TrainConfig:
        return dataclasses.replace(self.s.train, seed=self.s.train.seed + k)

    def _group(self, members: list[MemberConfig], train: TrainConfig,
               objective: str = "mutual") -> MutualConfig:
        return MutualConfig(data=self.s.data, members=members, objective=objective, train=train)

    def pretrain(self) -> Iterator[Job]:
        for model in self.s.models:
            for k in range(1, self.s.pretrained_runs + 1):
                member = MemberConfig(model=model, model_config=dict(self.s.model_config))
                yield Job(METHOD, self._group([member], self._seed_train(k), "independent"),
                          self.independent_dir(model, k),
                          {"kind": "independent", "model": model, "run": k},
                          f"independent {model}, seed {k}")

    def rq1_scratch(self) -> Iterator[Job]:
        # member i of group g is initialised with seed train.seed + first + i, like
        # independent run first + i (first = the group's first run)
        for model in self.s.models:
            for g in range(1, self.s.groups + 1):
                members = [MemberConfig(model=model, model_config=dict(self.s.model_config))
                           for _ in range(self.s.seeds)]
                yield Job(METHOD, self._group(members, self._seed_train(self.group_seeds(g)[0])),
                          self.group_dir("scratch", model, g),
                          {"kind": "scratch", "model": model, "group": g},
                          f"RQ1: {self.s.seeds} x {model} mutual from scratch, group {g}")

    def _finetune(self, out: Path, members: list[MemberConfig], labels: dict[str, Any],
                  what: str, objective: str = "mutual") -> Job:
        return Job(METHOD, self._group(members, self.s.finetune, objective), out, labels, what)

    def rq2_finetune(self) -> Iterator[Job]:
        for model in self.s.models:
            for g in range(1, self.s.groups + 1):
                members = same_model_members(model, self.group_runs(model, g))
                what = f"{len(members)} x {model}, group {g}"
                yield self._finetune(self.group_dir("finetune", model, g), members,
                                     {"kind": "finetune", "model": model, "group": g},
                                     f"RQ2: {what} mutual finetuning")
                if self.s.control:
                    yield self._finetune(self.group_dir("alone", model, g), members,
                                         {"kind": "alone", "model": model, "group": g},
                                         f"RQ2 control: {what} finetuned alone",
                                         objective="independent")

    def rq3_mixed(self) -> Iterator[Job]:
        members = [MemberConfig(init=str(r)) for r in self.best_runs()]
        yield self._finetune(self.out / "mixed", members, {"kind": "mixed"},
                             f"RQ3: mixed group {'+'.join(self.s.models)} mutual finetuning")

    def rq4_sizes(self) -> Iterator[Job]:
        for model in self.s.models:
            for n, runs in self.size_groups(model).items():
                if self._rq2_has_size(n):
                    continue
                members = same_model_members(model, runs)
                if n == self.s.seeds:  # RQ2's group, run here when RQ2 is not asked for
                    yield self._finetune(self.size_dir(model, n), members,
                                         {"kind": "finetune", "model": model, "group": 1},
                                         f"RQ4: N = {n} {model} (RQ2's group) mutual finetuning")
                else:
                    yield self._finetune(self.size_dir(model, n), members,
                                         {"kind": "size", "model": model, "n": n},
                                         f"RQ4: N = {n} {model} mutual finetuning")


def same_model_members(model: str, runs: Sequence[Path]) -> list[MemberConfig]:
    """Finetuning members from pretrained runs, named ``<model>_<k>`` by their run's seed k."""
    return [MemberConfig(name=f"{model}_{seed_of(r)}", init=str(r)) for r in runs]

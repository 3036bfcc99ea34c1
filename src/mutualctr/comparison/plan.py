"""What ``mutualctr compare`` trains: every applicable way of training the given models, per seed.

For models ``M = [m_1, ..., m_n]`` and each seed (a full, independent replicate, seeded
``train.seed + i``), under ``OUT/runs/<way>/seed<s>/``:

* ``alone/<m>``: each model trained alone (method ``train``), the baseline; on a store with
  behaviour histories also ``alone_without_histories/<m>``, its control: the same model trained
  alone with ``model_config.exclude_fields`` = the history fields (what the histories add);
* ``distill``: one student (``student``, default ``m_1``) distilled from the averaged
  predictions of that seed's alone runs (method ``distill``);
* ``mutual_scratch``: the models trained together by mutual learning from scratch;
* ``mutual_finetune``: that seed's alone runs finetuned together (Yilmaz & Aldemir: one epoch at
  7e-4, ``finetune``) and ``finetune_alone``, its control: the same runs finetuned for the same
  epoch without peers (the mutual method's ``objective: independent``);
* ``ektf``: EKTF with the models as students over one embedding;
* ``cetnet``: CETNet with the models as members.

The averaging ensemble of the alone runs trains nothing: :mod:`mutualctr.comparison.outcomes`
scores it from those runs. ``train`` is every run's trainer setting (early stopping on
validation; the test split is scored once, after training), ``finetune`` the finetuning
epoch's. A way that does not apply is skipped with the reason (:func:`skipped`): the group
methods need two models, EKTF students one embedding size, and a model that the store cannot
feed (a sequence model without histories) leaves every way out that would train it, and a
model that cannot lose the histories (DIN, DIEN attend over them) has no control without them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mutualctr.config import Validated, param
from mutualctr.data.schema import FeatureMap
from mutualctr.errors import ConfigError
from mutualctr.experiments.engine import Job
from mutualctr.methods import get_method
from mutualctr.methods.mutual import FINETUNE_LR
from mutualctr.models.base import histories
from mutualctr.models.behaviour import BehaviourPairs
from mutualctr.models.registry import build_model, model_config
from mutualctr.training.config import EarlyStoppingConfig, ScheduleConfig, TrainConfig

Way = Literal["alone", "ensemble", "distill", "mutual_scratch", "mutual_finetune", "ektf",
              "cetnet"]
WAYS: tuple[str, ...] = ("alone", "ensemble", "distill", "mutual_scratch", "mutual_finetune",
                         "ektf", "cetnet")
NEEDS_ALONE = ("ensemble", "distill", "mutual_finetune")  # ways built on the alone runs
GROUPS = ("ensemble", "mutual_scratch", "mutual_finetune", "ektf", "cetnet")
BUDGET_EPOCHS = 1000  # with a time budget, epochs and patience that never end a run first
WITHOUT_HISTORIES = "without histories"  # the label of a model alone without the histories
WITHOUT_HISTORIES_WAY = "alone_without_histories"  # its folder under OUT/runs


def default_train() -> TrainConfig:
    """Every way's training: at most 5 epochs, stopped after one without a better validation
    AUC, the best epoch's weights restored."""
    return TrainConfig(epochs=5, early_stopping=EarlyStoppingConfig(patience=1))


def default_finetune() -> TrainConfig:
    """The finetuning epoch of Yilmaz & Aldemir (section 3.3): one epoch at 7e-4, the paper's
    exponential decay."""
    return TrainConfig(epochs=1, lr=FINETUNE_LR,
                       schedule=ScheduleConfig(name="exponential", decay_to=0.1,
                                               decay_epochs=3.0))


@dataclass
class CompareConfig(Validated):
    """What ``mutualctr compare`` runs (stored as ``OUT/experiment.yaml``).

    Attributes:
        data: encoded store folder, from `mutualctr data prepare`.
        models: the registry models to compare, e.g. deepfm dcn.
        seeds: independent replicates (seeds train.seed, train.seed + 1, ...).
        methods: the ways of training to compare (default: every one that applies): alone,
            ensemble, distill, mutual_scratch, mutual_finetune (with its control), ektf, cetnet.
        student: the distilled student's model (default: the first of models).
        latency_seconds: how long each timed stretch of the serving latency lasts at least
            (three stretches per batch size, the fastest kept): longer is steadier.
        budget_seconds: give every run the same wall-clock budget instead of early stopping:
            it trains until its epochs have taken this many seconds (the epoch that crosses
            it finishes; the best epoch on validation is kept); 0: early stopping. The
            finetuning epoch keeps its own setting.
        train: every run's training (early stopping on validation).
        finetune: the finetuning epoch of mutual finetuning and its control.
    """

    data: str = ""
    models: list[str] = field(default_factory=lambda: ["deepfm", "dcn"])
    seeds: int = param(3, ge=1)
    methods: list[Way] = field(default_factory=lambda: list(WAYS))
    student: str = ""
    latency_seconds: float = param(0.25, gt=0.0)
    budget_seconds: float = param(0.0, ge=0.0)
    train: TrainConfig = field(default_factory=default_train)
    finetune: TrainConfig = field(default_factory=default_finetune)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: give at least one registry model")
        for name in {*self.models, *([self.student] if self.student else [])}:
            model_config(name)  # an unknown model is an error now, naming the closest
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models: each model once, got {self.models}")


def skipped(config: CompareConfig, feature_map: FeatureMap) -> dict[str, str]:
    """The ways (and models) left out, each with the reason: ``{"ektf": "students of one
    embedding size: ...", "alone din": "..."}``."""
    reasons: dict[str, str] = {}
    usable = []
    for name in config.models:
        reason = unfed(name, feature_map)
        if reason:
            reasons[f"alone {name}"] = reason
        else:
            usable.append(name)
    if "alone" in config.methods:
        reasons.update(_without_histories_skipped(usable, feature_map))
    for way in config.methods:
        if way == "alone" and not usable:
            reasons[way] = "no model the store can feed"
        elif way in GROUPS and len(usable) < 2:
            reasons[way] = f"needs two models the store can feed, has {usable}"
        elif way == "distill" and student_of(config) not in usable:
            reasons[way] = f"the student {student_of(config)} is not among {usable}"
        elif way in NEEDS_ALONE and "alone" not in config.methods:
            reasons[way] = "it is built on the alone runs: add alone to methods"
        elif way == "ektf":
            sizes = {name: embedding_dim(name) for name in usable}
            if len(set(sizes.values())) > 1:
                reasons[way] = f"its students share one embedding; sizes differ: {sizes}"
    return reasons


def unfed(model: str, feature_map: FeatureMap) -> str:
    """Why the store cannot feed ``model``, or ``""``: it does not build on the store's
    features, or it attends over behaviour histories (DIN, DIEN) and the store has none (it
    would build, but as a plainer model than its name says)."""
    try:
        built = build_model(model, feature_map)
    except ConfigError as err:
        return f"the store cannot feed {model}: {err}"
    pairs = getattr(built, "pairs", None)
    if isinstance(pairs, BehaviourPairs) and not len(pairs):
        return (f"the store has no behaviour histories for {model} to attend over (prepare it "
                "with a history, e.g. --history-len)")
    return ""


def _without_histories_skipped(models: Sequence[str], feature_map: FeatureMap
                               ) -> dict[str, str]:
    """Why a model has no control without the store's histories (it attends over them), by
    that control's row: none on a store without histories."""
    exclude = {"exclude_fields": list(histories(feature_map))}
    reasons = {}
    for name in models if exclude["exclude_fields"] else ():
        try:
            build_model(name, feature_map, exclude)
        except ConfigError as err:
            reasons[without_histories_row(name)] = str(err)
    return reasons


def without_histories_row(model: str) -> str:
    """The row of ``model`` alone without the histories: ``alone dnn without histories``."""
    return f"alone {model} {WITHOUT_HISTORIES}"


def without_histories(config: CompareConfig, feature_map: FeatureMap,
                      reasons: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """The models trained alone that have a control without the store's histories, each with
    the fields it leaves out (none on a store without histories)."""
    fields = histories(feature_map)
    if not fields or "alone" not in config.methods or "alone" in reasons:
        return {}
    return {m: fields for m in usable_models(config, reasons)
            if without_histories_row(m) not in reasons}


def student_of(config: CompareConfig) -> str:
    return config.student or config.models[0]


def embedding_dim(model: str) -> int:
    return model_config(model).embedding_dim


def usable_models(config: CompareConfig, reasons: Mapping[str, str]) -> list[str]:
    return [m for m in config.models if f"alone {m}" not in reasons]


@dataclass(frozen=True)
class Replicate:
    """One seed's folders: where its runs go, by way (and model for ``alone``)."""

    root: Path
    seed: int

    def folder(self, way: str, model: str = "") -> Path:
        parts = [way, model] if model else [way]
        return self.root / "runs" / Path(*parts) / f"seed{self.seed}"


def seeds(config: CompareConfig) -> list[int]:
    return [config.train.seed + i for i in range(config.seeds)]


def plan(config: CompareConfig, out: Path, reasons: Mapping[str, str],
         controls: Mapping[str, Sequence[str]] | None = None) -> list[Job]:
    """Every run of the comparison, seed by seed (a seed's alone runs before what builds on
    them); ``controls``: the models alone to train again without those fields
    (:func:`without_histories`)."""
    models = usable_models(config, reasons)
    ways = [w for w in config.methods if w not in reasons and w != "ensemble"]
    jobs = []
    for seed in seeds(config):
        at = Replicate(out, seed)
        for way in ways:
            jobs.extend(_jobs(way, config, models, at, controls or {}))
    return jobs


def _job(method: str, way: str, out: Path, seed: int, values: Mapping[str, Any],
         trained: Sequence[str], teachers: Sequence[str] = (), model: str = "") -> Job:
    """A job labelled with its way, seed, the models it trains and the frozen teachers it
    runs (what :mod:`.estimate` and :mod:`.costs` count)."""
    chosen = get_method(method)
    labels = {"way": way, "seed": seed, "trained": list(trained), "teachers": list(teachers),
              **({"model": model} if model else {})}
    title = f"{way}{f' {model}' if model else ''}, seed {seed}"
    return Job(chosen, chosen.config(values), out, labels, title)


def run_training(config: CompareConfig, seed: int) -> TrainConfig:
    """Every run's training at ``seed``: ``train``, or with a budget, as many epochs as fit in
    it (early stopping then never stops a run, though its best epoch is still restored)."""
    train = dataclasses.replace(config.train, seed=seed)
    if not config.budget_seconds:
        return train
    return dataclasses.replace(
        train, epochs=BUDGET_EPOCHS, max_seconds=config.budget_seconds,
        early_stopping=dataclasses.replace(train.early_stopping, patience=BUDGET_EPOCHS))


def _alone(way: str, model: str, at: Replicate, base: Mapping[str, Any],
           exclude: Sequence[str] = ()) -> Job:
    """``model`` trained alone, without the fields ``exclude``."""
    values = {**base, "model": model,
              **({"model_config": {"exclude_fields": list(exclude)}} if exclude else {})}
    return _job("train", way, at.folder(way, model), at.seed, values, [model], model=model)


def _jobs(way: str, config: CompareConfig, models: Sequence[str], at: Replicate,
          controls: Mapping[str, Sequence[str]]) -> list[Job]:
    train = dataclasses.asdict(run_training(config, at.seed))
    finetune = dataclasses.asdict(dataclasses.replace(config.finetune, seed=at.seed))
    base = {"data": config.data, "train": train}
    starts = [{"init": str(at.folder("alone", m).resolve())} for m in models]
    if way == "alone":
        return [*(_alone(way, m, at, base) for m in models),
                *(_alone(WITHOUT_HISTORIES_WAY, m, at, base, fields)
                  for m, fields in controls.items())]
    if way == "distill":
        student = student_of(config)
        return [_job("distill", way, at.folder(way), at.seed,
                     {**base, "teachers": starts, "student": {"model": student}}, [student],
                     models)]
    if way == "mutual_scratch":
        return [_job("mutual", way, at.folder(way), at.seed,
                     {**base, "members": [{"model": m} for m in models]}, models)]
    if way == "mutual_finetune":
        tuned = {"data": config.data, "train": finetune, "members": starts}
        return [_job("mutual", way, at.folder(way), at.seed, tuned, models),
                _job("mutual", "finetune_alone", at.folder("finetune_alone"), at.seed,
                     {**tuned, "objective": "independent"}, models)]
    if way == "ektf":
        return [_job("ektf", way, at.folder(way), at.seed,
                     {**base, "students": [{"model": m} for m in models]}, models)]
    if way == "cetnet":
        return [_job("cetnet", way, at.folder(way), at.seed,
                     {**base, "members": [{"model": m} for m in models]}, models)]
    raise ValueError(f"unknown way {way!r}")  # a programming error: Way lists them

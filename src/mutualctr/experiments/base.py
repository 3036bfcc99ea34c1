"""What an experiment is: its config, how it runs and reports, and its shorthand flags as data.

Each experiment is a subpackage of :mod:`mutualctr.experiments` (``yilmaz``, ``ektf``,
``cetnet``) that defines ``EXPERIMENT = Experiment(...)``. The command line
(:mod:`mutualctr.commands.experiment`) builds ``mutualctr experiment <name>`` from it: the
options every experiment takes (``--data``, ``--out``, ``--seeds``, ``--epochs``, the config
options) and the experiment's own :class:`~mutualctr.flags.Flag` s, each an alias of config
keys, as a method's are. Nothing here parses a command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from mutualctr.flags import Flag

C = TypeVar("C")


@dataclass(frozen=True)
class Experiment(Generic[C]):
    """One paper's experiment.

    Attributes:
        name: ``mutualctr experiment <name>``.
        help: one line for ``mutualctr experiment --help``.
        description: the command's description (``mutualctr experiment <name> --help``).
        config_class: its typed config (with ``data``, ``seeds`` and ``train`` keys).
        run: ``(config, out, overwrite=, log=) -> report``: train every run the config asks
            for into the experiment folder ``out`` (reusing finished ones), write the report
            and return its markdown.
        report: ``(config, out) -> report``: rebuild the report from the records in ``out``.
        flags: its shorthand flags.
        presets: ``given -> defaults``: values that depend on what the user gave and sit below
            everything given (the EKTF experiment's ``size``).
        report_only: the command offers ``--report-only`` (rebuild the report from the run
            folders, train nothing): for reports that show what a partial set of runs has.
        dry_run: ``(config, out) -> text``: the plan and an estimate of its time, training
            and writing nothing; the command then offers ``--dry-run``.
    """

    name: str
    help: str
    description: str
    config_class: type[C]
    run: Callable[..., str]
    report: Callable[[C, Path], str]
    flags: tuple[Flag, ...] = ()
    presets: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    report_only: bool = False
    dry_run: Callable[[C, Path], str] | None = None

    @property
    def keys(self) -> str:
        """The config's top-level keys, for the help of ``--config``."""
        return ", ".join(f.name for f in dataclasses.fields(self.config_class))


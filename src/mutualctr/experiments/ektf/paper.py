"""The EKTF paper's own figures (Li et al., "Ensemble Learning via Knowledge Transfer for CTR
Prediction"), transcribed as data so that reports print them beside ours, and the paper's
improvement measure.

Table 2 (all rows, five datasets) and the EKTF_Latest students of Table 4 (Criteo, ML-1M,
KKBox). Tables 3 (ablation) and 5 (knowledge-transfer methods) are figures in the copy of the
paper this project has, with no numbers in its text, so they are not transcribed.

Each row below is the paper's row as printed: ``logloss AUC(%)`` per dataset in the order of
:data:`DATASETS`; a trailing ``*`` is the paper's star (two-tailed t-test against the best
baseline, p < 1e-3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DATASETS = ("Criteo", "ML-1M", "KDD12", "iPinYou", "KKBox")
STAR = "⋆"  # Table 2: p < 1e-3 in a two-tailed t-test against the best baseline
STAR_P = 1e-3

_TABLE2 = {
    "PNN": "0.4378 81.42 0.3070 90.42 0.1504 80.47 0.005544 78.13 0.4793 85.15",
    "Wide & Deep": "0.4376 81.42 0.3056 90.45 0.1504 80.48 0.005542 78.09 0.4852 85.04",
    "DeepFM": "0.4375 81.43 0.3073 90.51 0.1501 80.60 0.005549 77.94 0.4785 85.31",
    "DCNv1": "0.4376 81.44 0.3156 90.38 0.1501 80.59 0.005541 78.13 0.4766 85.31",
    "xDeepFM": "0.4376 81.43 0.3054 90.47 0.1501 80.62 0.005534 78.25 0.4772 85.35",
    "AutoInt*": "0.4390 81.32 0.3112 90.45 0.1502 80.57 0.005544 78.16 0.4773 85.34",
    "AFN*": "0.4384 81.38 0.3048 90.53 0.1499 80.70 0.005539 78.17 0.4842 84.89",
    "DCNv2": "0.4376 81.45 0.3098 90.56 0.1502 80.59 0.005539 78.26 0.4787 85.31",
    "EDCN": "0.4386 81.36 0.3073 90.48 0.1501 80.62 0.005573 77.93 0.4952 85.27",
    "MaskNet": "0.4387 81.34 0.3080 90.34 0.1498 80.79 0.005556 77.85 0.5003 84.79",
    "CL4CTR": "0.4383 81.35 0.3074 90.33 0.1502 80.56 0.005543 78.06 0.4972 83.78",
    "EulerNet": "0.4379 81.47 0.3050 90.44 0.1498 80.78 0.005540 78.30 0.4922 84.27",
    "FinalMLP": "0.4373 81.45 0.3058 90.52 0.1497 80.78 0.005556 78.02 0.4822 85.10",
    "FINAL(2B)": "0.4371 81.49 0.3035 90.53 0.1498 80.74 0.005540 78.13 0.4795 85.08",
    "ECN": "0.4364 81.55 0.3013 90.59 0.1496 80.90 0.005534 78.43 0.4778 85.40",
    "MLP": "0.4380 81.40 0.3100 90.30 0.1502 80.52 0.005545 78.06 0.4811 85.01",
    "EKTF_MLP_bs": "0.4370 81.50 0.3040 90.61 0.1498 80.79 0.005538 78.32 0.4822 85.39",
    "EKTF_MLP": "0.4360* 81.60* 0.3036 90.62 0.1496 80.85 0.005536 78.32 0.4764* 85.66*",
    "EKTF_Latest": "0.4356* 81.63* 0.3001* 90.75* 0.1494* 80.99* 0.005530* 78.48* "
                   "0.4742* 85.67*",
}
# Table 2's "Abs.Imp" row (EKTF_MLP_bs against MLP), kept to check :func:`abs_imp` against.
TABLE2_ABS_IMP = "-0.001 +0.10 -0.006 +0.31 -0.0004 +0.27 -0.000007 +0.26 +0.0011 +0.38"
BASELINES = tuple(name for name in _TABLE2 if not name.startswith("EKTF"))

# Table 4: EKTF_Latest's students trained inside EKTF (Criteo, ML-1M, KKBox only).
TABLE4_DATASETS = ("Criteo", "ML-1M", "KKBox")
_TABLE4_LATEST = {
    "EKTF_PNN": "0.4365 81.54 0.3039 90.67 0.4769 85.54",
    "EKTF_FINAL(1B)": "0.4364 81.55 0.3041 90.64 0.4776 85.55",
    "EKTF_ECN": "0.4362 81.58 0.2989 90.65 0.4757 85.51",
}


@dataclass(frozen=True)
class PaperCell:
    """One dataset's result as printed: logloss, AUC in percent, and the paper's stars."""

    logloss: float
    auc_percent: float
    logloss_digits: int
    logloss_star: bool = False
    auc_star: bool = False

    @property
    def auc(self) -> float:
        """The AUC as a fraction, as our reports print it."""
        return self.auc_percent / 100.0


def _cell(logloss: str, auc: str) -> PaperCell:
    digits = len(logloss.rstrip("*").split(".")[1])
    return PaperCell(float(logloss.rstrip("*")), float(auc.rstrip("*")), digits,
                     logloss_star=logloss.endswith("*"), auc_star=auc.endswith("*"))


def _parse(rows: Mapping[str, str], datasets: Sequence[str]
           ) -> dict[str, dict[str, PaperCell]]:
    table = {}
    for name, row in rows.items():
        tokens = row.split()
        if len(tokens) != 2 * len(datasets):
            raise ValueError(f"{name}: {len(tokens)} numbers for {len(datasets)} datasets")
        table[name] = {d: _cell(tokens[2 * i], tokens[2 * i + 1])
                       for i, d in enumerate(datasets)}
    return table


TABLE2: dict[str, dict[str, PaperCell]] = _parse(_TABLE2, DATASETS)
TABLE4_LATEST: dict[str, dict[str, PaperCell]] = _parse(_TABLE4_LATEST, TABLE4_DATASETS)


def abs_imp(auc: float, logloss: float, base_auc: float, base_logloss: float
            ) -> tuple[float, float]:
    """The paper's "Abs.Imp" (section 4.2, Table 2): the absolute differences against the
    base model, ``(AUC - AUC_base)`` in percentage points and ``logloss - logloss_base``.
    The paper reports it for EKTF_MLP's best student against the single MLP."""
    return 100.0 * (auc - base_auc), logloss - base_logloss


def format_abs_imp(auc_points: float, logloss_diff: float) -> tuple[str, str]:
    """As the paper prints them: ``+0.10`` (AUC, points) and ``-0.0010`` (logloss)."""
    return f"{auc_points:+.2f}", f"{logloss_diff:+.4f}"


def _cells(cell: PaperCell | None) -> list[str]:
    if cell is None:
        return ["", ""]
    return [f"{cell.auc:.4f}{STAR if cell.auc_star else ''}",
            f"{cell.logloss:.{cell.logloss_digits}f}{STAR if cell.logloss_star else ''}"]


def paper_rows(models: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Table 2's rows (``models``, all by default) followed by Table 4's EKTF_Latest students,
    one column per dataset and metric, AUC as a fraction; a dataset Table 4 lacks is empty."""
    rows = []
    for table in (TABLE2, TABLE4_LATEST):
        for name, by_dataset in table.items():
            if table is TABLE2 and models is not None and name not in models:
                continue
            row = {"model (Li et al.)": name}
            for dataset in DATASETS:
                auc, logloss = _cells(by_dataset.get(dataset))
                row |= {f"{dataset} AUC": auc, f"{dataset} logloss": logloss}
            rows.append(row)
    return rows

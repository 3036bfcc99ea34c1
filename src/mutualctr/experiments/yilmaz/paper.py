"""The figures of Yilmaz & Aldemir (2024), "Mutual Learning for Finetuning Click-Through Rate
Prediction Models", Tables 1-4, as printed (test AUC), for the report to show beside ours.

Transcription notes (the paper's own inconsistencies are kept, not corrected):

* Table 2's PNN / Avazu / "DML of diff. models" is printed ``.79715``; read as 0.79715.
* Tables 3 and 4 list, at N = 4, a fourth pretrained run that is not Table 1's fourth run
  (FiBiNET/Avazu 0.79701 against 0.79648, DCN/Criteo 0.81247 against 0.81243); Table 1's fourth
  run appears as the fifth run added at N = 5. Table 3's N = 4 finetuned fourth member is
  0.79835 where Table 1 has 0.79831.
* Table 3 drops 0.79701 when going from N = 4 to N = 3, not the worst run of the four
  (0.79691), although section 3.5 says the worst is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dataset = Literal["avazu", "criteo"]
DATASETS: tuple[Dataset, ...] = ("avazu", "criteo")  # the paper's column order
MODELS = ("fibinet", "dcn", "pnn", "deepfm")  # the paper's row order
CITATION = "Yilmaz & Aldemir 2024"

# Table 1 rows (section 3.2 and 3.3): four runs each.
INDEPENDENT, SCRATCH, PRETRAINED = "independent", "scratch", "pretrained"

TABLE1: dict[Dataset, dict[str, dict[str, tuple[float, ...]]]] = {
    "avazu": {
        "fibinet": {
            INDEPENDENT: (0.79743, 0.79720, 0.79691, 0.79648),
            SCRATCH: (0.79701, 0.79695, 0.79698, 0.79706),
            PRETRAINED: (0.79837, 0.79834, 0.79842, 0.79831),
        },
        "dcn": {
            INDEPENDENT: (0.79425, 0.79394, 0.79383, 0.79390),
            SCRATCH: (0.79385, 0.79392, 0.79407, 0.79398),
            PRETRAINED: (0.79562, 0.79565, 0.79578, 0.79560),
        },
        "pnn": {
            INDEPENDENT: (0.79595, 0.79586, 0.79577, 0.79622),
            SCRATCH: (0.79587, 0.79591, 0.79583, 0.79586),
            PRETRAINED: (0.79704, 0.79706, 0.79689, 0.79704),
        },
        "deepfm": {
            INDEPENDENT: (0.79607, 0.79623, 0.79600, 0.79584),
            SCRATCH: (0.79598, 0.79593, 0.79601, 0.79597),
            PRETRAINED: (0.79700, 0.79672, 0.79680, 0.79670),
        },
    },
    "criteo": {
        "fibinet": {
            INDEPENDENT: (0.81311, 0.81310, 0.81321, 0.81308),
            SCRATCH: (0.81307, 0.81314, 0.81309, 0.81306),
            PRETRAINED: (0.81425, 0.81420, 0.81426, 0.81425),
        },
        "dcn": {
            INDEPENDENT: (0.81251, 0.81249, 0.81248, 0.81243),
            SCRATCH: (0.81243, 0.81242, 0.81245, 0.81239),
            PRETRAINED: (0.81330, 0.81329, 0.81327, 0.81328),
        },
        "pnn": {
            INDEPENDENT: (0.81242, 0.81235, 0.81231, 0.81220),
            SCRATCH: (0.81228, 0.81237, 0.81234, 0.81230),
            PRETRAINED: (0.81343, 0.81336, 0.81337, 0.81330),
        },
        "deepfm": {
            INDEPENDENT: (0.81206, 0.81208, 0.81206, 0.81208),
            SCRATCH: (0.81199, 0.81203, 0.81207, 0.81201),
            PRETRAINED: (0.81295, 0.81295, 0.81301, 0.81296),
        },
    },
}

# Table 2 rows (section 3.4): the best pretrained run, the same run after finetuning in its
# same-model group (Table 1), and after finetuning in a group of the four models.
BEST, SAME, MIXED = "pretrained", "same", "mixed"

TABLE2: dict[Dataset, dict[str, dict[str, float]]] = {
    "avazu": {
        BEST: {"fibinet": 0.79743, "dcn": 0.79425, "pnn": 0.79622, "deepfm": 0.79623},
        SAME: {"fibinet": 0.79837, "dcn": 0.79562, "pnn": 0.79704, "deepfm": 0.79672},
        MIXED: {"fibinet": 0.79800, "dcn": 0.79622, "pnn": 0.79715, "deepfm": 0.79677},
    },
    "criteo": {
        BEST: {"fibinet": 0.81321, "dcn": 0.81251, "pnn": 0.81242, "deepfm": 0.81208},
        SAME: {"fibinet": 0.81426, "dcn": 0.81330, "pnn": 0.81343, "deepfm": 0.81295},
        MIXED: {"fibinet": 0.81415, "dcn": 0.81336, "pnn": 0.81355, "deepfm": 0.81320},
    },
}


@dataclass(frozen=True)
class SizeTable:
    """Table 3 or 4 (section 3.5): per group size N, the pretrained runs and the same members
    after mutual finetuning, in the paper's column order."""

    number: int
    dataset: Dataset
    model: str
    pretrained: dict[int, tuple[float, ...]]
    finetuned: dict[int, tuple[float, ...]]


TABLE3 = SizeTable(
    number=3, dataset="avazu", model="fibinet",
    pretrained={
        5: (0.79743, 0.79720, 0.79691, 0.79701, 0.79648),
        4: (0.79743, 0.79720, 0.79691, 0.79701),
        3: (0.79743, 0.79720, 0.79691),
        2: (0.79743, 0.79720),
    },
    finetuned={
        5: (0.79838, 0.79835, 0.79839, 0.79833, 0.79831),
        4: (0.79837, 0.79834, 0.79842, 0.79835),
        3: (0.79829, 0.79837, 0.79833),
        2: (0.79813, 0.79811),
    },
)

TABLE4 = SizeTable(
    number=4, dataset="criteo", model="dcn",
    pretrained={
        5: (0.81251, 0.81249, 0.81248, 0.81247, 0.81243),
        4: (0.81251, 0.81249, 0.81248, 0.81247),
        3: (0.81251, 0.81249, 0.81248),
        2: (0.81251, 0.81249),
    },
    finetuned={
        5: (0.81290, 0.81330, 0.81328, 0.81327, 0.81328),
        4: (0.81330, 0.81329, 0.81327, 0.81328),
        3: (0.81325, 0.81326, 0.81321),
        2: (0.81323, 0.81325),
    },
)

SIZE_TABLES = {t.model: t for t in (TABLE3, TABLE4)}

# Section 3.3's stated RelaImp range of mutual finetuning against the pretrained runs.
STATED_RELAIMP: dict[Dataset, tuple[float, float]] = {
    "avazu": (0.0030, 0.0066),
    "criteo": (0.0025, 0.0037),
}


def cite(table: int) -> str:
    return f"{CITATION}, Table {table}"

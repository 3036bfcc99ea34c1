"""Liu et al.'s own figures ("A Collaborative Ensemble Framework for CTR Prediction", arXiv
2411.13700), kept as data so the CETNet report prints them beside ours.

* :data:`TABLE1`: the main comparison on AmazonElectronics, TaobaoAds and KuaiVideo (gAUC,
  AUC, LogLoss): seven baselines at embedding size 64 and four CETNet pairs of members at 32
  (section 4.1.3), keyed by this project's row specs (registry names joined by ``+``).
* :data:`TABLE3`: the ablation of CETNet (InterFormer + DHEN) on AmazonElectronics, TaobaoAds
  and KuaiVideo (gAUC, AUC, LogLoss), under this project's variant labels, with the two members
  trained alone from Table 1 as ``model 1 alone`` (InterFormer) and ``model 2 alone`` (DHEN).
* :data:`TABLE4` (trained to convergence) and :data:`TABLE5` (one epoch): test AUC of DNN,
  IPNN, DCNv2 and FinalMLP on Criteo and Avazu at the base embedding size 10 and at 2x, 3x, 4x
  and 10x the budget, as SE, ME, Ours-sum and Ours-concat.

Transcribed from the paper's text and checked against the figures its prose quotes (sections
4.2, 4.3, 4.4.1, 4.4.2 and appendix A.2; all match). Tables 4 and 5 print each base
AUC once in a cell spanning a model's four rows, and the text holds two readings of several of
those cells; the one consistent with the neighbouring cells is kept. Table 4: DNN Avazu 0.78747
(other reading 0.76747), DCNv2 Criteo 0.81001 (0.01001), DCNv2 Avazu 0.78807 (0 50005).
Table 5: DNN Criteo 0.80465 (0.00403), DNN Avazu 0.78162 (0.76102), DCNv2 Avazu 0.78377
(0 50055), FinalMLP Criteo 0.78387 (0 70207).

The paper's gAUC: its section 4.1.4 describes the plain mean of per-user AUCs, but it builds on
FuxiCTR, whose ``gAUC`` weights users by impressions; which one its tables hold is not stated.
"""

from __future__ import annotations

from collections.abc import Sequence

SCALES: tuple[int, ...] = (2, 3, 4, 10)
BASE_EMBEDDING_DIM = 10
SCALING_METHODS: tuple[str, ...] = ("SE", "ME", "Ours-sum", "Ours-concat")
SCALING_DATASETS: tuple[str, ...] = ("Criteo", "Avazu")
ABLATION_DATASETS: tuple[str, ...] = ("AmazonElectronics", "TaobaoAds", "KuaiVideo")
ABLATION_PAIR = "InterFormer + DHEN"
BASE = "base"

# (model, method) or (model, "base") -> scale -> AUC; the base is at scale 1.
ScalingFigures = dict[str, dict[str, dict[int, float]]]


def _model(base: float, *rows: Sequence[float]) -> dict[str, dict[int, float]]:
    """One model's block: its base AUC, then SE, ME, Ours-sum, Ours-concat at :data:`SCALES`."""
    if len(rows) != len(SCALING_METHODS) or any(len(r) != len(SCALES) for r in rows):
        raise ValueError("a model's block needs 4 rows of 4 AUCs")
    block = {method: dict(zip(SCALES, row, strict=True))
             for method, row in zip(SCALING_METHODS, rows, strict=True)}
    return {BASE: {1: base}, **block}


# Liu et al., Table 4: model performance (AUC) on Criteo and Avazu.
TABLE4: dict[str, ScalingFigures] = {
    "Criteo": {
        "dnn": _model(0.80915,
                      (0.80948, 0.80929, 0.80949, 0.80995),
                      (0.80941, 0.80952, 0.80973, 0.80978),
                      (0.80950, 0.81010, 0.81021, 0.80989),
                      (0.80960, 0.80994, 0.81030, 0.80959)),
        "pnn": _model(0.80936,
                      (0.80914, 0.80912, 0.80916, 0.80886),
                      (0.80855, 0.80851, 0.80864, 0.80909),
                      (0.80993, 0.81020, 0.81054, 0.81041),
                      (0.80974, 0.81035, 0.81043, 0.81020)),
        "dcnv2": _model(0.81001,
                        (0.81028, 0.81038, 0.81022, 0.81019),
                        (0.81028, 0.81046, 0.81046, 0.81047),
                        (0.81061, 0.81081, 0.81098, 0.81140),
                        (0.81069, 0.81083, 0.81087, 0.81137)),
        "finalmlp": _model(0.80956,
                           (0.80918, 0.80982, 0.80949, 0.80986),
                           (0.80970, 0.80945, 0.80970, 0.81008),
                           (0.80995, 0.81021, 0.81015, 0.81004),
                           (0.80981, 0.81012, 0.81017, 0.80995)),
    },
    "Avazu": {
        "dnn": _model(0.78747,
                      (0.78748, 0.78742, 0.78684, 0.78589),
                      (0.78826, 0.78829, 0.78894, 0.78894),
                      (0.78962, 0.79000, 0.78975, 0.78582),
                      (0.78951, 0.78947, 0.78838, 0.78843)),
        "pnn": _model(0.78713,
                      (0.78778, 0.78754, 0.78722, 0.78759),
                      (0.78815, 0.78900, 0.78923, 0.78940),
                      (0.78949, 0.78979, 0.78956, 0.78871),
                      (0.78921, 0.78934, 0.78948, 0.78885)),
        "dcnv2": _model(0.78807,
                        (0.78854, 0.78876, 0.78890, 0.78857),
                        (0.78880, 0.78928, 0.78905, 0.78975),
                        (0.78967, 0.79018, 0.78962, 0.78924),
                        (0.79033, 0.79004, 0.79007, 0.78932)),
        "finalmlp": _model(0.78783,
                           (0.78850, 0.78803, 0.78765, 0.78615),
                           (0.78821, 0.78816, 0.78802, 0.78760),
                           (0.78948, 0.78959, 0.78901, 0.78730),
                           (0.78955, 0.78959, 0.78881, 0.78751)),
    },
}

# Liu et al., Table 5: model performance (AUC) with one epoch of training on Criteo and Avazu.
TABLE5: dict[str, ScalingFigures] = {
    "Criteo": {
        "dnn": _model(0.80465,
                      (0.80423, 0.80399, 0.80373, 0.80268),
                      (0.80482, 0.80480, 0.80495, 0.80468),
                      (0.80527, 0.80542, 0.80522, 0.80454),
                      (0.80524, 0.80529, 0.80510, 0.80422)),
        "pnn": _model(0.80668,
                      (0.80676, 0.80695, 0.80692, 0.80599),
                      (0.80710, 0.80727, 0.80736, 0.80727),
                      (0.80745, 0.80722, 0.80701, 0.80550),
                      (0.80731, 0.80713, 0.80692, 0.80525)),
        "dcnv2": _model(0.80742,
                        (0.80763, 0.80769, 0.80745, 0.80723),
                        (0.80749, 0.80749, 0.80722, 0.80685),
                        (0.80830, 0.80808, 0.80789, 0.80727),
                        (0.80835, 0.80798, 0.80777, 0.80690)),
        "finalmlp": _model(0.78387,
                           (0.80261, 0.78372, 0.80193, 0.79018),
                           (0.71550, 0.80049, 0.80470, 0.80112),
                           (0.80535, 0.80514, 0.80494, 0.80302),
                           (0.80538, 0.80510, 0.80467, 0.80295)),
    },
    "Avazu": {
        "dnn": _model(0.78162,
                      (0.78021, 0.77969, 0.77948, 0.77704),
                      (0.78207, 0.78187, 0.78173, 0.78162),
                      (0.78353, 0.78337, 0.78334, 0.78205),
                      (0.78347, 0.78311, 0.78318, 0.78212)),
        "pnn": _model(0.78248,
                      (0.78365, 0.78266, 0.78268, 0.78238),
                      (0.78404, 0.78520, 0.78524, 0.78544),
                      (0.78492, 0.78498, 0.78461, 0.78245),
                      (0.78522, 0.78458, 0.78493, 0.78331)),
        "dcnv2": _model(0.78377,
                        (0.78354, 0.78362, 0.78386, 0.78348),
                        (0.78401, 0.78428, 0.78427, 0.78464),
                        (0.78453, 0.78416, 0.78358, 0.78203),
                        (0.78432, 0.78385, 0.78383, 0.78244)),
        "finalmlp": _model(0.78201,
                           (0.74134, 0.74056, 0.78014, 0.77817),
                           (0.78205, 0.73633, 0.78223, 0.74126),
                           (0.78353, 0.78310, 0.78267, 0.78073),
                           (0.78400, 0.78307, 0.78294, 0.78080)),
    },
}

SCALING_TABLES: dict[int, dict[str, ScalingFigures]] = {4: TABLE4, 5: TABLE5}

ABLATION_METRICS: tuple[str, ...] = ("gauc", "auc", "logloss")


def _ablation(*values: float) -> dict[str, dict[str, float]]:
    """gAUC, AUC, LogLoss on each of :data:`ABLATION_DATASETS`, in the paper's column order."""
    if len(values) != len(ABLATION_DATASETS) * len(ABLATION_METRICS):
        raise ValueError("an ablation row needs 9 figures")
    n = len(ABLATION_METRICS)
    return {dataset: dict(zip(ABLATION_METRICS, values[n * i:n * (i + 1)], strict=True))
            for i, dataset in enumerate(ABLATION_DATASETS)}


# Liu et al., Table 3 (ablation study), rows under this project's labels (paper's label in the
# comment); the last two rows are the members trained alone, from Liu et al., Table 1.
TABLE3: dict[str, dict[str, dict[str, float]]] = {
    # CETNet (InterFormer+DHEN)
    "CETNet": _ablation(0.8860, 0.8882, 0.4247, 0.5767, 0.6536, 0.1930,
                        0.6637, 0.7456, 0.4349),
    # w/o Confidence-based Fusion
    "w/o confidence fusion": _ablation(0.8833, 0.8855, 0.4287, 0.5741, 0.6508, 0.1933,
                                       0.6628, 0.7446, 0.4355),
    # w/o KL Divergence
    "w/o KL": _ablation(0.8851, 0.8878, 0.4271, 0.5712, 0.6482, 0.1939,
                        0.6624, 0.7443, 0.4363),
    # w/o Multi-Embedding
    "w/o multi-embedding": _ablation(0.8851, 0.8874, 0.4290, 0.5745, 0.6512, 0.1935,
                                     0.6621, 0.7445, 0.4357),
    # w/o Gradient Stop
    "w/o stop-gradient": _ablation(0.8834, 0.8860, 0.4296, 0.5763, 0.6532, 0.1931,
                                   0.6620, 0.7442, 0.4377),
    # Single-Embedding + concat
    "SE + concat": _ablation(0.8796, 0.8828, 0.4335, 0.5699, 0.6465, 0.1934,
                             0.6572, 0.7389, 0.4392),
    # Multi-Embedding + concat
    "ME + concat": _ablation(0.8780, 0.8809, 0.4360, 0.5719, 0.6495, 0.1931,
                             0.6545, 0.7351, 0.4413),
    # Table 1: InterFormer
    "model 1 alone": _ablation(0.8832, 0.8862, 0.4316, 0.5725, 0.6520, 0.1924,
                               0.6632, 0.7445, 0.4356),
    # Table 1: DHEN
    "model 2 alone": _ablation(0.8776, 0.8799, 0.4367, 0.5708, 0.6505, 0.1929,
                               0.6593, 0.7428, 0.4372),
}


# Liu et al., Table 1 (the row "CETNet (InteFormer+DHEN)" is InterFormer + DHEN).
TABLE1: dict[str, dict[str, dict[str, float]]] = {
    "xdeepfm": _ablation(0.8770, 0.8793, 0.4382, 0.5718, 0.6402, 0.1938, 0.6622, 0.7427, 0.4371),
    "dcnv2": _ablation(0.8766, 0.8791, 0.4395, 0.5735, 0.6486, 0.1930, 0.6618, 0.7420, 0.4390),
    "dhen": _ablation(0.8776, 0.8799, 0.4367, 0.5708, 0.6505, 0.1929, 0.6593, 0.7428, 0.4372),
    "wukong": _ablation(0.8729, 0.8767, 0.4482, 0.5656, 0.6411, 0.1935, 0.6578, 0.7417, 0.4375),
    "din": _ablation(0.8830, 0.8858, 0.4319, 0.5752, 0.6510, 0.1928, 0.6657, 0.7440, 0.4409),
    "dien": _ablation(0.8833, 0.8860, 0.4318, 0.5731, 0.6518, 0.1932, 0.6643, 0.7444, 0.4398),
    "din+dien": _ablation(0.8846, 0.8869, 0.4346, 0.5758, 0.6536, 0.1922,
                          0.6652, 0.7450, 0.4367),
    "interformer": _ablation(0.8832, 0.8862, 0.4316, 0.5725, 0.6520, 0.1924,
                             0.6632, 0.7445, 0.4356),
    "interformer+interformer": _ablation(0.8842, 0.8868, 0.4297, 0.5762, 0.6530, 0.1931,
                                         0.6646, 0.7453, 0.4360),
    "interformer+dcnv2": _ablation(0.8848, 0.8870, 0.4423, 0.5724, 0.6527, 0.1921,
                                   0.6610, 0.7428, 0.4353),
    "interformer+dhen": _ablation(0.8860, 0.8882, 0.4247, 0.5767, 0.6536, 0.1930,
                                  0.6637, 0.7456, 0.4349),
}
MAIN_ROWS: tuple[str, ...] = tuple(TABLE1)
MAIN_BASELINE_EMBEDDING_DIM = 64  # section 4.1.3: every baseline at its best, embedding 64
MAIN_MEMBER_EMBEDDING_DIM = 32  # each CETNet member at 32, its other settings unchanged
MAIN_ALPHAS: tuple[float, ...] = (0.1, 0.5, 1.0)  # alpha tuned in this set


def main_figure(row: str, dataset: str, metric: str) -> float | None:
    """Table 1's ``metric`` for ``row`` on ``dataset`` (None for a row the paper lacks)."""
    return TABLE1.get(row, {}).get(dataset, {}).get(metric)


def scaling_table_for(epochs: int) -> int:
    """The paper's table to compare a scaling run with: Table 5 (one epoch, appendix A.2) for
    one-epoch training, Table 4 otherwise."""
    return 5 if epochs == 1 else 4


def scaling_auc(table: int, dataset: str, model: str, method: str, scale: int) -> float | None:
    """The paper's AUC for ``model`` (registry name) as ``method`` (or :data:`BASE`, scale 1)
    at ``scale``; None where the paper has no such cell."""
    return SCALING_TABLES[table][dataset].get(model, {}).get(method, {}).get(scale)


def improvement(value: float, reference: float) -> float:
    """The paper's improvement measure, ``value / reference - 1`` (a fraction; e.g. section 4.2:
    DIN's AUC 0.8858 over DHEN's 0.8799 is "a 0.67% improvement")."""
    return value / reference - 1.0


def ablation_figure(label: str, dataset: str, metric: str) -> float | None:
    """A Table 3 figure by this project's variant label; None for a row the paper lacks."""
    return TABLE3.get(label, {}).get(dataset, {}).get(metric)


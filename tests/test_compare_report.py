"""The comparison's report against hand-computed values: the best single model chosen on
validation, paired differences and p-values equal to scipy's paired t-test, control
differences, the Pareto front, the recommendation's words and the report's files."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from scipy import stats

from mutualctr.comparison import report
from mutualctr.comparison.outcomes import Outcome, ServingCost, TrainingCost

SEEDS = (0, 1, 2)
ALONE_A_TEST = (0.800, 0.803, 0.806)
ALONE_A_VALID = (0.790, 0.792, 0.794)
# per-seed test AUC minus alone a's: alone b is higher on test but lower on validation
ALONE_B = (0.009, -0.002, 0.008)
ENSEMBLE = (0.004, 0.005, 0.0045)
MUTUAL = (0.0020, 0.0025, 0.0030)
FINETUNE_ALONE = (0.0010, -0.0005, 0.0008)
NOISE = (0.004, -0.003, 0.002)  # a gain that is not significant at three seeds


def serving(ms_1024: float = 10.0, models: int = 1, single: bool = True) -> ServingCost:
    return ServingCost(parameters=1_234_567 * models, models=models, flops_per_row=2.5e5 * models,
                       ms_per_1000_batch1=40.0 * models, ms_per_1000_batch1024=ms_1024,
                       single_model=single)


def outcomes_of(row: str, method: str, test: tuple[float, ...], *, valid: float = 0.78,
                control: str = "", seeds: tuple[int, ...] = SEEDS,
                cost: ServingCost | None = None) -> list[Outcome]:
    """One outcome per seed of ``row`` with the given test AUCs."""
    return [
        Outcome(row=row, method=method, seed=seed, valid_auc=valid, test_auc=auc,
                test_logloss=0.45 + i / 1000, control=control,
                training=TrainingCost(member_epochs=2.0, seconds=30.0 + 60 * i, flops=3.2e12),
                serving=cost or serving())
        for i, (seed, auc) in enumerate(zip(seeds, test, strict=True))
    ]


def plus(gains: tuple[float, ...]) -> tuple[float, ...]:
    """alone a's test AUCs plus ``gains``, seed by seed."""
    return tuple(a + g for a, g in zip(ALONE_A_TEST, gains, strict=True))


def comparison(ensemble: tuple[float, ...] = ENSEMBLE, mutual: tuple[float, ...] = MUTUAL
               ) -> list[Outcome]:
    """alone a (the best single by validation), alone b (higher test AUC), the ensemble of the
    two, mutual finetune a and its control finetune alone a, over three seeds."""
    alone_a = [
        Outcome(row="alone a", method="train", seed=o.seed, valid_auc=v, test_auc=o.test_auc,
                test_logloss=o.test_logloss, control="", training=o.training,
                serving=o.serving)
        for o, v in zip(outcomes_of("alone a", "train", ALONE_A_TEST), ALONE_A_VALID,
                        strict=True)
    ]
    return [
        *alone_a,
        *outcomes_of("alone b", "train", plus(ALONE_B), valid=0.787),
        *outcomes_of("ensemble", "ensemble", plus(ensemble),
                     cost=serving(20.0, models=2, single=False)),
        *outcomes_of("mutual finetune a", "mutual", plus(mutual), control="finetune alone a"),
        *outcomes_of("finetune alone a", "train", plus(FINETUNE_ALONE), valid=0.70),
    ]


def by_row(summaries: list[report.RowSummary]) -> dict[str, report.RowSummary]:
    return {s.row: s for s in summaries}


def scipy_p(after: tuple[float, ...], before: tuple[float, ...]) -> float:
    return float(stats.ttest_rel(after, before).pvalue)


# -- summaries -----------------------------------------------------------------------------------


def test_best_single_is_chosen_on_validation_not_test():
    rows = by_row(report.summarize(comparison()))
    assert rows["alone b"].test_auc_mean > rows["alone a"].test_auc_mean
    assert report.best_single(list(rows.values())) is rows["alone a"]
    assert rows["alone a"].is_best_single and rows["alone a"].vs_best is None
    assert not rows["alone b"].is_best_single
    assert rows["alone b"].vs_best.against == "alone a"
    assert rows["alone b"].vs_best.mean == pytest.approx(0.005)


def test_means_and_std_over_seeds():
    a = by_row(report.summarize(comparison()))["alone a"]
    assert a.seeds == SEEDS and a.n_seeds == 3
    assert a.test_auc_mean == pytest.approx(0.803)
    assert a.test_auc_std == pytest.approx(0.003)  # sample std of 0.800, 0.803, 0.806
    assert a.valid_auc_mean == pytest.approx(0.792)
    assert a.test_logloss_mean == pytest.approx(0.451)
    assert a.training == TrainingCost(member_epochs=2.0, seconds=pytest.approx(90.0),
                                      flops=pytest.approx(3.2e12))
    assert a.serving == serving()


@pytest.mark.parametrize("row, gains", [("alone b", ALONE_B), ("ensemble", ENSEMBLE),
                                        ("mutual finetune a", MUTUAL),
                                        ("finetune alone a", FINETUNE_ALONE)])
def test_delta_vs_best_single_is_scipy_paired_t_test(row, gains):
    delta = by_row(report.summarize(comparison()))[row].vs_best
    assert delta.mean == pytest.approx(sum(gains) / 3)
    assert delta.pairs == 3 and delta.no_p == ""
    assert delta.p == pytest.approx(scipy_p(plus(gains), ALONE_A_TEST), rel=1e-9)


def test_delta_p_by_hand():
    """Mutual's gains 0.0020, 0.0025, 0.0030: mean 0.0025, std 0.0005, t = 5 sqrt(3); with 2
    degrees of freedom the two-sided p is 1 - |t| / sqrt(2 + t^2)."""
    delta = by_row(report.summarize(comparison()))["mutual finetune a"].vs_best
    t = 5 * math.sqrt(3)
    assert delta.p == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)


def test_delta_vs_control():
    rows = by_row(report.summarize(comparison()))
    delta = rows["mutual finetune a"].vs_control
    assert delta.against == "finetune alone a"
    expected = [m - f for m, f in zip(MUTUAL, FINETUNE_ALONE, strict=True)]
    assert delta.mean == pytest.approx(sum(expected) / 3)
    assert delta.p == pytest.approx(scipy_p(plus(MUTUAL), plus(FINETUNE_ALONE)), rel=1e-9)
    assert rows["alone b"].vs_control is None and rows["ensemble"].vs_control is None


def test_a_model_alone_is_tested_against_itself_without_histories_never_the_baseline():
    """alone b's control, alone b without histories, has the best validation AUC of all; a
    control is not a candidate for the best single model, alone a stays the baseline."""
    without = (0.001, -0.004, 0.002)  # alone b without histories, vs alone a
    outcomes = [
        *(o if o.row != "alone b" else dataclasses.replace(
            o, control="alone b without histories") for o in comparison()),
        *outcomes_of("alone b without histories", "train", plus(without), valid=0.80),
    ]
    rows = by_row(report.summarize(outcomes))
    assert report.best_single(list(rows.values())) is rows["alone a"]
    delta = rows["alone b"].vs_control
    assert delta.against == "alone b without histories"
    expected = [b - w for b, w in zip(ALONE_B, without, strict=True)]
    assert delta.mean == pytest.approx(sum(expected) / 3)
    assert delta.p == pytest.approx(scipy_p(plus(ALONE_B), plus(without)), rel=1e-9)
    assert rows["alone b without histories"].vs_best.against == "alone a"
    assert "vs alone b without histories" in report.markdown(list(rows.values()))


def test_missing_control_row_has_no_delta():
    outcomes = [o for o in comparison() if o.row != "finetune alone a"]
    mutual = by_row(report.summarize(outcomes))["mutual finetune a"]
    assert mutual.control == "finetune alone a" and mutual.vs_control is None
    assert "n/a (no finetune alone a row)" in report.markdown(report.summarize(outcomes))


def test_one_seed_has_no_p():
    summaries = report.summarize([o for o in comparison() if o.seed == 0])
    delta = by_row(summaries)["ensemble"].vs_best
    assert delta.p is None and delta.no_p == report.ONE_SEED and delta.pairs == 1
    assert delta.mean == pytest.approx(ENSEMBLE[0])
    assert by_row(summaries)["ensemble"].test_auc_std == 0.0


def test_rows_without_shared_seeds_have_no_p():
    other = outcomes_of("ektf student", "ektf", (0.81, 0.82), seeds=(7, 8))
    summary = by_row(report.summarize([*comparison(), *other]))["ektf student"]
    delta = summary.vs_best
    assert delta.p is None and delta.no_p == report.NO_SHARED_SEEDS and delta.pairs == 0
    assert delta.mean == pytest.approx(0.815 - 0.803)  # the difference of the means


def test_partly_shared_seeds_are_paired_over_the_shared_ones():
    other = outcomes_of("cetnet fused", "cetnet", (0.81, 0.80, 0.83), seeds=(1, 2, 9))
    delta = by_row(report.summarize([*comparison(), *other]))["cetnet fused"].vs_best
    assert delta.pairs == 2
    assert delta.mean == pytest.approx(((0.81 - 0.803) + (0.80 - 0.806)) / 2)
    assert delta.p == pytest.approx(scipy_p((0.81, 0.80), (0.803, 0.806)), rel=1e-9)


def test_equal_rows_have_no_p():
    same = outcomes_of("distill a", "distill", ALONE_A_TEST)
    delta = by_row(report.summarize([*comparison(), *same]))["distill a"].vs_best
    assert delta.mean == 0.0 and delta.p is None and delta.no_p == report.NO_SPREAD


def test_no_model_alone_means_no_baseline():
    summaries = report.summarize([o for o in comparison() if o.method != "train"])
    assert report.best_single(summaries) is None
    assert all(s.vs_best is None for s in summaries)
    assert report.recommendation(summaries).startswith("No model was trained alone")


@pytest.mark.parametrize("outcomes, message", [
    ([], "at least one outcome"),
    (outcomes_of("x", "train", (0.8, 0.8), seeds=(1, 1)), "more than one outcome"),
    ([*outcomes_of("x", "train", (0.8,), seeds=(1,)),
      *outcomes_of("x", "mutual", (0.8,), seeds=(2,))], "method or control"),
])
def test_summarize_rejects_malformed_outcomes(outcomes, message):
    with pytest.raises(ValueError, match=message):
        report.summarize(outcomes)


# -- the Pareto front ----------------------------------------------------------------------------


def pareto_rows() -> list[report.RowSummary]:
    """(test AUC, latency): c, e and g are dominated; b and d are equal in both."""
    points = {"a": (0.80, 1.0), "b": (0.81, 2.0), "c": (0.805, 2.5), "d": (0.81, 2.0),
              "e": (0.80, 1.5), "f": (0.82, 5.0), "g": (0.79, 1.0)}
    outcomes = [o for row, (auc, ms) in points.items()
                for o in outcomes_of(row, "train", (auc,), seeds=(0,), cost=serving(ms))]
    return report.summarize(outcomes)


def test_pareto_front():
    assert report.pareto_front(pareto_rows()) == ["a", "b", "d", "f"]


def test_pareto_front_of_one_row_is_that_row():
    assert report.pareto_front(pareto_rows()[:1]) == ["a"]


# -- the recommendation --------------------------------------------------------------------------


def test_recommendation_significant():
    p_mutual = report.format_p(scipy_p(plus(MUTUAL), ALONE_A_TEST))
    p_ensemble = report.format_p(scipy_p(plus(ENSEMBLE), ALONE_A_TEST))
    assert (p_mutual, p_ensemble) == ("0.013", "0.0041")
    assert report.recommendation(report.summarize(comparison())) == (
        f"One deployed model: mutual finetune a (+0.0025 AUC vs alone a, p {p_mutual}).\n"
        f"Best at any serving cost: ensemble (+0.0045, p {p_ensemble}, 2 models, 2.0x the "
        "latency of alone a at batch 1024)."
    )


def test_recommendation_not_significant():
    text = report.recommendation(report.summarize(comparison(ensemble=NOISE, mutual=NOISE)))
    p_b = report.format_p(scipy_p(plus(ALONE_B), ALONE_A_TEST))
    assert p_b == "0.29"
    assert text == (
        "One deployed model: no way of training beat alone a significantly at 3 seeds; the "
        f"best one-model row is alone b (+0.0050, p {p_b}).\n"
        "Best at any serving cost: nothing beat alone a significantly either; the highest "
        f"mean test AUC is alone b (+0.0050, p {p_b}, 1 model, 1.0x the latency of alone a "
        "at batch 1024)."
    )


def test_recommendation_only_the_ensemble_significant():
    text = report.recommendation(report.summarize(comparison(mutual=NOISE)))
    first, second = text.split("\n")
    assert first.startswith("One deployed model: no way of training beat alone a "
                            "significantly at 3 seeds; the best one-model row is alone b")
    assert second.startswith("Best at any serving cost: ensemble (+0.0045, p 0.0041, 2 models")


def test_recommendation_one_seed():
    text = report.recommendation(report.summarize([o for o in comparison() if o.seed == 0]))
    assert text == (
        "One seed: no significance test is possible (a paired t-test needs at least two seeds, "
        "each a full replicate); what follows is by the test AUC of that seed.\n"
        "The best one-model row is alone b (+0.0090 AUC vs alone a).\n"
        "The best at any serving cost is alone b (+0.0090, 1 model, 1.0x the latency of "
        "alone a at batch 1024)."
    )


def test_recommendation_one_seed_when_nothing_is_ahead_of_the_best_single():
    # at seed 0 alone a (the best single) is at 0.78; every other row a little below it
    rows = [*outcomes_of("alone a", "train", (0.78,), valid=0.80, seeds=(0,)),
            *outcomes_of("ektf student", "ektf", (0.7795,), seeds=(0,)),
            *outcomes_of("ensemble", "ensemble", (0.7798,), seeds=(0,),
                         cost=serving(20.0, models=2, single=False))]
    lines = report.recommendation(report.summarize(rows)).split("\n")
    assert lines[1] == ("No one-model row beat alone a at that seed; the closest is ektf "
                        "student (-0.0005 AUC vs alone a).")
    assert lines[2].startswith("No row beat alone a at that seed; the closest is ensemble "
                               "(-0.0002, 2 models")


# -- the table, the JSON and the files -----------------------------------------------------------


def test_markdown_numbers():
    summaries = report.summarize(comparison())
    text = report.markdown(summaries, title="criteo", notes=("a note of the caller",))
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")
            for line in text.splitlines() if line.startswith("| ")}
    alone_a, mutual, ensemble = rows["alone a"], rows["mutual finetune a"], rows["ensemble"]
    assert text.startswith("## criteo\n")
    assert alone_a[1:5] == ["3", "0.8030 ± 0.0030", "0.4510", "best single"]
    p_control = report.format_p(scipy_p(plus(MUTUAL), plus(FINETUNE_ALONE)))
    assert mutual[4:6] == ["+0.0025 (p 0.013)", f"+0.0021 (p {p_control}) vs finetune alone a"]
    assert alone_a[6:9] == ["2", "1m 30s", "3.20 TFLOP"]  # member-epochs, seconds, FLOPs
    assert ensemble[9:14] == ["80.0", "20.0", "2.47M", "500 kFLOP", "no |"]
    assert alone_a[13] == "yes |"
    assert "chosen on validation, not test" in text
    assert "two-sided" in text and "full, independent replicate" in text
    assert "- a note of the caller" in text


def test_markdown_one_seed_says_why_p_is_missing():
    text = report.markdown(report.summarize([o for o in comparison() if o.seed == 0]))
    assert "+0.0040 (p n/a)" in text
    assert "p n/a for alone b vs alone a, ensemble vs alone a" in text
    assert report.NO_P_REASONS[report.ONE_SEED] in text


@pytest.mark.parametrize("value, unit, text", [
    (3.2e12, "FLOP", "3.20 TFLOP"), (1_234_567, "", "1.23M"), (512, "", "512"),
    (0, "FLOP", "0 FLOP"), (2.5e5, "FLOP", "250 kFLOP"),
])
def test_format_si(value, unit, text):
    assert report.format_si(value, unit) == text


@pytest.mark.parametrize("seconds, text", [(42.0, "42.0 s"), (245, "4m 05s"),
                                           (7380, "2h 03m")])
def test_format_duration(seconds, text):
    assert report.format_duration(seconds) == text


@pytest.mark.parametrize("p, text", [(None, "n/a"), (0.0412, "0.041"), (0.5, "0.5"),
                                     (0.0, "< 0.0001")])
def test_format_p(p, text):
    assert report.format_p(p) == text


def test_json_round_trips():
    outcomes = [*comparison(), *outcomes_of("ektf student", "ektf", (0.81, 0.82), seeds=(7, 8))]
    summaries = report.summarize(outcomes)
    data = report.to_json(outcomes, summaries, title="criteo")
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["best_single"] == "alone a"
    assert len(data["outcomes"]) == len(outcomes)
    student = next(s for s in data["summaries"] if s["row"] == "ektf student")
    assert student["n_seeds"] == 2 and student["seeds"] == [7, 8]
    assert student["vs_best"]["p"] is None and student["vs_best"]["no_p"] == "no shared seeds"
    assert data["outcomes"][0]["serving"]["single_model"] is True


def test_non_finite_values_become_null():
    outcomes = outcomes_of("alone a", "train", (0.8, math.nan), seeds=(0, 1))
    data = report.to_json(outcomes, report.summarize(outcomes))
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["outcomes"][1]["test_auc"] is None


def test_write_report(tmp_path):
    outcomes = comparison()
    text = report.write_report(tmp_path / "criteo", outcomes, title="criteo",
                               notes=("data: criteo, 1% sample",))
    folder = tmp_path / "criteo"
    assert (folder / report.REPORT_FILE).read_text() == text
    assert "### Recommendation" in text and "One deployed model: mutual finetune a" in text
    assert "Pareto front (higher test AUC, lower latency at batch 1024): alone b." in text
    results = json.loads((folder / report.RESULTS_FILE).read_text())
    assert results["title"] == "criteo" and "data: criteo, 1% sample" in results["notes"]
    png = (folder / report.PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_plot_with_a_wide_latency_range(tmp_path):
    rows = pareto_rows()
    wide = [*rows, *report.summarize(outcomes_of("slow", "cetnet", (0.83,), seeds=(0,),
                                                 cost=serving(500.0)))]
    report.plot(wide, tmp_path / "wide.png")
    assert (tmp_path / "wide.png").stat().st_size > 1000

"""CETNet end to end: groups and ablations, the experiment's plan, a tiny run and its report."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mutualctr.cli import main
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError
from mutualctr.experiments.cetnet import paper, run
from mutualctr.experiments.cetnet.plan import CETNetExperimentConfig, configurations, plan
from mutualctr.experiments.cetnet.report import (
    main_alpha_table,
    main_table,
    scaling_beside_paper,
    significance,
)
from mutualctr.experiments.engine import Record, load_records
from mutualctr.methods.cetnet import ABLATIONS, CETNET, Variant, group_ids
from mutualctr.methods.cetnet import build_cetnet as build_built
from mutualctr.methods.members import MemberConfig
from mutualctr.training.config import TrainConfig
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup
from training_support import FEATURE_MAP, SEQUENCE_FEATURE_MAP, sequence_split, write_store

SMALL = {"dnn": {"hidden_units": [8]}, "pnn": {"hidden_units": [8]}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("cetnet") / "data",
                       {"train": 800, "valid": 300, "test": 400})


def build_cetnet(models: list[str], alpha: float, variant: Variant = CETNET) -> tuple:
    members = [MemberConfig(model=m, model_config={**SMALL.get(m, {}), "embedding_dim": 4})
               for m in models]
    built = build_built(FEATURE_MAP, members, alpha=alpha, variant=variant)
    return built.group, built.objective


def small_config(store: Path, **kw: object) -> CETNetExperimentConfig:
    train = TrainConfig(epochs=1, batch_size=200, lr=0.02, num_threads=1, log_every_steps=1000,
                        user_field="a")
    values = {"data": str(store), "scaling_models": ("dnn",), "scales": (2,),
              "pairs": ("dnn+pnn",), "embedding_dim": 4,
              "model_config": SMALL, "train": train, **kw}
    return CETNetExperimentConfig(**values)


def test_each_model_has_its_own_table_unless_shared() -> None:
    group, objective = build_cetnet(["dnn", "pnn"], alpha=0.5)
    tables = [m.embedding.table.weight for m in group.models]
    assert tables[0].data_ptr() != tables[1].data_ptr()
    assert objective.member_names == ["dnn_1", "pnn_2"]
    shared, _ = build_cetnet(["dnn", "pnn"], alpha=0.5,
                             variant=Variant("x", shared_embedding=True))
    assert isinstance(shared, SharedEmbeddingGroup)
    with pytest.raises(ConfigError, match="two members"):
        build_cetnet(["dnn"], alpha=0.1)


def test_ablation_variants_set_their_objective() -> None:
    by_label = {v.label: v for v in ABLATIONS}
    _, no_kl = build_cetnet(["dnn", "dnn"], alpha=0.5, variant=by_label["w/o KL"])
    assert no_kl.alpha == 0.0
    _, concat = build_cetnet(["dnn", "dnn"], alpha=0.5, variant=by_label["ME + concat"])
    assert (concat.fusion.mode, concat.alpha, concat.member_losses) == ("concat", 0.0, False)
    _, no_sg = build_cetnet(["dnn", "dnn"], alpha=0.5, variant=by_label["w/o stop-gradient"])
    assert not no_sg.fusion.stop_gradient


def test_plan_covers_both_tables_and_runs_each_single_model_once(store: Path) -> None:
    jobs = configurations(small_config(store, scales=(2, 3)))
    opened = EncodedStore.open(store)

    def build(key: str) -> tuple:
        job = next(j for j in jobs if j.labels["key"] == key)
        built = job.method.build(job.config, opened)
        return built.group, built.objective

    keys = [j.labels["key"] for j in jobs]
    assert len(keys) == len(set(keys))
    assert [j.out for j in jobs] == [Path("runs") / key for key in keys]
    assert {"single/dnn", "single/pnn", "scaling/dnn/se_2x", "scaling/dnn/me_3x",
            "scaling/dnn/ours_sum_3x", "scaling/dnn/ours_concat_3x"} <= set(keys)
    assert sum(j.labels["table"] == "ablation" and j.labels["key"].startswith("ablation/")
               for j in jobs) == len(ABLATIONS)
    group, objective = build("scaling/dnn/ours_concat_3x")
    assert len(group.models) == 3 and objective.monitor == "fused"
    se, _ = build("scaling/dnn/se_2x")
    assert se.models[0].config.embedding_dim == 8
    me, _ = build("scaling/dnn/me_3x")
    assert len(me.models[0].embedding.tables) == 3


def test_default_scaling_plan_is_the_papers_table_4() -> None:
    # Liu et al. 4.4.2: base size 10; SE, ME, Ours-sum, Ours-concat at 2x, 3x, 4x, 10x
    config = CETNetExperimentConfig(data="x", tables=("scaling",), scaling_models=("dnn",))
    assert config.embedding_dim == 10
    jobs = {(j.labels["method"], j.labels["scale"]): j for j in configurations(config)}
    assert set(jobs) == {("dnn", 1)} | {(m, k) for m in ("SE", "ME", "Ours-sum", "Ours-concat")
                                         for k in (2, 3, 4, 10)}
    assert jobs[("dnn", 1)].config.model_config["embedding_dim"] == 10
    for k in (2, 3, 4, 10):
        assert jobs[("SE", k)].config.model_config["embedding_dim"] == 10 * k
        me = jobs[("ME", k)].config
        assert (me.model, me.model_config["embedding_dim"], me.model_config["num_embeddings"]) == (
            "me_dnn", 10, k)
        for label, fusion in (("Ours-sum", "confidence_sum"), ("Ours-concat", "confidence")):
            ours = jobs[(label, k)].config
            assert [(m.model, m.model_config["embedding_dim"]) for m in ours.members] == [
                ("dnn", 10)] * k and ours.fusion == fusion
            assert ours.use_kl and ours.member_losses and ours.stop_gradient


def record(key: str, table: str, row: str, method: str, scale: int, seed: int,
           auc: float, valid_auc: float = 0.5) -> Record:
    """A run's record as the experiment writes it; CETNet groups carry member predictions
    too (set far from the fused one, so a test that used them would show it)."""
    test = {"fused": {"auc": auc}, "dnn_1": {"auc": 0.1}, "pnn_2": {"auc": 0.9}}
    valid = {"fused": {"auc": valid_auc}, "dnn_1": {"auc": 0.99}, "pnn_2": {"auc": 0.99}}
    labels = {"key": key, "table": table, "row": row, "method": method, "scale": scale,
              "seed": seed}
    return Record(labels, Path("runs") / key / f"seed_{seed}",
                  {"monitor": "fused", "parameters": 1, "valid": valid, "test": test})


def test_scaling_report_puts_the_papers_table_4_beside_ours() -> None:
    config = CETNetExperimentConfig(data="x", tables=("scaling",), scaling_models=("dnn",),
                                    scales=(2,))
    records = [record("single/dnn", "scaling", "dnn", "dnn", 1, 2024, 0.80),
               record("scaling/dnn/ours_sum_2x", "scaling", "dnn", "Ours-sum", 2, 2024, 0.81)]
    text = scaling_beside_paper(records, config, 4, improvements=False)
    assert text.splitlines()[0] == ("| model | method | base ours | base Criteo | base Avazu | "
                                    "2x ours | 2x Criteo | 2x Avazu |")
    # Liu et al., Table 4, DNN: base 0.80915 / 0.78747, Ours-sum 2x 0.80950 / 0.78962
    assert "| DNN | SE | 0.8000 | 0.80915 | 0.78747 | n/a | 0.80948 | 0.78748 |" in text
    assert "|  | Ours-sum |  |  |  | 0.8100 | 0.80950 | 0.78962 |" in text
    gains = scaling_beside_paper(records, config, 4, improvements=True)
    # the paper's measure, AUC / AUC_base - 1: ours 0.81 / 0.80 - 1 = +1.25%;
    # Criteo 0.80950 / 0.80915 - 1 = +0.043%; Avazu 0.78962 / 0.78747 - 1 = +0.273%
    assert "|  | Ours-sum | +1.25% | +0.04% | +0.27% |" in gains


def test_paper_figures_match_the_papers_prose() -> None:
    t4, t5 = paper.TABLE4, paper.TABLE5
    # section 4.4.2
    assert t4["Criteo"]["finalmlp"]["Ours-sum"][3] == 0.81021
    assert t4["Criteo"]["finalmlp"]["ME"][10] == 0.81008
    assert t4["Criteo"]["finalmlp"]["SE"][10] == 0.80986
    assert t4["Avazu"]["dcnv2"]["ME"][10] == 0.78975
    assert t4["Avazu"]["dcnv2"]["Ours-concat"][2] == 0.79033
    # appendix A.2
    assert (t5["Criteo"]["pnn"]["Ours-sum"][2], t5["Criteo"]["pnn"]["ME"][4],
            t5["Criteo"]["pnn"]["SE"][3]) == (0.80745, 0.80736, 0.80695)
    assert (t5["Criteo"]["dnn"]["Ours-sum"][3], t5["Criteo"]["dnn"]["ME"][3],
            t5["Criteo"]["dnn"]["SE"][3]) == (0.80542, 0.80480, 0.80399)
    assert (t5["Avazu"]["dcnv2"]["ME"][10], t5["Avazu"]["dcnv2"]["Ours-sum"][2]) == (
        0.78464, 0.78453)
    # section 4.3
    t3 = paper.TABLE3
    assert t3["w/o confidence fusion"]["AmazonElectronics"]["gauc"] == 0.8833
    assert t3["w/o KL"]["KuaiVideo"]["auc"] == 0.7443
    assert (t3["w/o multi-embedding"]["TaobaoAds"]["gauc"],
            t3["w/o multi-embedding"]["TaobaoAds"]["logloss"]) == (0.5745, 0.1935)
    assert t3["w/o stop-gradient"]["KuaiVideo"]["gauc"] == 0.6620
    assert t3["SE + concat"]["AmazonElectronics"]["gauc"] == 0.8796
    assert t3["ME + concat"]["TaobaoAds"]["auc"] == 0.6495
    # section 4.4.1 and the improvement measure: DHEN 0.8799 -> 0.8842 is "a 0.49% increase"
    assert t3["model 2 alone"]["AmazonElectronics"]["auc"] == 0.8799
    assert round(100 * paper.improvement(0.8842, 0.8799), 2) == 0.49
    assert paper.scaling_table_for(1) == 5 and paper.scaling_table_for(20) == 4


def test_significance_pairs_groups_by_seed_not_members() -> None:
    config = CETNetExperimentConfig(data="x", tables=("ablation",), pairs=("dnn+pnn",),
                                    seeds=3)
    records = []
    for seed, (full, alone) in zip((1, 2, 3), ((0.80, 0.79), (0.81, 0.79), (0.82, 0.79)),
                                   strict=True):
        records.append(record("ablation/dnn+pnn/cetnet", "ablation", "dnn+pnn", "CETNet", 2,
                              seed, full))
        records.append(record("single/dnn", "ablation", "dnn+pnn", "dnn", 1, seed, alone))
    text = significance(records, config)
    assert "Independent samples are the seeds" in text
    # differences 0.01, 0.02, 0.03 over 3 seeds: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3)
    # = 3.4641; with 2 degrees of freedom p = 1 - |t| / sqrt(2 + t^2) = 1 - sqrt(12 / 14)
    t = 0.02 / (0.01 / math.sqrt(3))
    p = 1 - math.sqrt(12 / 14)
    assert f"| DNN + IPNN: CETNet vs model 1 alone | 3 | +0.0200 | {t:.2f} | {p:.3g} |" in text
    one_seed = significance(records, CETNetExperimentConfig(data="x", tables=("ablation",),
                                                            pairs=("dnn+pnn",)))
    assert "one seed" in one_seed


def test_default_main_plan_is_the_papers_table_1() -> None:
    # Liu et al. 4.1.3: baselines at embedding 64, each CETNet member at 32, alpha in
    # {0.1, 0.5, 1.0}; Table 1's eleven rows
    config = CETNetExperimentConfig(data="x", tables=("main",))
    jobs = {(j.labels["row"], j.labels["method"]): j for j in configurations(config)}
    singles = ("xdeepfm", "dcnv2", "dhen", "wukong", "din", "dien", "interformer")
    pairs = ("din+dien", "interformer+interformer", "interformer+dcnv2", "interformer+dhen")
    assert set(jobs) == {(m, "alone") for m in singles} | {
        (p, f"alpha {a}") for p in pairs for a in ("0.1", "0.5", "1")}
    assert all(jobs[(m, "alone")].config.model_config["embedding_dim"] == 64 for m in singles)
    same = jobs[("interformer+interformer", "alpha 0.5")].config
    assert [(m.model, m.model_config["embedding_dim"]) for m in same.members] == [
        ("interformer", 32)] * 2 and same.alpha == 0.5
    assert same.use_kl and same.member_losses and same.stop_gradient
    assert CETNetExperimentConfig().tables == ("scaling", "ablation")  # main needs sequences


def test_main_table_reports_the_alpha_best_on_validation_beside_table_1() -> None:
    config = CETNetExperimentConfig(data="x", tables=("main",), main_rows=("din", "din+dien"),
                                    seeds=2)
    records = [record("main/din", "main", "din", "alone", 1, s, 0.70) for s in (1, 2)]
    # alpha 0.5 is best on validation though alpha 1 is best on test: 0.5 is reported
    for alpha, valid, test in ((0.1, 0.60, 0.71), (0.5, 0.66, 0.72), (1.0, 0.62, 0.90)):
        records += [record(f"main/din+dien/alpha_{alpha:g}", "main", "din+dien",
                           f"alpha {alpha:g}", 2, s, test + s / 100, valid) for s in (1, 2)]
    text = main_table(records, config)
    # Liu et al., Table 1, CETNet (DIN+DIEN): Amazon 0.8846 / 0.8869 / 0.4346
    assert "| CETNet (DIN + DIEN) | 0.5 | n/a | n/a | 0.7350 ± 0.0071 | n/a | 0.8846 | 0.8869 |" \
        in text
    assert "| DIN |  | n/a | n/a | 0.7000 ± 0.0000 | n/a | 0.8830 | 0.8858 | 0.4319 |" in text
    assert "| CETNet (DIN + DIEN) | 0.6000 | 0.6600 | 0.6200 |" in main_alpha_table(records,
                                                                                 config)
    tests = significance(records, config)
    assert "| CETNet (DIN + DIEN) vs DIN alone | 2 | +0.0350 |" in tests


def test_tiny_main_table_on_a_store_with_histories(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = write_store(tmp_path / "seq", {"train": 600, "valid": 200, "test": 300},
                       SEQUENCE_FEATURE_MAP, sequence_split)
    config = small_config(data, tables=("main",), main_rows=("dnn", "dnn+pnn"),
                          main_embedding_dim=8, member_embedding_dim=4, alphas=(0.1, 1.0))
    config.train.user_field = "user"
    text = run(config, tmp_path / "out", log=io.StringIO())
    records = load_records(tmp_path / "out" / "runs")
    assert sorted(r.labels["key"] for r in records) == [
        "main/dnn", "main/dnn+pnn/alpha_0.1", "main/dnn+pnn/alpha_1"]
    assert "| CETNet (DNN + IPNN) |" in text and "## Main comparison (Table 1 layout)" in text
    assert "base embedding size" not in text  # the scaling table's settings: not run here
    pair = next(r for r in records if r.labels["key"] == "main/dnn+pnn/alpha_1")
    assert 0.0 < pair.metrics["test"]["fused"]["gauc_users"] <= 1.0


def test_tiny_experiment_writes_both_tables(store: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = small_config(store)
    log = io.StringIO()
    text = run(config, tmp_path, log=log)
    records = load_records(tmp_path / "runs")
    jobs = plan(config, tmp_path)
    assert len(records) == len(jobs)
    progress = [line for line in log.getvalue().splitlines() if line.startswith("[")]
    assert progress[0] == f"[1/{len(jobs)}] single/dnn, seed 2024 -> {jobs[0].out}"
    assert "## Scaling (Table 4 layout): AUC beside Liu et al., Table 5 (one epoch)" in text
    assert "## Ablation (Table 3 layout)" in text and "## Significance" in text
    assert f"base embedding size {config.embedding_dim}; alpha {config.alpha};" in text
    assert "| DNN | SE |" in text and "| w/o stop-gradient |" in text
    assert "0.80465" in text  # Liu et al., Table 5: DNN's base AUC on Criteo
    cetnet = next(r for r in records if r.labels["key"] == "ablation/dnn+pnn/cetnet")
    assert set(cetnet.metrics["test"]) == {"fused", "dnn_1", "pnn_2"}
    assert cetnet.metrics["parameters"] > 0
    fused = cetnet.metrics["test"]["fused"]
    assert fused["auc"] > 0.6  # the synthetic clicks are learnable
    assert 0.5 < fused["gauc_impressions"] <= 1.0 and 0.5 < fused["gauc_users"] <= 1.0
    # NE against the training split's click rate (He et al. 2014), not the test split's
    rate = float(np.mean(EncodedStore.open(store).split("train").label))
    entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert fused["normalized_entropy"] == pytest.approx(fused["logloss"] / entropy)
    assert (tmp_path / "results.csv").read_text().count("\n") >= len(records)
    weights = tmp_path / "runs" / "ablation" / "dnn+pnn" / "cetnet" / "seed_2024" / "model.pt"
    stamp = weights.stat().st_mtime_ns
    assert run(config, tmp_path, log=io.StringIO()) == text  # scored runs are kept
    assert weights.stat().st_mtime_ns == stamp


def test_group_ids_are_the_test_split_column(store: Path) -> None:
    opened = EncodedStore.open(store)
    ids = group_ids(opened, "a")
    np.testing.assert_array_equal(ids, opened.split("test").categorical[:, 0])
    assert group_ids(opened, "auto") is None  # no field called "user"
    with pytest.raises(ConfigError, match=r"train\.user_field 'nope'"):
        group_ids(opened, "nope")


def test_cli_trains_one_group(store: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cetnet", "--data", str(store), "--models", "dnn", "dnn", "--out",
                 str(tmp_path / "run"), "--embedding-dim", "4", "--alpha", "0.5",
                 "--set", "train.epochs=1", "--set", "train.batch_size=200",
                 "--set", "train.num_threads=1", "--set", "train.user_field=a",
                 "--set", "members=[{model: dnn, model_config: {hidden_units: [8]}}, "
                 "{model: dnn, model_config: {hidden_units: [8]}}]"])
    assert code == 0
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["monitor"] == "fused"
    printed = json.loads(capsys.readouterr().out)["test"]
    assert set(printed) == {"fused", "dnn_1", "dnn_2"}
    assert printed["fused"] == record["test"]["fused"]
    assert {"gauc_impressions", "gauc_users", "normalized_entropy"} <= set(printed["fused"])

"""``model_config.exclude_fields``: one store serves models with and without some fields. An
excluded field has no parameters and no effect on the predictions, in a model alone, in groups
sharing or stacking tables, and in a trained run that is evaluated and exported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mutualctr.cli import main
from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import histories
from mutualctr.models.inputs import ModelInputs
from mutualctr.models.registry import build_model
from mutualctr.serving.export import load_torchscript
from mutualctr.serving.inference import InferenceRun
from mutualctr.training.groups.batched import BatchedModelGroup, can_batch
from mutualctr.training.groups.shared_embedding import SharedEmbeddingGroup
from training_support import SEQUENCE_FEATURE_MAP, VOCAB, sequence_split, write_store

pytestmark = pytest.mark.usefixtures("one_thread")

DIM = 4
SMALL = {"embedding_dim": DIM, "embedding_init_std": 0.1}
SEQUENCES = ["tags", "hist_item"]  # SEQUENCE_FEATURE_MAP's two sequence fields


def batch(seed: int = 0, rows: int = 64) -> Batch:
    split = sequence_split(rows, seed)
    return Batch(torch.as_tensor(split.categorical, dtype=torch.long),
                 torch.as_tensor(split.numeric),
                 tuple(torch.as_tensor(s, dtype=torch.long) for s in split.sequences),
                 torch.as_tensor(split.label))


def with_random_sequences(b: Batch, seed: int) -> Batch:
    """``b`` with every sequence array replaced by random ids (padding included)."""
    g = torch.Generator().manual_seed(seed)
    sequences = tuple(torch.randint(0, VOCAB, s.shape, generator=g) for s in b.sequences)
    return Batch(b.categorical, b.numeric, sequences, b.label)


def test_a_dnn_without_the_sequences_has_no_parameters_for_them() -> None:
    full = build_model("dnn", SEQUENCE_FEATURE_MAP, {**SMALL, "hidden_units": [8]})
    model = build_model("dnn", SEQUENCE_FEATURE_MAP,
                        {**SMALL, "hidden_units": [8], "exclude_fields": SEQUENCES})
    # rows: user, item, hour (12 each) and tags' own 12; hist_item reads item's rows
    assert full.embedding.table.weight.shape == (4 * VOCAB, DIM)
    assert model.embedding.table.weight.shape == (3 * VOCAB, DIM)
    # the MLP reads 7 fields, then 5 (3 categorical, 2 numeric)
    assert full.mlp.layers[0].in_features == 7 * DIM
    assert model.mlp.layers[0].in_features == 5 * DIM
    assert [f.name for f in model.feature_map.features] == ["user", "item", "hour", "x", "y"]
    params = sum(p.numel() for p in full.parameters()) - sum(
        p.numel() for p in model.parameters())
    assert params == VOCAB * DIM + 2 * DIM * 8  # tags' rows and two fields' MLP weights


@pytest.mark.parametrize("name", ["dnn", "deepfm", "fm", "me_dnn", "dcnv2"])
def test_predictions_do_not_change_when_the_excluded_sequences_are_random(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, SEQUENCE_FEATURE_MAP, {**SMALL, "exclude_fields": SEQUENCES})
    model.eval()
    b = batch()
    with torch.no_grad():
        logit = model(b).logit
        assert torch.equal(model(with_random_sequences(b, 1)).logit, logit)
        full = build_model(name, SEQUENCE_FEATURE_MAP, SMALL).eval()
        assert not torch.equal(full(b).logit, full(with_random_sequences(b, 1)).logit)


def test_excluding_a_histories_target_gives_the_history_rows_of_its_own() -> None:
    inputs = ModelInputs.of(SEQUENCE_FEATURE_MAP, ["item"])
    hist = next(f for f in inputs.feature_map.sequence if f.name == "hist_item")
    assert hist.share_with == ""
    assert inputs.categorical == (0, 2) and inputs.sequences == (0, 1)
    assert histories(SEQUENCE_FEATURE_MAP) == ("hist_item",)
    assert histories(inputs.feature_map) == ()
    model = build_model("dnn", SEQUENCE_FEATURE_MAP, {**SMALL, "exclude_fields": ["item"]})
    assert model.embedding.table.weight.shape == (4 * VOCAB, DIM)  # user, hour, tags, hist


def test_an_unknown_field_names_the_key_the_closest_field_and_the_stores_fields() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("dnn", SEQUENCE_FEATURE_MAP, {"exclude_fields": ["hist_itme"]})
    assert str(err.value) == (
        "model_config.exclude_fields: 'hist_itme' is not a field of the store; did you mean "
        "'hist_item'? (its fields: user, item, hour, tags, hist_item, x, y)")
    with pytest.raises(ConfigError, match="excludes every field of the store"):
        ModelInputs.of(SEQUENCE_FEATURE_MAP, [f.name for f in SEQUENCE_FEATURE_MAP.features])


@pytest.mark.parametrize("name", ["din", "dien", "interformer"])
def test_a_model_attending_over_histories_refuses_to_lose_them(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"model '{name}' attends over the store's behaviour "
                                          r"histories \(hist_item\)"):
        build_model(name, SEQUENCE_FEATURE_MAP, {"exclude_fields": ["hist_item"]})
    build_model(name, SEQUENCE_FEATURE_MAP, {**SMALL, "exclude_fields": ["tags"]})


def test_groups_share_or_stack_tables_only_over_the_same_fields() -> None:
    def dnn(exclude: list[str]) -> torch.nn.Module:
        torch.manual_seed(0)
        return build_model("dnn", SEQUENCE_FEATURE_MAP,
                           {**SMALL, "hidden_units": [8], "exclude_fields": exclude})

    with pytest.raises(ConfigError, match=r"need one model_config\.exclude_fields"):
        SharedEmbeddingGroup([dnn(["tags"]), dnn(["x"])], ["a", "b"])
    # same parameter shapes (one field fewer each), other fields: not one stacked lookup
    assert not can_batch([dnn(["x"]), dnn(["y"])])
    members = [dnn(SEQUENCES), dnn(SEQUENCES)]
    shared = SharedEmbeddingGroup([dnn(SEQUENCES), dnn(SEQUENCES)], ["a", "b"]).eval()
    stacked = BatchedModelGroup(members, ["a", "b"]).eval()
    b = batch()
    with torch.no_grad():
        alone = members[0].eval()(b).logit
        for group in (shared, stacked):
            logits = [o.logit for o in group(b)]
            assert torch.allclose(logits[0], alone, atol=1e-6)
            random = [o.logit for o in group(with_random_sequences(b, 2))]
            assert torch.equal(random[0], logits[0])


def test_a_trained_run_without_histories_evaluates_and_exports_ignoring_them(
    tmp_path: Path,
) -> None:
    data = write_store(tmp_path / "data", {"train": 300, "valid": 100, "test": 100},
                       SEQUENCE_FEATURE_MAP, sequence_split)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "dnn", "--out", str(run),
                 "--epochs", "1", "--set", "train.batch_size=100",
                 "--set", "model_config.hidden_units=[8]",
                 "--set", "model_config.embedding_dim=4",
                 "--set", "model_config.exclude_fields=[hist_item]"]) == 0
    inference = InferenceRun.open(run)
    test = inference.store.split("test")
    scored = inference.score(test)["dnn"]
    history = np.random.default_rng(0).integers(0, VOCAB, size=test.sequences[1].shape)
    shuffled = type(test)(test.categorical, test.numeric, (test.sequences[0], history),
                          test.label)
    np.testing.assert_array_equal(inference.score(shuffled)["dnn"], scored)
    b = batch(seed=5, rows=16)
    inputs = (b.categorical, b.numeric, *b.sequences)
    random = with_random_sequences(b, 3)
    # every format takes every input of the store's encoding and ignores the excluded one
    for exported in (load_torchscript(inference.export("torchscript")),
                     torch.export.load(inference.export("exported-program")).module()):
        first = exported(*inputs)
        again = exported(random.categorical, random.numeric, b.sequences[0],
                         random.sequences[1])
        assert torch.equal(first[0], again[0])

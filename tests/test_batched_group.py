"""A batched group (stacked parameters under vmap) equals the same models run one by one."""

from __future__ import annotations

import pytest
import torch

from mutualctr.errors import ConfigError
from mutualctr.models.registry import build_model
from mutualctr.training.groups.base import ModelGroup
from mutualctr.training.groups.batched import BatchedModelGroup, can_batch
from mutualctr.training.objectives.mutual import MutualObjective
from mutualctr.training.optimizers import is_embedding_parameter
from training_support import GROUP_FEATURE_MAP as FEATURE_MAP
from training_support import GROUP_MODEL_CONFIG as SMALL
from training_support import GROUP_NAMES as NAMES
from training_support import group_batch as make_batch
from training_support import group_models as make_models


def train(group: torch.nn.Module, steps: int = 3) -> list[torch.Tensor]:
    """A few mutual-learning Adam steps; returns the last batch's logits."""
    objective = MutualObjective(NAMES)
    opt = torch.optim.Adam(group.parameters(), lr=1e-2)
    for step in range(steps):
        opt.zero_grad()
        objective(group(make_batch(step)), make_batch(step)).loss.backward()
        opt.step()
    with torch.no_grad():
        return [o.logit for o in group(make_batch(99))]


@pytest.mark.parametrize("name", ["deepfm", "dcn", "pnn", "fibinet", "din", "me_dnn"])
def test_batched_forward_equals_separate_models(name: str) -> None:
    models = make_models(name)
    batched = BatchedModelGroup(models, NAMES)
    batch = make_batch(0)
    for model, out in zip(models, batched(batch), strict=True):
        ref = model(batch)
        torch.testing.assert_close(out.logit, ref.logit)
        torch.testing.assert_close(out.h, ref.h)


def test_batched_training_equals_unbatched_training() -> None:
    plain = ModelGroup(make_models(), NAMES)
    batched = BatchedModelGroup(make_models(), NAMES)
    for got, want in zip(train(batched), train(plain), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for i, model in enumerate(plain.models):
        for key, value in model.state_dict().items():
            torch.testing.assert_close(
                batched.member_state_dict(i)[key], value, rtol=1e-4, atol=1e-5
            )


def test_stacked_parameters_are_real_parameters_in_the_state_dict() -> None:
    batched = BatchedModelGroup(make_models(), NAMES)
    params = dict(batched.named_parameters())
    table = params["stacked.embedding.table.weight"]
    # embedding tables are stored [rows, members, dim] (one lookup serves every member); the
    # state dict gives them members first, like every other stacked tensor
    assert isinstance(table, torch.nn.Parameter) and table.shape[1] == len(NAMES)
    assert batched.state_dict()["stacked.embedding.table.weight"].shape[0] == len(NAMES)
    assert params["stacked.mlp.layers.0.weight"].shape[0] == len(NAMES)
    # the trainer's L2 split sees the same embedding/network parameters as in one model
    def embedding_params(module: torch.nn.Module) -> set[str]:
        types = {name: type(m) for name, m in module.named_modules()}
        return {n.removeprefix("stacked.") for n, _ in module.named_parameters()
                if is_embedding_parameter(n, types)}

    assert embedding_params(batched) == embedding_params(make_models()[0])
    assert "linear.weights.table.weight" in embedding_params(batched)
    restored = BatchedModelGroup(make_models(), NAMES)
    with torch.no_grad():
        for p in restored.parameters():
            p.zero_()
    restored.load_state_dict(batched.state_dict())
    torch.testing.assert_close(restored(make_batch(1))[2].logit, batched(make_batch(1))[2].logit)


def test_member_load_and_unstack_round_trip() -> None:
    models = make_models()
    batched = BatchedModelGroup(make_models(), NAMES)
    torch.manual_seed(5)
    pretrained = build_model("deepfm", FEATURE_MAP, SMALL)
    batched.load_member_state_dict(1, pretrained.state_dict())
    member = batched.unstack()[1]
    for key, value in pretrained.state_dict().items():
        assert torch.equal(member.state_dict()[key], value)
    torch.testing.assert_close(batched(make_batch(2))[1].logit, pretrained(make_batch(2)).logit)
    torch.testing.assert_close(batched(make_batch(2))[0].logit, models[0](make_batch(2)).logit)
    with pytest.raises(ConfigError, match="missing"):
        batched.load_member_state_dict(0, {})


def test_only_identical_architectures_batch() -> None:
    deepfm = make_models()
    other = build_model("deepfm", FEATURE_MAP, {**SMALL, "hidden_units": [8]})
    assert can_batch(deepfm)
    assert not can_batch([deepfm[0], other])
    assert not can_batch(deepfm[:1])
    with pytest.raises(ConfigError):
        BatchedModelGroup([deepfm[0], other], ["a", "b"])


def test_autocast_keeps_the_members_layers_in_bfloat16_and_close_to_separate_models() -> None:
    models = make_models()
    batched = BatchedModelGroup(make_models(), NAMES)
    seen: list[torch.dtype] = []
    batched.stacked.mlp.layers[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    batch = make_batch(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = batched(batch)
        wanted = [model(batch) for model in models]
    assert seen == [torch.bfloat16]  # as in one model: vmap's bias add does not promote
    for out, ref in zip(outputs, wanted, strict=True):
        torch.testing.assert_close(out.logit.float(), ref.logit.float(), rtol=0, atol=0.05)


def test_forward_leaves_the_architecture_as_it_was() -> None:
    batched = BatchedModelGroup(make_models(), NAMES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        batched(make_batch(0))
    batched(make_batch(0))
    overridden = [name for name, m in batched.stacked.named_modules()
                  if {"embed", "forward"} & set(vars(m))]
    assert overridden == []
    member = batched.unstack()[0]
    torch.testing.assert_close(member(make_batch(3)).logit, batched(make_batch(3))[0].logit)

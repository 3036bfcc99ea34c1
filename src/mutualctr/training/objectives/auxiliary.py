"""Extra training losses that some models' papers add to the BCE of their prediction.

A model names its loss in :attr:`ModelOutput.aux_loss` and gives its sub-networks' logits
``[S, B]`` (:func:`mutualctr.models.base.split_head_logits`); the prediction is ``sigmoid`` of
their mean.

* ``self_distillation``, FINAL (Zhu et al., SIGIR 2023, Sec. 3.3): each block learns from the
  two blocks' ensemble prediction as a soft target, ``sum_b BCE(p_ens, p_b)`` with ``p_ens``
  detached (the teacher is not pulled towards its students), as in the authors' FinalNet code.
* ``tri_bce``, DCNv3 (Li et al., 2024, "Tri-BCE"): ``w_D BCE(y, p_D) + w_S BCE(y, p_S)`` with
  ``w_s = max(0, L_s - L)`` and ``L`` the BCE of the prediction. The paper calls the ``w_s``
  adaptive weights without saying whether gradients pass through them; the authors' code (in
  FuxiCTR) lets them, and so do we, so the loss is the published one.

The independent and mutual-learning objectives add these terms to each member's loss, so a
model trains with its paper's loss alone or in a group. EKTF, CETNet and the KD baselines
define their own supervision of the members' predictions and leave these out.

A model whose extra loss reads its own internals computes it and gives it, already weighted,
as :attr:`ModelOutput.extra_loss`:

* DIEN (Zhou et al., AAAI 2019): ``aux_loss_alpha * L_aux``, the interest extractor's
  next-behaviour loss (:class:`mutualctr.models.dien.NextBehaviourLoss`).

That loss is added under every method (:func:`members_extra_loss`, called by the trainer's
step, not by the objectives): it is the only loss of the parameters that produce it (DIEN's
auxiliary network), so leaving it out would leave them untrained, which DDP refuses, and would
not be the member's model as its paper trains it. The objectives supervise the predictions;
this term supervises a model's internals, so the two do not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mutualctr.models.base import ModelOutput


def auxiliary_loss(output: ModelOutput, label: torch.Tensor, bce: torch.Tensor
                   ) -> torch.Tensor | None:
    """The loss named by ``output.aux_loss`` on the sub-network logits (``None`` if the
    model's paper has none); ``bce`` is the batch-mean BCE of its prediction."""
    if output.aux_loss == "none":
        return None
    sub = output.aux_logits  # [S, B]
    if output.aux_loss == "self_distillation":
        teacher = torch.sigmoid(output.logit).detach().expand_as(sub)
        return F.binary_cross_entropy_with_logits(sub, teacher, reduction="none").mean(1).sum()
    if output.aux_loss == "tri_bce":
        sub_bce = F.binary_cross_entropy_with_logits(
            sub, label.expand_as(sub), reduction="none"
        ).mean(1)
        return ((sub_bce - bce).clamp_min(0) * sub_bce).sum()
    raise ValueError(f"unknown auxiliary loss {output.aux_loss!r}")


def members_auxiliary_loss(
    outputs: Sequence[ModelOutput], label: torch.Tensor, bce: torch.Tensor,
    names: Sequence[str], parts: dict[str, float | torch.Tensor],
) -> torch.Tensor:
    """The members' sub-network losses summed (0 if no member has one); each one is logged in
    ``parts`` as ``aux/<name>``. ``bce`` holds the members' BCEs ``[N]``."""
    total = bce.new_zeros(())
    for name, output, member_bce in zip(names, outputs, bce, strict=True):
        extra = auxiliary_loss(output, label, member_bce)
        if extra is not None:
            parts[f"aux/{name}"] = extra.detach()
            total = total + extra
    return total


def members_extra_loss(
    outputs: Sequence[ModelOutput], names: Sequence[str], parts: dict[str, float | torch.Tensor],
) -> torch.Tensor | None:
    """The members' :attr:`ModelOutput.extra_loss` summed (``None`` if no member has one);
    each one is logged in ``parts`` as ``extra/<name>``."""
    total = None
    for name, output in zip(names, outputs, strict=True):
        if output.extra_loss is not None:
            parts[f"extra/{name}"] = output.extra_loss.detach()
            total = output.extra_loss if total is None else total + output.extra_loss
    return total

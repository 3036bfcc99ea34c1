"""First-order (logistic-regression) term: one learned weight per feature value plus a bias."""

from __future__ import annotations

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.data.schema import FeatureMap
from mutualctr.models.embedding import FeatureEmbedding
from mutualctr.models.inputs import ModelInputs


class LinearTerm(nn.Module):
    """``w0 + sum_f w_f(x_f)`` as a ``[B]`` logit.

    The weights are a 1-dimensional :class:`FeatureEmbedding` (one lookup over all fields):
    a categorical value's weight, the mean weight of a sequence's ids, a numeric value times
    its field's weight. ``inputs``: the fields it weighs (see :class:`FeatureEmbedding`).
    """

    def __init__(self, inputs: FeatureMap | ModelInputs, init_std: float = 1e-4) -> None:
        super().__init__()
        self.weights = FeatureEmbedding(inputs, 1, init_std)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.weights(batch).sum(dim=(1, 2)) + self.bias

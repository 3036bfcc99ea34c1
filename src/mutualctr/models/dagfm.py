"""DAGFM (Tian et al., "Directed Acyclic Graph Factorization Machines for CTR Prediction via
Knowledge Distillation", WSDM 2023).

The fields are the nodes of a DAG with an edge ``i -> j`` for every ``i <= j`` (the upper
triangle, self-loops included). After a learnable field mixing ``h^0 = C e`` (the authors'
"connect layer", ``C`` initialised to the identity), each of the ``L`` propagation layers
aggregates the predecessors' states through an interaction function and multiplies the result
into the node's initial state, which raises the interaction order by one per layer:

* inner (the paper's inner-product interaction function):
  ``h^{t+1}_j = h^0_j ⊙ sum_{i<=j} p^t_{ij} ⊙ h^t_i`` with ``p^t_{ij}`` in ``R^D``;
* outer (the outer-product interaction function, ``h_i^T W_{ij}`` with a rank-one
  ``W_{ij} = p_{ij} q_{ij}^T``): ``h^{t+1}_j = h^0_j ⊙ sum_{i<=j} <h^t_i, p^t_{ij}> q^t_{ij}``.

The prediction layer sum-pools every state over the embedding dimension and reads the
concatenation ``[sum_D h^0 || ... || sum_D h^L]`` (``F (L+1)`` values) with one linear unit,
so that concatenation is ``h`` here and the model's head is DAGFM's output layer. These are
the paper's DAGFM equations: the propagation rule with its inner and outer interaction
functions, and the prediction layer (sum pooling of every layer's states, one linear unit),
as the authors' code computes them; the kernel-product interaction is not implemented.
KD-DAGFM's distillation loss is
:class:`mutualctr.training.objectives.kd_baselines.DAGFMDistillation`; its three training
phases are the ``dagfm`` method of :mod:`mutualctr.methods.ektf`.

Readings: ``p`` and ``q`` are initialised xavier-normal with gain 1.414 (the RecBole port and
the authors' DeepDAGFM; their DAGFM class leaves the ``inner`` weights at ``N(0, 1)``), the
triangle is a fixed mask applied to ``p`` (masked entries of ``q`` are multiplied by zero and
never trained), and no first-order term is added: ``sum_D h^0`` already is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mutualctr.config import param
from mutualctr.data.batch import Batch
from mutualctr.models.base import CTRModel, ModelConfig

Interaction = Literal["inner", "outer"]
XAVIER_GAIN = 1.414  # the authors' code


@dataclass
class DAGFMConfig(ModelConfig):
    """Defaults: depth 3 (all the authors' configs) and the inner interaction. The authors pair
    ``outer`` with a CrossNet teacher (Criteo, MovieLens) and ``inner`` with a CIN teacher
    (Avazu)."""

    depth: int = param(3, ge=1)
    interaction: Interaction = "inner"


class DAGInteraction(nn.Module):
    """The DAG propagation over field embeddings ``[B, F, D]`` -> ``[B, F (L + 1)]``.

    Args:
        num_fields, dim: ``F`` and ``D``.
        depth: number of propagation layers ``L``.
        interaction: ``inner`` or ``outer`` (module docstring).
    """

    def __init__(self, num_fields: int, dim: int, depth: int, interaction: Interaction) -> None:
        super().__init__()
        if interaction not in ("inner", "outer"):
            raise ValueError(f"interaction must be 'inner' or 'outer', got {interaction!r}")
        self.interaction = interaction
        self.connect = nn.Parameter(torch.eye(num_fields))
        self.p = nn.ParameterList(self._edge_weights(num_fields, dim) for _ in range(depth))
        self.q = nn.ParameterList(
            self._edge_weights(num_fields, dim) for _ in range(depth if interaction == "outer"
                                                                else 0)
        )
        mask = torch.ones(num_fields, num_fields).triu().unsqueeze(-1)  # [F, F, 1]: i <= j
        self.register_buffer("mask", mask, persistent=False)

    @staticmethod
    def _edge_weights(num_fields: int, dim: int) -> nn.Parameter:
        weight = torch.empty(num_fields, num_fields, dim)
        nn.init.xavier_normal_(weight, gain=XAVIER_GAIN)
        return nn.Parameter(weight)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        h0 = torch.matmul(self.connect, emb)  # h0[:, j] = sum_i C[j, i] e[:, i]
        state = h0
        pooled = [h0.sum(-1)]
        for layer, p in enumerate(self.p):
            edges = p * self.mask  # [F (from i), F (to j), D]
            if self.interaction == "inner":
                aggregated = torch.einsum("bid,ijd->bjd", state, edges)
            else:
                scores = torch.einsum("bid,ijd->bij", state, edges)
                aggregated = torch.einsum("bij,ijd->bjd", scores, self.q[layer])
            state = h0 * aggregated
            pooled.append(state.sum(-1))
        return torch.cat(pooled, dim=1)


class DAGFM(CTRModel):
    """DAGFM: ``h = [sum_D h^0 || ... || sum_D h^L]`` ``[F (L+1)]`` (module docstring)."""

    name = "dagfm"
    config_class = DAGFMConfig

    def build(self) -> int:
        c = self.config
        self.dag = DAGInteraction(self.num_fields, c.embedding_dim, c.depth, c.interaction)
        return self.num_fields * (c.depth + 1)

    def represent(self, batch: Batch, emb: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.dag(emb), None

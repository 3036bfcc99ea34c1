"""Multi-layer perceptron: the "DNN" block most CTR models share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "prelu": nn.PReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden layer, no output layer.

    The output is the last hidden layer (``out_dim`` = ``hidden[-1]``, or ``in_dim`` when
    ``hidden`` is empty, in which case the block is the identity). ``layer(in_dim, units)``
    builds each layer's map (``nn.Linear`` by default; FINAL passes its factorized layer).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        layer: Callable[[int, int], nn.Module] = nn.Linear,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for units in hidden:
            layers.append(layer(dim, units))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            dim = units
        self.layers = nn.Sequential(*layers)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

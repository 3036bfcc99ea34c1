"""Reusable building blocks of the CTR models."""

from mutualctr.models.layers.fm import fm_interaction
from mutualctr.models.layers.linear import LinearTerm
from mutualctr.models.layers.mlp import MLP, make_activation

__all__ = ["MLP", "LinearTerm", "fm_interaction", "make_activation"]

"""Reusable building blocks of the CTR models."""

from mutualctr.models.layers.attention import FieldSelfAttention
from mutualctr.models.layers.bilinear import BilinearInteraction
from mutualctr.models.layers.cin import CIN
from mutualctr.models.layers.cross import CrossNetwork, CrossNetworkV2
from mutualctr.models.layers.exp_cross import CrossNetworkV3, split_heads
from mutualctr.models.layers.final import FieldGate, FinalBlock
from mutualctr.models.layers.fm import fm_interaction
from mutualctr.models.layers.linear import LinearTerm
from mutualctr.models.layers.mlp import MLP, make_activation
from mutualctr.models.layers.product import InnerProduct, sum_outer_product
from mutualctr.models.layers.senet import SENet
from mutualctr.models.layers.two_stream import BilinearFusion, FeatureGate

__all__ = [
    "CIN",
    "MLP",
    "BilinearFusion",
    "BilinearInteraction",
    "CrossNetwork",
    "CrossNetworkV2",
    "CrossNetworkV3",
    "FeatureGate",
    "FieldGate",
    "FieldSelfAttention",
    "FinalBlock",
    "InnerProduct",
    "LinearTerm",
    "SENet",
    "fm_interaction",
    "make_activation",
    "split_heads",
    "sum_outer_product",
]

"""mutualctr: click-through-rate models trained together."""

__version__ = "0.1.0"

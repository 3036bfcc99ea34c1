"""mutualctr: click-through-rate models trained together.

The Python API (:mod:`mutualctr.api`)::

    import mutualctr

    store = mutualctr.prepare("clicks.txt", "data/clicks", format="criteo")
    run = mutualctr.train("mutual", data="data/clicks", out="runs/mutual",
                          members=[{"model": "deepfm"}, {"model": "dcn"}])
    scores = mutualctr.load(run.path).predict(frame)

Its names are imported on first use, so ``import mutualctr`` (and ``mutualctr data ...``) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "synthesize": "mutualctr.api", "prepare": "mutualctr.api", "train": "mutualctr.api",
    "load": "mutualctr.api", "Run": "mutualctr.api", "compare": "mutualctr.api",
    "Comparison": "mutualctr.api",
    "method_names": "mutualctr.methods", "get_method": "mutualctr.methods",
    "model_names": "mutualctr.models.registry",
    "InferenceRun": "mutualctr.serving.inference",
    "ConfigError": "mutualctr.errors", "DataError": "mutualctr.errors",
    "MutualCTRError": "mutualctr.errors",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mutualctr' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])

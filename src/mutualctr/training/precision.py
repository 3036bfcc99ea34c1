"""The precision of forward passes: ``train.amp`` resolved to bfloat16 autocast or float32.

``amp: auto`` (the default) runs the models' forward passes under bfloat16 autocast where the
hardware computes bfloat16 natively: a CPU with AVX512-BF16 or AMX (matrix products about 5x
the float32 rate on an AMD EPYC core with AVX512-BF16, docs/benchmarks.md "bfloat16
autocast") or a CUDA device that supports it; float32 elsewhere, where bfloat16 would be
emulated. ``true`` forces bfloat16, ``false`` float32. The models in
:data:`FLOAT32_UNDER_AUTO` stay in float32 under ``auto``: InterFormer, which lost test AUC in
bfloat16 beyond its seeds' spread in the parity benchmark (benchmarks/bench_amp.py), and LR and
FM, which have no matrix product for autocast to speed up (it made LR's step slower). The
models in :data:`AUTOCAST_UNSAFE` fail under autocast on behaviour sequences: ``auto`` keeps
them in float32 and ``true`` refuses them.

Only the models' forward passes of training steps run under autocast. Their outputs are cast
back to float32 before the objective, so the loss is computed on float32 logits; parameters,
gradients and the optimizer's state stay float32 (autocast casts copies of the weights, not
the weights); bfloat16 has float32's exponent range, so no loss scaling is needed. Evaluation
(validation every epoch, the final metrics, the test predictions) runs in float32, as
``evaluate``, ``predict`` and ``export`` do, so they reproduce a run's ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from mutualctr.data.batch import Batch
from mutualctr.errors import ConfigError
from mutualctr.models.base import CTRModel, ModelOutput

AmpSetting = bool | Literal["auto"]
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo names
# Registry models kept in float32 under ``amp: auto`` (docs/benchmarks.md, "bfloat16
# autocast"): interformer lost 0.03 test AUC in bfloat16; lr and fm gain no speed from it.
FLOAT32_UNDER_AUTO: frozenset[str] = frozenset({"interformer", "lr", "fm"})
# Registry models whose layers mix dtypes under autocast when they read behaviour sequences:
# DIN's Dice (batch norm of bfloat16 input with float32 statistics) and DIEN's AUGRU (its
# hand-written backward multiplies bfloat16 gradients with float32 weights).
AUTOCAST_UNSAFE: frozenset[str] = frozenset({"din", "dien"})


@cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where there is no cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def supports_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(BF16_CPU_FLAGS & cpu_flags())
    return False


def model_kinds(module: nn.Module) -> set[str]:
    """Registry names of the CTR models inside ``module`` (a group, or a batched group's
    architecture)."""
    return {m.name for m in module.modules() if isinstance(m, CTRModel)}


def resolve_precision(
    setting: AmpSetting, device: torch.device, kinds: Sequence[str] | set[str] = (),
) -> torch.dtype:
    """The dtype forward passes run in: ``torch.bfloat16`` (autocast) or ``torch.float32``.

    Args:
        setting: ``train.amp``: ``True``, ``False`` or ``"auto"``.
        device: where the models run.
        kinds: the registry names of the models trained (see :func:`model_kinds`); under
            ``auto`` one listed in :data:`FLOAT32_UNDER_AUTO` or :data:`AUTOCAST_UNSAFE` keeps
            the run in float32.

    Raises:
        ConfigError: ``True`` for a run with a model of :data:`AUTOCAST_UNSAFE`.
    """
    unsafe = sorted(AUTOCAST_UNSAFE & set(kinds))
    if setting is True and unsafe:
        raise ConfigError(f"train.amp: true, but {', '.join(unsafe)} cannot train under bfloat16 "
                          "autocast (their sequence layers mix dtypes); use auto or false")
    if setting == "auto":
        keep_float32 = bool((FLOAT32_UNDER_AUTO | AUTOCAST_UNSAFE) & set(kinds))
        setting = supports_bf16(device) and not keep_float32
    return torch.bfloat16 if setting else torch.float32


def precision_name(dtype: torch.dtype) -> str:
    """``"bfloat16"`` or ``"float32"``, as recorded in ``metrics.jsonl``."""
    return str(dtype).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` when ``dtype`` is bfloat16, else nothing."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def run_group(group: nn.Module, batch: Batch, dtype: torch.dtype) -> list[ModelOutput]:
    """``group(batch)`` under autocast to ``dtype``, its outputs cast back to float32."""
    with autocast(batch.label.device, dtype):
        outputs = group(batch)
    if dtype == torch.float32:
        return outputs
    return [_as_float32(o) for o in outputs]


def _as_float32(output: ModelOutput) -> ModelOutput:
    aux = None if output.aux_logits is None else output.aux_logits.float()
    extra = None if output.extra_loss is None else output.extra_loss.float()
    return dataclasses.replace(output, logit=output.logit.float(), h=output.h.float(),
                               aux_logits=aux, extra_loss=extra)

"""``mutualctr export RUN --format torchscript|onnx|exported-program``: a trained run as a
standalone model file.

The model file and its ``<file>.signature.json`` are described in ``serving.export``; the work
is ``serving.InferenceRun.export``.
"""

from __future__ import annotations

import argparse

from mutualctr.serving.export import EXPORT_FORMATS, signature_path
from mutualctr.serving.inference import InferenceRun


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained run to TorchScript, ONNX or a torch.export program",
        description="Write RUN/export/model.{pt,onnx,pt2} and its .signature.json (inputs "
        "with their dtypes and shapes, outputs). exported-program: torch.export.save, "
        "loaded by torch.export.load; onnx: the torch.export-based ONNX exporter (needs onnx "
        "and onnxscript); torchscript: torch.jit.trace (deprecated by PyTorch 2.13).",
    )
    parser.add_argument("run", help="run folder written by `mutualctr train`")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="torchscript")
    parser.add_argument("--out",
                        help="output file (default: RUN/export/model.pt, .onnx or .pt2)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = InferenceRun.open(args.run, device="cpu").export(args.format, args.out)
    print(f"wrote {out} (inputs and outputs in {signature_path(out)})")
    return 0

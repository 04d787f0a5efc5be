"""Shared run metadata for the benchmark scripts: the command that reproduces a run, machine and threads."""

from __future__ import annotations

import argparse
import platform

import torch


def run_metadata(script: str, args: argparse.Namespace) -> dict:
    """``{"machine", "torch_threads", "command"}`` for a benchmark run (``command`` replays every flag)."""
    flags = " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list | tuple) else v}"
                     for k, v in vars(args).items())
    return {"machine": platform.platform(), "torch_threads": torch.get_num_threads(),
            "command": f"benchmarks/{script} {flags}"}

"""Shared run metadata for the benchmark scripts: the command that reproduces a run, machine and threads."""

from __future__ import annotations

import argparse
import platform

import torch


def run_metadata(script: str, args: argparse.Namespace) -> dict:
    """``{"machine", "torch_threads", "command"}`` for a benchmark run (``command`` replays every flag)."""
    def flag(key: str, value) -> str:
        name = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):  # store_true switches: present or absent
            return name if value else ""
        return f"{name} {' '.join(map(str, value)) if isinstance(value, list | tuple) else value}"

    flags = " ".join(f for f in (flag(k, v) for k, v in vars(args).items()) if f)
    return {"machine": platform.platform(), "torch_threads": torch.get_num_threads(),
            "command": f"benchmarks/{script} {flags}"}

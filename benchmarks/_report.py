"""Shared by the benchmark scripts: run metadata (the command that reproduces a run, machine, threads) and writing
the JSON + Markdown outputs."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

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


def write_outputs(result: dict, json_path: str | Path, markdown: str, markdown_path: str | Path) -> None:
    """Write a run's ``result`` as JSON and its Markdown report (creating their folders), and print the report."""
    for path, text in ((Path(json_path), json.dumps(result, indent=1) + "\n"), (Path(markdown_path), markdown)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(markdown)

"""Quiet-machine timing of MIAVLM inference, 1 and 2 threads (reuses benchmarks/miavlm_table.timing)."""
import json
import sys

sys.path.insert(0, "benchmarks")
from miavlm_table import timing  # noqa: E402

from vlarm.vlm.qa.dataset import QABenchmark  # noqa: E402
from vlarm.vlm.qa.train import load_model  # noqa: E402

bench = QABenchmark("data/miavlm-qa64-v2")
out = {}
for run in ("map-1-ni", "map-1p8-ni", "tile-1p8-ni", "concat-1p8-ni"):
    out[run] = timing(load_model(f"runs/miavlm-v2/{run}/checkpoint"), bench)
print(json.dumps(out, indent=1))

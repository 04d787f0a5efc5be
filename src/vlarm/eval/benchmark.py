"""The benchmark grid: collect, train, select on val, test once, and write a CLIPort Table-1 style report.

A :class:`Grid` (a JSON file, see ``benchmarks/grids/``) lists cells; a :class:`Cell` is one policy trained on one
or more tasks (more than one: a multi-task policy, language selects the task) with a number of demos per task and a
step budget, evaluated on some task variants. :func:`run_grid` runs every cell under the protocol of CLIPort
(Shridhar et al. CoRL 2021, Sec. 4.2) with vlarm's stricter rules: the checkpoint is chosen on the val split only
(``vlarm.eval.selection``), the test split is read once, and every score carries its 95% interval, its episode
count and the all/some/none-novel breakdown. Each finished cell is written to ``<out>/<cell>/cell.json`` and skipped
when the grid is run again (resume). The CPU time of every stage (this process and its children) is recorded,
also across interrupted runs (``<cell>/cpu.json`` keeps the finished stages'; a stage cut off midway loses its share).

:func:`grid_markdown` renders the table (rows: task variants; columns: method x demos; the paper's figure beside
ours where ``vlarm.eval.paper`` has one) and :func:`plot_grid` the score-vs-demos curves per task.
"""

from __future__ import annotations

import json
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlarm.eval.paper import paper_score
from vlarm.stats import format_ci

METHOD_LABELS = {("cliport", False): "CLIPort (single-task)", ("cliport", True): "CLIPort (multi-task)",
                 ("transporter", False): "Transporter-only", ("transporter", True): "Transporter-only (multi-task)"}


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Cell:
    """One policy of the grid.

    Attributes:
        policy: ``"cliport"`` or ``"transporter"``.
        tasks: training tasks (their train splits); more than one trains one multi-task policy.
        demos: demonstrations per training task.
        steps: optimisation steps.
        eval_tasks: task variants evaluated (default: ``tasks``); e.g. train on the seen-colour variant and test on
            both the seen and the unseen variant (their train splits are the same distribution).
        train_options: extra :class:`vlarm.policies.training.TrainConfig` fields (e.g. ``policy_overrides``).
        name: directory name (default: derived from the fields).
    """

    policy: str
    tasks: tuple[str, ...]
    demos: int
    steps: int
    eval_tasks: tuple[str, ...] = ()
    train_options: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self):
        from vlarm.policies import available_policies
        from vlarm.tasks import make_task

        if self.policy not in available_policies():
            raise ValueError(f"unknown policy {self.policy!r}; valid policies: {', '.join(available_policies())}")
        self.tasks = tuple(self.tasks)
        self.eval_tasks = tuple(self.eval_tasks) or self.tasks
        if not self.tasks:
            raise ValueError("a cell needs at least one training task")
        for task in (*self.tasks, *self.eval_tasks):
            make_task(task)   # unknown names raise, listing the valid ones
        if self.demos < 1 or self.steps < 1:
            raise ValueError(f"demos and steps must be >= 1, got {self.demos}, {self.steps}")
        if not self.name:
            what = self.tasks[0] if len(self.tasks) == 1 else f"multi{len(self.tasks)}"
            self.name = f"{self.policy}-{what}-{self.demos}demos-{self.steps}steps"

    @property
    def multi_task(self) -> bool:
        """True when the policy is trained on more than one task."""
        return len(self.tasks) > 1

    @property
    def method(self) -> str:
        """The Table-1 column label, e.g. ``"CLIPort (single-task)"``."""
        return METHOD_LABELS[(self.policy, self.multi_task)]


@dataclass
class Grid:
    """A benchmark grid and its protocol settings.

    Attributes:
        cells: the cells, run in order.
        val_episodes: val episodes per task and checkpoint for selection.
        test_episodes: test episodes per evaluated task (CLIPort: 100).
        save_every: checkpoint period in steps (the candidates of selection).
        camera_scale: camera resolution relative to 480x640 for collection and evaluation.
        workers: processes for collection and evaluation (``vlarm.parallel``; 1 runs in-process).
        data_root: where train demonstrations are collected (``<data_root>/<task>-train``; shared by cells).
        description: what the grid is for (printed in the report).
    """

    cells: list[Cell]
    val_episodes: int = 50
    test_episodes: int = 100
    save_every: int = 1000
    camera_scale: float = 1.0
    workers: int = 1
    data_root: str = "data"
    description: str = ""

    @classmethod
    def from_json(cls, path: str | Path) -> Grid:
        """Read a grid file: the :class:`Grid` fields, with ``cells`` a list of :class:`Cell` field dicts.

        Raises:
            FileNotFoundError: no such file; ValueError: malformed JSON, unknown fields or invalid cells.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no grid file at {path}; see benchmarks/grids/ for examples")
        try:
            spec = json.loads(path.read_text())
            cells = [Cell(**c) for c in spec.pop("cells")]
            return cls(cells=cells, **spec)
        except (json.JSONDecodeError, TypeError, KeyError) as err:
            raise ValueError(f"{path}: not a valid grid file ({err})") from err


def _train(cell: Cell, grid: Grid, run_dir: Path, progress: bool) -> None:
    from vlarm.policies.training import TrainConfig, train

    data_dirs = [Path(grid.data_root) / f"{task}-train" for task in cell.tasks]
    which = {"tasks": list(cell.tasks), "data_dir": data_dirs} if cell.multi_task else \
        {"task": cell.tasks[0], "data_dir": data_dirs[0]}
    train(TrainConfig(policy=cell.policy, demos=cell.demos, steps=cell.steps, out_dir=run_dir,
                      save_every=grid.save_every, progress=progress, **which, **cell.train_options))


#: The fields of an evaluation's results kept in a cell record.
TEST_SUMMARY = ("episodes", "score", "score_ci", "success_rate", "success_ci", "by_novelty")


def _finished_test(task_dir: Path, task: str, grid: Grid) -> dict | None:
    """``(summary, CPU seconds)`` of a finished test evaluation in ``task_dir`` (``results.json`` of ``task``'s test
    split with the grid's episode count and camera scale), or None when there is none or it does not match. The CPU
    seconds are those the evaluation recorded (0 for results written before evaluations recorded them)."""
    from vlarm.eval.rollout import read_results

    results = read_results(task_dir, task=task, split="test", episodes=grid.test_episodes,
                           camera_scale=grid.camera_scale)
    if results is None or any(k not in results for k in TEST_SUMMARY):
        return None
    return {k: results[k] for k in TEST_SUMMARY}, float(results.get("cpu_seconds", 0.0))


def run_cell(cell: Cell, grid: Grid, out_dir: str | Path, progress: bool = True) -> dict:
    """Collect, train, select on val and test one cell (resumable at every stage).

    Test results are kept per evaluated task: a rerun reads back every task already tested on the selected
    checkpoint (``test/selected.json`` names it and the SHA-256 of its files, so a retrained checkpoint at the same
    path is tested again; ``test/<task>/results.json`` with the grid's episode count and camera
    scale), so an interrupted test stage loses at most the task it was on, and ``vlarm eval --checkpoint <selected>
    --split test --out <cell>/test/<task>`` run alongside fills tasks in parallel.

    Returns:
        The cell record written to ``<out_dir>/<cell.name>/cell.json``: the cell, the selected checkpoint and its
        val scores, per evaluated task the test summary (score, intervals, success, by_novelty, episodes), and the
        CPU seconds of each stage.
    """
    from vlarm.data.collect import collect
    from vlarm.eval.rollout import evaluate
    from vlarm.eval.selection import checkpoint_fingerprint, select_checkpoint
    from vlarm.policies import load_policy

    cell_dir = Path(out_dir) / cell.name
    record_path = cell_dir / "cell.json"
    spec = {"cell": asdict(cell), "val_episodes": grid.val_episodes, "test_episodes": grid.test_episodes,
            "camera_scale": grid.camera_scale, "save_every": grid.save_every}
    spec = json.loads(json.dumps(spec))   # tuples as JSON lists, as read back
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if all(record.get(k) == v for k, v in spec.items()):
            return record
    cpu_path = cell_dir / "cpu.json"   # CPU of the stages finished by earlier (interrupted) runs of this cell
    done = json.loads(cpu_path.read_text()) if cpu_path.is_file() else {}
    cpu: dict[str, float] = {}

    def finished(stage: str, since: float) -> float:
        cpu[stage] = done.get(stage, 0.0) + cpu_seconds() - since
        cell_dir.mkdir(parents=True, exist_ok=True)
        cpu_path.write_text(json.dumps({**done, **cpu}) + "\n")
        return cpu_seconds()

    start = cpu_seconds()
    for task in cell.tasks:
        collect(task, "train", cell.demos, Path(grid.data_root) / f"{task}-train", camera_scale=grid.camera_scale,
                progress=progress, workers=grid.workers)
    start = finished("collect", start)
    _train(cell, grid, cell_dir / "run", progress)
    start = finished("train", start)
    selection = select_checkpoint([cell_dir / "run"], list(cell.tasks), grid.val_episodes, cell_dir / "selection",
                                  camera_scale=grid.camera_scale, progress=progress)
    start = finished("select", start)
    best = selection["best"]
    policy = load_policy(best["checkpoint"])
    policy.eval()
    test = {}
    marker = cell_dir / "test" / "selected.json"   # which checkpoint (path and files) the test results belong to
    selected = {"checkpoint": str(best["checkpoint"]), "fingerprint": checkpoint_fingerprint(best["checkpoint"]),
                "camera_scale": grid.camera_scale}
    if not (marker.is_file() and json.loads(marker.read_text()) == selected):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(selected) + "\n")
    else:   # resuming: tasks already tested on this checkpoint are read back (with the CPU they cost), not rerun
        for task in cell.eval_tasks:
            if (found := _finished_test(cell_dir / "test" / task, task, grid)) is not None:
                test[task], start = found[0], start - found[1]   # its CPU counts as this stage's
    for task in cell.eval_tasks:
        if task in test:
            continue
        results = evaluate(lambda env, p=policy: p, task, "test", grid.test_episodes, cell_dir / "test" / task,
                           camera_scale=grid.camera_scale, progress=progress, label=cell.name)
        test[task] = {k: results[k] for k in TEST_SUMMARY}
    test = {task: test[task] for task in cell.eval_tasks}
    cpu["test"] = cpu_seconds() - start
    record = {**spec, "method": cell.method, "checkpoint": best["checkpoint"], "val": best["per_task"],
              "test": test, "cpu_seconds": cpu}
    cell_dir.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(record_path)
    return record


def run_grid(grid: Grid, out_dir: str | Path, progress: bool = True) -> list[dict]:
    """Run every cell (finished cells are read back), then write ``table1.json``, ``table1.md`` and plots.

    Returns:
        The cell records, in grid order.
    """
    out = Path(out_dir)
    records = [run_cell(cell, grid, out, progress) for cell in grid.cells]
    write_report(records, out, grid.description)
    return records


def write_report(records: list[dict], out_dir: str | Path, description: str = "") -> None:
    """Write ``table1.json`` (the records), ``table1.md`` (:func:`grid_markdown`) and ``plots/<task>.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.json").write_text(json.dumps(records, indent=2) + "\n")
    (out / "table1.md").write_text(grid_markdown(records, description))
    plot_grid(records, out / "plots")


def _columns(records: list[dict]) -> list[tuple[str, int]]:
    return sorted({(r["method"], r["cell"]["demos"]) for r in records}, key=lambda c: (c[0], c[1]))


def _novelty_note(summary: dict) -> str:
    """``"; all-novel X [lo, hi] n=A, some-novel ..., none-novel ..."`` for a row with novel attribute values
    (empty when every episode is none-novel, e.g. a seen-colours row, or when no breakdown was recorded)."""
    groups = summary.get("by_novelty", {})
    counts = {k: (groups.get(k) or {}).get("episodes", 0) for k in ("all", "some", "none")}
    if not counts["all"] and not counts["some"]:
        return ""
    parts = [f"{k}-novel {format_ci(groups[k]['score'], groups[k]['score_ci'])} n={n}" if n else f"{k}-novel - n=0"
             for k, n in counts.items()]
    return "; " + ", ".join(parts)


def grid_markdown(records: list[dict], description: str = "") -> str:
    """A CLIPort Table-1 style Markdown table of test scores.

    Rows are task variants, columns method x demos. Each entry is ``score [95% CI] n=episodes (paper: X)``; rows
    with novel attribute values add the all- / some- / none-novel scores with their episode counts. A cell trained
    on several tasks appears in every row it was evaluated on. Footer: episodes, CPU-minutes per cell.
    """
    columns = _columns(records)
    tasks = list(dict.fromkeys(t for r in records for t in r["test"]))
    lines = [description, ""] if description else []
    lines.append("| task | " + " | ".join(f"{m}, {n} demos" for m, n in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    for task in tasks:
        row = [task]
        for method, demos in columns:
            entry = "-"
            for r in records:
                if r["method"] == method and r["cell"]["demos"] == demos and task in r["test"]:
                    t = r["test"][task]
                    entry = f"{format_ci(t['score'], t['score_ci'])} n={t['episodes']}" + _novelty_note(t)
            paper = paper_score(task, method, demos)
            row.append(entry + (f" (paper: {paper:.1f})" if paper is not None else ""))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| cell | method | training tasks | demos/task | steps | selected checkpoint | CPU-min (collect / "
              "train / select / test) |", "|---|---|---|---|---|---|---|"]
    for r in records:
        c, cpu = r["cell"], r["cpu_seconds"]
        lines.append(f"| {c['name']} | {r['method']} | {', '.join(c['tasks'])} | {c['demos']} | {c['steps']} | "
                     f"{Path(r['checkpoint']).name} | {' / '.join(f'{cpu[k] / 60:.1f}' for k in cpu)} |")
    return "\n".join(lines) + "\n"


def plot_grid(records: list[dict], out_dir: str | Path) -> list[Path]:
    """Score vs demos (with 95% intervals) per task, one line per method; returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    tasks = list(dict.fromkeys(t for r in records for t in r["test"]))
    for task in tasks:
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        for method in sorted({r["method"] for r in records}):
            pts = sorted((r["cell"]["demos"], r["test"][task]) for r in records
                         if r["method"] == method and task in r["test"])
            if not pts:
                continue
            xs = [d for d, _ in pts]
            ys = [t["score"] for _, t in pts]
            err = [[t["score"] - t["score_ci"][0] for _, t in pts], [t["score_ci"][1] - t["score"] for _, t in pts]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=method)
            paper = [(d, paper_score(task, method, d)) for d in (1, 10, 100, 1000)]
            paper = [(d, s) for d, s in paper if s is not None]
            if paper:
                ax.plot(*zip(*paper, strict=True), linestyle=":", marker="x", label=f"{method} (paper)")
        ax.set_xscale("log")
        ax.set_xlabel("demonstrations")
        ax.set_ylabel("test score (0-100)")
        ax.set_ylim(0, 105)
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        path = out / f"{task}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths

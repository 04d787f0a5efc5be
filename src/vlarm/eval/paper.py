"""Published numbers that vlarm's reports print alongside their own (test score, 100 episodes, 0-100).

CLIPort, Shridhar et al. CoRL 2021, Table 1 (as gathered in ``REFERENCE.md`` Sec. 2): the full 1/10/100/1000-demo rows
for put-blocks-in-bowls, and the single-task CLIPort figure at 100 demos for the other families. The packing tasks
here use vlarm's own named objects, not Google's scanned objects, so the paper's packing-google-objects numbers are
shown next to ``packing-*-objects-*`` as a reference point only.
"""

from __future__ import annotations

#: (task variant, method label, demos) -> the paper's test score.
CLIPORT_TABLE1: dict[tuple[str, str, int], float] = {}


def _row(task: str, method: str, scores: tuple[float, ...], demos: tuple[int, ...] = (1, 10, 100, 1000)) -> None:
    for n, score in zip(demos, scores, strict=True):
        CLIPORT_TABLE1[(task, method, n)] = score


_row("put-block-in-bowl-seen-colors", "CLIPort (single-task)", (23.5, 68.3, 92.5, 100.0))
_row("put-block-in-bowl-unseen-colors", "CLIPort (single-task)", (18.0, 35.3, 37.3, 25.0))
_row("put-block-in-bowl-seen-colors", "CLIPort (multi-task)", (54.0, 90.2, 99.5, 100.0))
_row("put-block-in-bowl-unseen-colors", "CLIPort (multi-task)", (32.0, 48.8, 55.3, 45.8))
_row("put-block-in-bowl-seen-colors", "Transporter-only", (16.8, 33.3, 62.7, 64.7))
_row("put-block-in-bowl-unseen-colors", "Transporter-only", (11.7, 17.2, 14.8, 18.7))
_row("put-block-in-bowl-seen-colors", "CLIP-only", (23.5, 60.2, 93.5, 97.7))
_row("put-block-in-bowl-unseen-colors", "CLIP-only", (11.2, 34.2, 33.2, 44.5))
for _task, _score in {
    "packing-boxes-pairs-seen-colors": 92.7, "packing-boxes-pairs-unseen-colors": 68.6,
    "stack-block-pyramid-seq-seen-colors": 93.3, "stack-block-pyramid-seq-unseen-colors": 31.2,
    "separating-piles-seen-colors": 93.1, "separating-piles-unseen-colors": 76.6,
    "towers-of-hanoi-seq-seen-colors": 97.4, "towers-of-hanoi-seq-unseen-colors": 95.9,
    "align-rope": 85.6, "packing-shapes": 40.0,
    "assembling-kits-seq-seen-colors": 47.0, "assembling-kits-seq-unseen-colors": 35.4,
    "packing-seen-objects-seq": 86.8, "packing-unseen-objects-seq": 65.5,
    "packing-seen-objects-group": 84.1, "packing-unseen-objects-group": 78.4,
}.items():
    CLIPORT_TABLE1[(_task, "CLIPort (single-task)", 100)] = _score


def paper_score(task: str, method: str, demos: int) -> float | None:
    """The paper's test score for a cell of Table 1, or None where the paper (as recorded here) has none."""
    return CLIPORT_TABLE1.get((task, method, int(demos)))

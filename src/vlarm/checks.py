"""Cheap checks of what a user passes, run before any heavy work, and the value lists they check against.

Every output flag of the ``vlarm`` command (``--out``, ``--video``, ``--json``, ...) goes through
:func:`check_output`, so an unwritable path fails in a second, not after a run. Lists of accepted values live
here too, so that a command's help text and its check derive from the same list. Standard library only: any
layer may import this module, and importing it costs nothing (the CLI's help needs no torch).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: ``vlarm vlm eval --dataset`` values (see :func:`vlarm.vlm.commands.vlm_eval`).
VLM_EVAL_DATASETS: tuple[str, ...] = ("fashion-mnist", "retrieval")
#: ``vlarm vlm fewshot --method`` values; the same as :data:`vlarm.vlm.fewshot.METHODS`.
FEWSHOT_METHODS: tuple[str, ...] = ("zero-shot", "linear-probe", "coop", "cocoop", "clip-adapter", "tip-adapter",
                                    "tip-adapter-f")


def check_choice(value: str, choices: tuple[str, ...], flag: str) -> str:
    """Return ``value`` if it is one of ``choices``; raise ``ValueError`` naming ``flag`` and the choices otherwise."""
    if value not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_range(flag: str, value: float, low: float | None = None, high: float | None = None) -> float:
    """Return ``value`` if ``low <= value <= high`` (None: unbounded); else raise ``ValueError`` naming ``flag``."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}")
        raise ValueError(f"{flag} must be {bounds}, got {value}")
    return value


def check_output(path: str | Path | None, flag: str, kind: str = "file",
                 suffixes: tuple[str, ...] = ()) -> Path | None:
    """Check that ``path`` can be written, before anything heavy runs.

    A file path must not be an existing directory (a directory path not an existing file); its nearest existing
    ancestor must be a directory in which a file can actually be created (a probe file is created and removed:
    permission bits alone do not tell, e.g. for root, ``/proc`` or a read-only mount). Nothing else is created.

    Args:
        path: the output path, or None (nothing to check).
        flag: the command-line flag that named it (e.g. ``"--video"``), used in error messages.
        kind: ``"file"`` or ``"dir"``: what will be written at ``path``.
        suffixes: for files, the accepted suffixes (e.g. ``(".mp4", ".gif")``); empty accepts any.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (None for None).

    Raises:
        ValueError: a file suffix not in ``suffixes``.
        IsADirectoryError: a file path that is an existing directory.
        NotADirectoryError: a directory path, or a parent of either kind, that is an existing file.
        PermissionError: the path (or the directory it would be created in) cannot be written.
    """
    if path is None:
        return None
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    path = Path(path)
    where = f"{flag} {path}"
    if path.exists():   # a file/directory mix-up first: it says more than a wrong suffix would
        if kind == "file" and path.is_dir():
            raise IsADirectoryError(f"{where}: is a directory; pass a file path inside it, e.g. "
                                    f"{path / ('output' + (suffixes[0] if suffixes else ''))}")
        if kind == "dir" and not path.is_dir():
            raise NotADirectoryError(f"{where}: {path} is a file, not a directory; pass a directory path")
    if kind == "file" and suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{flag} must end in {' or '.join(suffixes)}, got {path.name}")
    if kind == "file" and path.exists():   # an existing file (or device such as /dev/null)
        try:
            with open(path, "ab"):   # appending nothing leaves an existing file as it is
                pass
        except OSError as err:
            raise PermissionError(f"{where}: cannot write to it ({err.strerror or err}); pass a path you can "
                                  "write") from None
        return path
    ancestor = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{where}: {ancestor} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vlarm-write-check-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"{where}: cannot create files in {os.path.abspath(ancestor)} "
                              f"({err.strerror or err}); pass a path "
                              "in a writable directory") from None
    return path

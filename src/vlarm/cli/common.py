"""What every ``vlarm`` sub-command module shares: the consoles, the user-error handler and the output check.

Kept apart from :mod:`vlarm.cli.main` so that the sub-command modules (:mod:`vlarm.cli.planning`,
:mod:`vlarm.cli.trust`) import it directly, while ``main`` imports them to register their commands.
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vlarm.checks import check_output

# Wide consoles: results lines are long and logs are often redirected to files (80 columns would wrap them).
console = Console(width=160) if not Console().is_terminal else Console()
err_console = Console(stderr=True, width=160) if not Console(stderr=True).is_terminal else Console(stderr=True)


def check_dir(path: Path | None, flag: str) -> None:
    """Fail before any work unless ``path`` (a directory to create or reuse) can be written (see check_output)."""
    check_output(path, flag, kind="dir")


def user_errors(fn):
    """Turn user-fixable errors into a one-line message and exit code 2; log records (vlarm's warnings) are printed
    above any progress bar (``tqdm.contrib.logging``), not into the middle of its line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from gymnasium.error import Error as GymError
        from tqdm.contrib.logging import logging_redirect_tqdm

        from vlarm.data import DatasetError
        from vlarm.policies.base import CheckpointError

        try:
            with logging_redirect_tqdm():
                return fn(*args, **kwargs)
        except (ValueError, OSError, GymError, DatasetError, CheckpointError) as err:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            hint = {"collect": " (rerun the same command to resume: finished episodes are kept)",
                    "train": " (rerun the same command to resume from the last saved checkpoint)"}.get(fn.__name__, "")
            err_console.print(f"[yellow]interrupted[/]{hint}")
            raise typer.Exit(code=130) from None

    return wrapper


__all__ = ["check_dir", "console", "err_console", "user_errors"]

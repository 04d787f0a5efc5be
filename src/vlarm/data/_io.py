"""Small file-system helpers shared by the writer and the reader: atomic writes and PNG coding.

Every file the dataset layer writes goes through :func:`atomic_write_bytes` or
:func:`atomic_write_parquet`: the bytes land in a hidden temporary file in the destination directory,
are flushed to disk, and are moved over the destination with ``os.replace`` (atomic on POSIX). A process
killed at any instant therefore leaves either the old file or the new one, plus at worst a stray
temporary file, which :func:`remove_stray_temp_files` deletes on the next writer open.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

#: Suffix of temporary files; a name looks like ``.file-000.parquet.<pid>.tmp``.
TEMP_SUFFIX = ".tmp"


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable across a power cut; a SIGKILL alone would not need it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, ``os.replace``).

    Atomicity alone survives a killed process. ``durable`` also fsyncs the file and its directory so
    that the write survives a power cut; files that can be rebuilt (the meta files) skip it.
    """
    with _atomic_open(path, durable) as f:
        f.write(data)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=4) + "\n").encode("utf-8"), durable=durable)


def atomic_write_parquet(path: Path, table: pa.Table, *, durable: bool = True, **kwargs: Any) -> None:
    """Write ``table`` as one parquet file at ``path`` atomically (see :func:`atomic_write_bytes`).

    ``kwargs`` go to ``pyarrow.parquet.write_table``.
    """
    with _atomic_open(path, durable) as f:
        pq.write_table(table, f, **kwargs)


@contextlib.contextmanager
def _atomic_open(path: Path, durable: bool):
    """Open a temp file beside ``path`` for binary writing; on success fsync (if durable) and rename it over
    ``path``; on any error remove it, so ``path`` is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def remove_stray_temp_files(root: Path) -> list[Path]:
    """Delete temporary files left under ``root`` by a killed writer; return the paths removed."""
    removed = []
    for path in Path(root).rglob(f".*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 RGB image as PNG bytes (lossless)."""
    buf = io.BytesIO()
    # Level 1 is ~4x faster to encode than the default 6 and only slightly larger on rendered scenes.
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes into an ``(H, W, 3)`` uint8 RGB array (writable)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode != "RGB":
            img = img.convert("RGB")
        return np.array(img, dtype=np.uint8)

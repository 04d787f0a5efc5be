"""`vlarm vlm captions`: simulator image-caption CSVs that open_clip trains on from any working directory."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from vlarm.cli.main import app
from vlarm.vlm.data import CsvImageCaptionDataset

runner = CliRunner()


def _rows(csv_path: Path) -> list[dict]:
    with csv_path.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_captions_command_writes_an_open_clip_csv_usable_from_anywhere(tmp_path, monkeypatch):
    out = tmp_path / "captions"
    result = runner.invoke(app, ["vlm", "captions", "--scenes", "1", "--out", str(out), "--seed", "3",
                                 "--camera-scale", "0.25"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the progress bar goes to stderr
    csv_path = Path(report["csv"])
    assert csv_path == (out / "train.csv").resolve() and csv_path.is_file()
    rows = _rows(csv_path)
    assert len(rows) == report["images"] == report["crops"] + report["scenes"] and report["scenes"] == 1
    assert {"filepath", "title", "relpath"} <= set(rows[0])
    # open_clip's CsvDataset opens `filepath` as given, relative to the trainer's working directory.
    monkeypatch.chdir(tmp_path / "..")
    from PIL import Image

    for row in rows:
        assert Path(row["filepath"]).is_absolute()
        with Image.open(row["filepath"]) as img:
            assert img.size[0] > 0
        assert (csv_path.parent / row["relpath"]).resolve() == Path(row["filepath"])
    ds = CsvImageCaptionDataset(csv_path)
    assert len(ds) == len(rows) and ds[0][1] == rows[0]["title"] and ds[0][0].dtype == np.uint8
    # The same seed writes the same pairs.
    again = runner.invoke(app, ["vlm", "captions", "--scenes", "1", "--out", str(tmp_path / "again"), "--seed", "3",
                                "--camera-scale", "0.25"])
    assert again.exit_code == 0, again.output
    assert [r["title"] for r in _rows(tmp_path / "again" / "train.csv")] == [r["title"] for r in rows]


def test_vlarm_readers_accept_relative_paths_and_moved_folders(tmp_path):
    from PIL import Image

    # CSV-relative paths (what older vlarm and hand-written CSVs hold).
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(tmp_path / "imgs" / "a.png")
    (tmp_path / "rel.csv").write_text("filepath\ttitle\nimgs/a.png\ta grey square\n")
    ds = CsvImageCaptionDataset(tmp_path / "rel.csv")
    assert ds.paths == [str(tmp_path / "imgs" / "a.png")] and ds[0][0][0, 0, 0] == 200
    # Absolute paths, then the folder moves: the relpath column still finds the images.
    (tmp_path / "abs.csv").write_text(f"filepath\ttitle\trelpath\n{tmp_path / 'imgs' / 'a.png'}\ta grey square\t"
                                      "imgs/a.png\n")
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(tmp_path / "imgs"), moved / "imgs")
    shutil.move(str(tmp_path / "abs.csv"), moved / "abs.csv")
    ds = CsvImageCaptionDataset(moved / "abs.csv")
    assert ds.paths == [str(moved / "imgs" / "a.png")] and ds[0][1] == "a grey square"
    # A path that exists nowhere is a clear one-line error on access.
    (tmp_path / "gone.csv").write_text("filepath\ttitle\n/nowhere/b.png\tx\n")
    ds = CsvImageCaptionDataset(tmp_path / "gone.csv")
    try:
        ds[0]
    except FileNotFoundError as err:
        assert "/nowhere/b.png (row 1) does not exist" in str(err) and "\n" not in str(err)
    else:
        raise AssertionError("a missing image must raise FileNotFoundError")


def test_captions_command_checks_its_flags_first(tmp_path):
    for args, message in [
        (["--scenes", "0", "--out", str(tmp_path / "c")], "--scenes must be >= 1, got 0"),
        (["--scenes", "1", "--out", str(tmp_path / "c"), "--seed", "-1"], "--seed must be >= 0"),
        (["--scenes", "1", "--out", str(tmp_path / "c"), "--camera-scale", "2"], "--camera-scale must be in (0, 1]"),
        (["--scenes", "1", "--out", str(tmp_path / "c"), "--name", "../x"], "--name must be letters"),
    ]:
        result = runner.invoke(app, ["vlm", "captions", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["vlm", "captions", "--scenes", "1", "--out", str(tmp_path / "file")])
    assert result.exit_code == 2 and "is a file, not a directory" in result.output
    assert not (tmp_path / "c").exists()

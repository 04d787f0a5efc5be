"""Language-model loading: local directories, the converted cache's SHA-256 check, clear errors (tiny model only)."""

from __future__ import annotations

import json

import pytest
from tests.planning.tiny_lm import tiny_llama, tiny_tokenizer

from vlarm.planning.lm import MANIFEST, file_sha256, load_language_model, verify_converted


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tiny_llama().save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_a_local_directory_loads_and_says_so(tiny_dir):
    loaded = load_language_model(tiny_dir)
    assert loaded.source == f"local directory {tiny_dir}" and loaded.seconds >= 0
    assert loaded.tokenizer("pick the red block")["input_ids"][0] == loaded.tokenizer.bos_token_id


def test_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_language_model(tmp_path / "nope")


def test_converted_copy_is_checked_against_its_recorded_sha256(tiny_dir, tmp_path):
    weights = next(p for p in tiny_dir.iterdir() if p.suffix == ".safetensors")
    copy = tmp_path / "converted"
    copy.mkdir()
    (copy / weights.name).write_bytes(weights.read_bytes())
    with pytest.raises(ValueError, match="no vlarm_manifest.json"):
        verify_converted(copy)
    (copy / MANIFEST).write_text(json.dumps({"sha256": {weights.name: file_sha256(weights)}}))
    assert verify_converted(copy)["sha256"]
    data = bytearray((copy / weights.name).read_bytes())
    data[-1] ^= 0xFF
    (copy / weights.name).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        verify_converted(copy)

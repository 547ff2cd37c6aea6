"""`create_app`'s embedded SECRET_KEY: one key per machine, whole, whoever asks first."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app import instance_secret_key
from app.config import ConfigError

RACERS = 16


def test_racers_starting_together_all_read_one_whole_key(tmp_path: Path):
    """gunicorn's workers, the worker and beat start at once. (Before: the file was
    created empty, then written, and a racer could read "" and sign with it.)"""
    for round_ in range(20):
        instance = tmp_path / f"instance-{round_}"
        start = threading.Barrier(RACERS)

        def race(_: int, instance: Path = instance, start: threading.Barrier = start) -> str:
            start.wait()
            return instance_secret_key(instance)

        with ThreadPoolExecutor(RACERS) as pool:
            keys = list(pool.map(race, range(RACERS)))
        assert len(set(keys)) == 1 and len(keys[0]) >= 48, keys
        assert (instance / "secret_key").read_text() == keys[0]
        assert (instance / "secret_key").stat().st_mode & 0o777 == 0o600
        assert [path.name for path in instance.iterdir()] == ["secret_key"]


def test_an_empty_key_file_stops_the_process(tmp_path: Path):
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        instance_secret_key(tmp_path)

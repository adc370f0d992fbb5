"""Fixtures for the node server tests (helpers live in node_server_support)."""

from pathlib import Path

import pytest
from node_server_support import write_tone


@pytest.fixture(scope="session")
def prompt_clip(tmp_path_factory) -> Path:
    """A valid 3-second prompt clip."""
    return write_tone(tmp_path_factory.mktemp("clips") / "prompt.wav", 3.0)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Prompt clips that must be refused: too short, too long, not audio."""
    d = tmp_path_factory.mktemp("bad-clips")
    not_audio = d / "not-audio.wav"
    not_audio.write_bytes(b"this is not a RIFF file at all\n" * 20)
    return {
        "short": write_tone(d / "short.wav", 0.5),
        "long": write_tone(d / "long.wav", 31.0, rate=8000),
        "not_audio": not_audio,
    }

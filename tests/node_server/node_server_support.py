"""Helpers for the node server tests: start a real server process on 127.0.0.1 (espeak
engine), make prompt clips, poll with bounds. Traffic goes to 127.0.0.1 only.

A uniquely named module (not conftest) so that test modules can import it unambiguously."""

import contextlib
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO / "roles" / "cosyvoice_node" / "files"
sys.path.insert(0, str(SERVER_DIR))
# The role copies SERVER_DIR to the nodes: leave no __pycache__ in it.
sys.dont_write_bytecode = True

# The Gradio client must not go through a proxy or phone home.
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

START_TIMEOUT_S = 90


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll predicate until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A mono 16-bit PCM WAV: a 220 Hz tone, a stand-in for a prompt clip."""
    frames = int(seconds * rate)
    data = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * i / rate))) for i in range(frames))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data)
    return path


def parse_wav(data: bytes) -> tuple[int, int]:
    """(sample rate, frames) of WAV bytes; fails the test when they are no WAV."""
    import io

    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getframerate(), wav.getnframes()


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class ServerProcess:
    """``python -m cosyvoice_tts_server`` with a YAML config in its own directory."""

    def __init__(self, workdir: Path, settings: dict | None = None):
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.outputs = workdir / "outputs"
        self.spool = workdir / "spool"
        self.drain_file = workdir / "drain"
        self.access_log = workdir / "access.log"
        self.outputs.mkdir(parents=True, exist_ok=True)
        base = {
            "engine": "espeak",
            "node_name": "test-node",
            "listen": {"host": "127.0.0.1", "port": self.port},
            "outputs": {"dir": str(self.outputs), "spool_dir": str(self.spool), "probe_interval_s": 0},
            "drain_file": str(self.drain_file),
            "access_log": str(self.access_log),
            "ui": {"temp_dir": str(workdir / "gradio-tmp")},
        }
        self.settings = deep_merge(base, settings or {})
        self.config = workdir / "server.yml"
        self.config.write_text(yaml.safe_dump(self.settings, allow_unicode=True))
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def start(self) -> "ServerProcess":
        env = {**os.environ, "PYTHONPATH": str(SERVER_DIR), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cosyvoice_tts_server", "--config", str(self.config)],
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, START_TIMEOUT_S, f"{self.url}/readyz to answer 200")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return self.http.get("/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def readyz(self) -> tuple[int, dict]:
        resp = self.http.get("/readyz")
        return resp.status_code, resp.json()

    def queue(self) -> dict:
        return self.readyz()[1]["queue"]

    def children(self) -> list[int]:
        """Direct child processes of the server (espeak-ng or the test delay)."""
        assert self.proc is not None
        kids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(pid) for pid in (task / "children").read_text().split()]
        return kids

    def stop(self) -> None:
        self.http.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def gradio_client(url: str, download_dir: Path):
    """A gradio_client.Client for url, without analytics (the kwarg is newer than 1.x)."""
    import inspect

    from gradio_client import Client

    kwargs = {"verbose": False, "download_files": str(download_dir), "analytics_enabled": False}
    params = inspect.signature(Client.__init__).parameters
    return Client(url + "/", **{k: v for k, v in kwargs.items() if k in params})

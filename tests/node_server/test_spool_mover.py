"""Spool delivery (``outputs.delivery: spool``) and the mover.

The server in spool mode (a real process, espeak engine) writes results to the local
spool only and never touches outputs.dir; the mover (``python -m
cosyvoice_tts_server.mover``, run as a real subprocess) carries complete results to
outputs.dir. outputs.dir stands for the NFS share; a missing directory stands for a share
that is not mounted (the tests may run as root, so permissions cannot make it unwritable).
"""

import asyncio
import base64
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cosyvoice_tts_server import outputs
from cosyvoice_tts_server.audio import Audio
from cosyvoice_tts_server.config import load_config
from cosyvoice_tts_server.engine_base import Engine
from cosyvoice_tts_server.mover import host_tag
from cosyvoice_tts_server.service import Service, ServiceError
from cosyvoice_tts_server.tts_request import TtsRequest
from gradio_client import handle_file
from node_server_support import SERVER_DIR, ServerProcess, gradio_client, parse_wav, wait_for

MOVER_ENV = {**os.environ, "PYTHONPATH": str(SERVER_DIR), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
MOVER = [sys.executable, "-m", "cosyvoice_tts_server.mover"]
TAG = host_tag()


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def sidecars(directory: Path) -> set[str]:
    return {p.stem for p in directory.glob("*.json")}


def hidden(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.startswith(".")}


def visible(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if not p.name.startswith(".")}


def rest_body(prompt: Path, text: str, seed: int = 5) -> dict:
    return {
        "text": text,
        "mode": "zero_shot",
        "seed": seed,
        "prompt_text": "a test tone",
        "prompt_wav_b64": base64.b64encode(prompt.read_bytes()).decode(),
    }


def access_entry(srv: ServerProcess, stem: str) -> dict:
    def find():
        for line in srv.access_log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("output") == stem:
                return entry
        return None

    return wait_for(find, 5, f"the access log line of {stem}")


# ---- the server in spool mode ----------------------------------------------------------


@pytest.fixture(scope="module")
def spool_server(tmp_path_factory):
    """delivery spool; outputs.dir (the share) does not exist."""
    workdir = tmp_path_factory.mktemp("spool-server")
    share = workdir / "share"
    srv = ServerProcess(workdir, {"outputs": {"dir": str(share), "delivery": "spool"}})
    srv.outputs.rmdir()
    srv.share = share
    srv.start()
    yield srv
    srv.stop()


def test_spool_mode_is_ready_while_outputs_dir_is_missing(spool_server):
    status, body = spool_server.readyz()
    assert status == 200, body
    assert body["checks"]["outputs_writable_or_spooled"] is True
    assert (body["outputs"], body["delivery"]) == ("spool", "spool")
    assert spool_server.spool.is_dir()  # created by the server
    assert not spool_server.share.exists()


def test_spool_mode_rest_result_lands_in_the_spool_only(spool_server, prompt_clip):
    srv = spool_server
    resp = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "spooled by design"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-tts-stored"] == "spool"
    stem = resp.headers["x-tts-output"]
    assert (srv.spool / f"{stem}.wav").read_bytes() == resp.content
    sidecar = json.loads((srv.spool / f"{stem}.json").read_text())
    assert (sidecar["text"], sidecar["wav"], sidecar["stored"]) == ("spooled by design", f"{stem}.wav", "spool")
    assert not srv.share.exists()
    assert not [name for name in hidden(srv.spool) if name.endswith(".tmp")]
    entry = access_entry(srv, stem)
    assert (entry["route"], entry["status"], entry["code"], entry["stored"]) == ("rest", 200, "ok", "spool")

    text = srv.http.get("/metrics").text
    assert metric(text, "cosyvoice_tts_spool_backlog_files") == len(sidecars(srv.spool)) >= 1
    assert 0 <= metric(text, "cosyvoice_tts_spool_oldest_age_seconds") < 300
    assert metric(text, 'cosyvoice_tts_outputs_spooled_total{engine="espeak"}') >= 1


def test_spool_mode_gradio_result_and_access_log(spool_server, prompt_clip, tmp_path):
    client = gradio_client(spool_server.url, tmp_path)
    path, info = client.predict(
        "gradio into the spool", "zero_shot", handle_file(str(prompt_clip)), "a test tone", "", 8, True,
        api_name="/synthesize",
    )  # fmt: skip
    assert info["stored"] == "spool"
    data = Path(path).read_bytes()
    assert parse_wav(data)[1] > 0
    assert (spool_server.spool / f"{info['output']}.wav").read_bytes() == data
    entry = access_entry(spool_server, info["output"])
    assert (entry["route"], entry["status"], entry["stored"]) == ("gradio", 200, "spool")
    assert not spool_server.share.exists()


def test_spool_mode_never_touches_outputs_dir(spool_server, prompt_clip):
    """Not even the readiness probe: a file created and removed there would change the
    directory's mtime (in direct mode the probe does exactly that)."""
    srv = spool_server
    srv.share.mkdir()
    try:
        os.utime(srv.share, (1_000_000_000, 1_000_000_000))
        for _ in range(3):  # outputs.probe_interval_s is 0: every call probes
            assert srv.readyz()[0] == 200
        assert srv.http.post("/v1/tts", json=rest_body(prompt_clip, "not on the share")).status_code == 200
        assert list(srv.share.iterdir()) == []
        assert srv.share.stat().st_mtime == 1_000_000_000
    finally:
        srv.share.rmdir()


def test_mover_empties_the_spool_of_a_running_server(spool_server, prompt_clip, tmp_path):
    """The mover reads the server's own settings file; the backlog metric follows."""
    srv = spool_server
    stem = srv.http.post("/v1/tts", json=rest_body(prompt_clip, "for the mover")).headers["x-tts-output"]
    waiting = {name: (srv.spool / name).read_bytes() for name in visible(srv.spool)}
    assert f"{stem}.json" in waiting
    share = tmp_path / "mounted-share"
    share.mkdir()
    res = subprocess.run(
        [*MOVER, "--config", str(srv.config), "--once", "--set", f"outputs.dir={share}"],
        env=MOVER_ENV, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert {p.name: p.read_bytes() for p in share.iterdir()} == waiting
    assert visible(srv.spool) == set()
    text = srv.http.get("/metrics").text
    assert metric(text, "cosyvoice_tts_spool_backlog_files") == 0
    assert metric(text, "cosyvoice_tts_spool_oldest_age_seconds") == 0


class InstantEngine(Engine):
    name = "stub"
    label = "stub engine"

    def load(self):
        pass

    def warmup(self, text, cancel):
        return Audio(b"\0\0" * 160, 16000)

    def synthesize(self, req, cancel):
        return Audio(b"\1\0" * 1600, 16000)


def test_spool_mode_needs_the_spool_not_outputs_dir(tmp_path):
    """In spool mode a writable outputs.dir does not make the node ready, and a result
    that cannot be spooled is refused rather than written to outputs.dir."""
    (tmp_path / "out").mkdir()
    (tmp_path / "a-file").write_text("the spool cannot be created under a file\n")
    overrides = {
        "engine": "espeak",
        "outputs.delivery": "spool",
        "outputs.dir": str(tmp_path / "out"),
        "outputs.spool_dir": str(tmp_path / "a-file" / "spool"),
        "drain_file": str(tmp_path / "drain"),
    }
    service = Service(load_config(None, overrides, environ={}), InstantEngine(), node="n1")

    async def scenario():
        await service.start()
        deadline = time.monotonic() + 5
        while not service.warmed_up:
            assert time.monotonic() < deadline, "warm-up"
            await asyncio.sleep(0.02)
        ready, body = await service.readiness()
        assert not ready
        assert body["failing"] == ["outputs_writable_or_spooled"]
        assert body["outputs"] == "none"
        with pytest.raises(ServiceError) as err:
            await service.run("rest", "127.0.0.1", lambda: TtsRequest(text="x", mode="cross_lingual", seed=1))
        assert (err.value.status, err.value.code) == (503, "storage_unavailable")

    asyncio.run(scenario())
    assert list((tmp_path / "out").iterdir()) == []
    assert service.live_state()["spool_backlog_files"] == 0


# ---- the mover -------------------------------------------------------------------------


class Layout:
    """A spool, a share directory (created or not) and the mover's settings file. The
    engine is cosyvoice with no model: the mover does not check the engine's files."""

    def __init__(self, base: Path, create_target: bool = True, **mover):
        self.spool = base / "spool"
        self.share = base / "share"
        self.target = self.share / "outputs"
        self.spool.mkdir()
        self.share.mkdir()
        if create_target:
            self.target.mkdir()
        self.config = base / "server.yml"
        settings = {
            "engine": "cosyvoice",
            "cosyvoice": {"model_dir": str(base / "no-model")},
            "log_level": "debug",
            "outputs": {"dir": str(self.target), "spool_dir": str(self.spool), "delivery": "spool"},
            "mover": {"interval_s": 0.1, "max_backoff_s": 0.4, **mover},
        }
        self.config.write_text(yaml.safe_dump(settings))
        self.log = base / "mover.log"

    def add(self, stem: str, age_s: float = 0.0, size: int = 4000) -> tuple[bytes, bytes]:
        """A result as the server writes it; returns (wav bytes, sidecar bytes)."""
        wav = b"RIFF" + os.urandom(size)
        outputs.write_result(str(self.spool), stem, wav, {"id": stem, "text": f"text of {stem}"})
        sidecar = self.spool / f"{stem}.json"
        when = time.time() - age_s
        os.utime(sidecar, (when, when))
        return wav, sidecar.read_bytes()

    def once(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*MOVER, "--config", str(self.config), "--once", *extra],
            env=MOVER_ENV, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def start(self) -> subprocess.Popen:
        with open(self.log, "wb") as log:
            proc = subprocess.Popen(
                [*MOVER, "--config", str(self.config)], env=MOVER_ENV, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(lambda: "cosyvoice_tts.mover: mover " in self.log_text(), 30, "the mover to start")
        return proc

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_once_delivers_complete_results_oldest_first(tmp_path):
    lay = Layout(tmp_path)
    results = {stem: lay.add(stem, age) for stem, age in (("r-a", 10), ("r-b", 30), ("r-c", 20))}
    (lay.spool / "in-progress.wav").write_bytes(b"RIFF no sidecar yet")
    (lay.spool / ".r-d.wav.0123abcd.tmp").write_bytes(b"the server is writing this")

    res = lay.once()
    assert res.returncode == 0, res.stderr
    for stem, (wav, sidecar) in results.items():
        assert (lay.target / f"{stem}.wav").read_bytes() == wav
        assert (lay.target / f"{stem}.json").read_bytes() == sidecar
    assert visible(lay.target) == {f"{stem}.{ext}" for stem in results for ext in ("wav", "json")}
    assert hidden(lay.target) == set()  # no temporary file left behind
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in lay.target.iterdir())
    # Only the complete results went; the WAV without sidecar and the temp file stay.
    assert visible(lay.spool) == {"in-progress.wav"}
    assert ".r-d.wav.0123abcd.tmp" in hidden(lay.spool)
    assert re.findall(r"delivered (r-\w) \(", res.stderr) == ["r-b", "r-c", "r-a"]
    assert "delivered 3 result(s)" in res.stderr

    again = lay.once()
    assert again.returncode == 0, again.stderr
    assert "delivered" not in again.stderr  # no summary when nothing moved


def test_missing_outputs_dir_is_never_created_and_the_loop_delivers_when_it_appears(tmp_path):
    lay = Layout(tmp_path, create_target=False)
    results = {stem: lay.add(stem, age) for stem, age in (("old", 20), ("new", 10))}

    res = lay.once()
    assert res.returncode == 1
    assert "does not exist" in res.stderr
    assert not lay.target.exists()  # never created: a missing mount stays missing
    assert sidecars(lay.spool) == set(results)

    proc = lay.start()
    try:
        time.sleep(1.5)  # several passes with back-off
        assert not lay.target.exists()
        assert sidecars(lay.spool) == set(results)
        assert lay.log_text().count("cannot deliver to") == 1  # one line per outage
        # One mover per spool: a second one does nothing and says so.
        second = lay.once()
        assert second.returncode == 1
        assert "another mover holds" in second.stderr

        lay.target.mkdir()
        wait_for(lambda: not sidecars(lay.spool), 10, "the spool to empty")
        for stem, (wav, sidecar) in results.items():
            assert (lay.target / f"{stem}.wav").read_bytes() == wav
            assert (lay.target / f"{stem}.json").read_bytes() == sidecar
        wait_for(lambda: "resumed" in lay.log_text(), 5, "the resume line")
        assert re.search(r"delivery to \S+ resumed after \d+ s: 2 result\(s\) delivered", lay.log_text())
        assert hidden(lay.target) == set()
        assert visible(lay.spool) == set()
    finally:
        assert stop(proc) == 0
    assert lay.log_text().count("cannot deliver to") == 1


def test_crash_leftovers_are_finished_and_only_this_hosts_temp_files_go(tmp_path):
    lay = Layout(tmp_path)
    # Crash between removing the spool WAV and its sidecar: the WAV is on the share.
    wav, sidecar = lay.add("wav-gone")
    (lay.target / "wav-gone.wav").write_bytes(wav)
    (lay.spool / "wav-gone.wav").unlink()
    # Crash after copying, before removing from the spool: copying again is harmless.
    again_wav, again_sidecar = lay.add("copied-twice")
    (lay.target / "copied-twice.wav").write_bytes(again_wav)
    (lay.target / "copied-twice.json").write_bytes(again_sidecar)
    # A sidecar whose WAV is nowhere: it stays where it is (and is reported).
    lay.add("lost")
    (lay.spool / "lost.wav").unlink()
    # Temporary files of a killed mover on this host, another host's, the server's.
    mine = f".old.wav.{TAG}.0badc0de.tmp"
    theirs = ".old.wav.otherhost.0badc0de.tmp"
    servers = ".old.wav.0badc0de.tmp"
    for name in (mine, theirs, servers):
        (lay.target / name).write_bytes(b"partial")

    res = lay.once()
    assert res.returncode == 1, res.stderr  # "lost" is still waiting
    assert (lay.target / "wav-gone.wav").read_bytes() == wav
    assert (lay.target / "wav-gone.json").read_bytes() == sidecar
    assert (lay.target / "copied-twice.wav").read_bytes() == again_wav
    assert (lay.target / "copied-twice.json").read_bytes() == again_sidecar
    assert visible(lay.spool) == {"lost.json"}
    assert not (lay.target / "lost.json").exists()
    assert "lost.json has no WAV" in res.stderr
    assert hidden(lay.target) == {theirs, servers}
    assert f"removed 1 stale temporary file(s) of host {TAG}" in res.stderr


def test_require_mountpoint_treats_a_plain_directory_as_down(tmp_path):
    lay = Layout(tmp_path)
    wav, _ = lay.add("waits")
    res = lay.once("--set", "mover.require_mountpoint=true")
    assert res.returncode == 1
    assert "is not a mount point" in res.stderr
    assert list(lay.target.iterdir()) == []
    assert (lay.spool / "waits.wav").read_bytes() == wav


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_loop_with_status_0(tmp_path, sig):
    lay = Layout(tmp_path)
    lay.add("first")
    proc = lay.start()
    wait_for(lambda: not sidecars(lay.spool), 10, "the first result to go")
    started = time.monotonic()
    assert stop(proc, sig) == 0
    assert time.monotonic() - started < 3
    assert "stopped; 0 result(s) wait" in lay.log_text()


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("mover.interval_s=0", "mover.interval_s"),
        ("mover.max_backoff_s=0.1", "mover.max_backoff_s"),  # below interval_s (0.1 < 2 by default)
        ("outputs.delivery=later", "outputs.delivery"),
    ],
)
def test_mover_bad_setting_exits_2(tmp_path, setting, key):
    lay = Layout(tmp_path)
    lay.config.write_text(yaml.safe_dump({"outputs": {"dir": str(lay.target), "spool_dir": str(lay.spool)}}))
    res = lay.once("--set", setting)
    assert res.returncode == 2
    assert res.stderr.startswith(f"cosyvoice-tts-mover: invalid setting {key}: ")
    assert len(res.stderr.strip().splitlines()) == 1

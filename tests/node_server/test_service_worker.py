"""The service's limiter and timeout with an engine that ignores its cancel event: what a
CosyVoice synthesis stuck inside one chunk looks like. In-process, no HTTP, no Gradio."""

import asyncio
import threading
import time

import pytest
from cosyvoice_tts_server.audio import Audio
from cosyvoice_tts_server.config import load_config
from cosyvoice_tts_server.engine_base import Engine
from cosyvoice_tts_server.service import Service, ServiceError
from cosyvoice_tts_server.tts_request import TtsRequest

REQ = TtsRequest(text="x", mode="cross_lingual", seed=1)


class StubbornEngine(Engine):
    """synthesize() blocks until released, whatever its cancel event says."""

    name = "stub"
    label = "stub engine"

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0

    def load(self):
        pass

    def warmup(self, text, cancel):
        return Audio(b"\0\0" * 160, 16000)

    def synthesize(self, req, cancel):
        self.calls += 1
        assert self.release.wait(20), "never released"
        return Audio(b"\1\0" * 1600, 16000)


async def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_stuck_worker_keeps_its_slot_fails_readyz_and_asks_to_exit(tmp_path):
    (tmp_path / "out").mkdir()
    overrides = {
        "engine": "espeak",
        "queue.timeout_s": "1",
        "queue.cancel_grace_s": "0.3",
        "queue.max_size": "1",
        "outputs.dir": str(tmp_path / "out"),
        "outputs.spool_dir": str(tmp_path / "spool"),
        "drain_file": str(tmp_path / "drain"),
    }
    cfg = load_config(None, overrides, environ={})
    engine = StubbornEngine()
    service = Service(cfg, engine, node="n1")
    fatal: list[int] = []
    service.on_fatal = lambda code, why: fatal.append(code)

    async def scenario():
        await service.start()
        await until(lambda: service.warmed_up, 5, "warm-up")
        started = time.monotonic()
        with pytest.raises(ServiceError) as err:
            await service.run("rest", "127.0.0.1", lambda: REQ)
        assert (err.value.status, err.value.code) == (504, "timeout")
        assert 0.9 < time.monotonic() - started < 3
        # The worker did not stop: its slot stays taken so nothing else runs beside it.
        assert service.in_flight == 1
        await until(lambda: fatal, 3, "the stuck worker to be reported")
        assert fatal == [3]
        assert service.stuck == 1
        ready, body = await service.readiness()
        assert not ready
        assert "no_stuck_worker" in body["failing"]
        # A request arriving now waits for the slot instead of running beside the stuck one.
        waiting = asyncio.ensure_future(service.run("rest", "127.0.0.1", lambda: REQ))
        await until(lambda: service.waiting == 1, 3, "the next request to wait")
        assert engine.calls == 1
        engine.release.set()
        result = await asyncio.wait_for(waiting, 10)
        assert result.stored == "outputs"
        assert (tmp_path / "out" / f"{result.stem}.json").exists()
        await until(lambda: service.in_flight == 0 and service.stuck == 0, 5, "the slot to be free")
        assert (await service.readiness())[0] is True

    asyncio.run(scenario())

"""The service: one limiter for both paths, timeouts, result files, readiness, drain.

Limiter: ``queue.concurrency`` slots (an asyncio semaphore) shared by the Gradio handler and
``POST /v1/tts``. The waiting room is the Gradio queue plus the requests waiting on the
semaphore; when the slots are busy and the waiting room holds ``queue.max_size``, REST
requests and new Gradio joins get 503 at once.

Timeout: a synthesis runs in its own daemon thread with a cancel event. After
``queue.timeout_s`` the request answers 504 and the event is set; the engine stops
(espeak: its process group is killed; cosyvoice: between chunks) and the slot is released
when the thread has really ended, so two syntheses never share the GPU. A thread still
running ``queue.cancel_grace_s`` after the cancel is "stuck": /readyz fails and, with
``queue.exit_if_stuck``, the process exits (status 3) for systemd to restart it.
"""

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import __version__
from .audio import Audio
from .config import Config
from .engine_base import Engine, EngineError, SynthesisCancelledError
from .metrics import Metrics
from .outputs import ensure_spool, output_stem, probe_writable, spool_backlog, write_result
from .tts_request import TtsError, TtsRequest

log = logging.getLogger("cosyvoice_tts")
access_log = logging.getLogger("cosyvoice_tts.access")


class ServiceError(TtsError):
    """The server cannot serve the request now (503, 504, 500)."""


class _GaveUpError(Exception):
    pass


def run_in_thread(fn: Callable[..., Any], *args: Any, name: str = "tts-worker") -> asyncio.Future:
    """Run fn in a new daemon thread; the future settles when the thread has finished.

    Not the default executor: an abandoned (hung) call must not use up a shared pool, and
    a daemon thread does not hold up the process exit."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.cancelled():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def runner() -> None:
        try:
            value, ok = fn(*args), True
        except BaseException as exc:  # handed to the awaiting coroutine
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=runner, name=name, daemon=True).start()
    return future


async def bounded(fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
    """fn(*args) in a thread, given up (not stopped) after timeout: raises _GaveUpError."""
    future = run_in_thread(fn, *args, name="tts-io")
    done, _pending = await asyncio.wait({future}, timeout=timeout)
    if not done:
        future.add_done_callback(_consume)
        raise _GaveUpError(f"{getattr(fn, '__name__', 'call')} took longer than {timeout:g} s")
    return future.result()


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _sha256(path: str | None) -> str:
    if not path:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Result:
    request: TtsRequest
    audio: Audio
    wav: bytes
    stem: str
    path: str
    stored: str  # "outputs" or "spool"
    queue_wait_s: float
    synthesis_s: float


class Service:
    def __init__(self, cfg: Config, engine: Engine, node: str = ""):
        self.cfg = cfg
        self.engine = engine
        self.node = node or cfg.node_name or socket.gethostname()
        self.started = time.time()
        self.in_flight = 0
        self.waiting = 0
        self.stuck = 0
        self.model_loaded = False
        self.warmed_up = False
        self.startup_error = ""
        self.api_drain = False
        self.shutting_down = False
        self.gradio_waiting: Callable[[], int] = lambda: 0
        self.on_fatal: Callable[[int, str], None] = lambda code, why: os._exit(code)
        self._sem: asyncio.Semaphore | None = None
        self._startup: asyncio.Task | None = None
        self._probe: asyncio.Task | None = None
        self._probe_started = 0.0
        self._outputs = {"outputs": False, "spool": False, "checked": 0.0}
        self.metrics = Metrics(engine.name, self.node, __version__, self.live_state)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._sem = asyncio.Semaphore(self.cfg.queue.concurrency)
        self._startup = asyncio.create_task(self._load_and_warm_up())
        await self.outputs_state(force=True)

    async def _load_and_warm_up(self) -> None:
        try:
            t0 = time.monotonic()
            await run_in_thread(self.engine.load, name="tts-load")
            self.model_loaded = True
            log.info("engine %s loaded in %.1f s", self.engine.name, time.monotonic() - t0)
            t0 = time.monotonic()
            audio = await run_in_thread(self.engine.warmup, self.cfg.warmup_text, threading.Event(), name="tts-warmup")
            self.warmed_up = True
            log.info("warm-up synthesis done in %.1f s (%.2f s of audio)", time.monotonic() - t0, audio.duration)
        except Exception as exc:
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.error("startup failed: %s", self.startup_error)  # one line for the journal
            self.on_fatal(1, self.startup_error)

    def begin_shutdown(self) -> None:
        if not self.shutting_down:
            log.info("SIGTERM: draining; queued and in-flight work may finish")
        self.shutting_down = True

    def idle(self) -> bool:
        return self.in_flight == 0 and self.queue_depth() == 0

    # ---- state -----------------------------------------------------------------------

    def queue_depth(self) -> int:
        try:
            gradio = int(self.gradio_waiting())
        except Exception:  # Gradio internals; never break health or metrics
            gradio = 0
        return self.waiting + gradio

    def saturated(self) -> bool:
        return self.in_flight >= self.cfg.queue.concurrency and self.queue_depth() >= self.cfg.queue.max_size

    def join_refusal(self) -> str:
        """Why a new request must be refused at once (503), or ''."""
        if self.shutting_down:
            return "Server is shutting down"
        if self.saturated():
            return "Queue is full"
        return ""

    def drain_reasons(self) -> list[str]:
        reasons = []
        if self.api_drain:
            reasons.append("POST /drain")
        if os.path.exists(self.cfg.drain_file):
            reasons.append(f"drain file {self.cfg.drain_file}")
        if self.shutting_down:
            reasons.append("SIGTERM")
        return reasons

    async def outputs_state(self, force: bool = False) -> dict[str, Any]:
        """Writability of outputs.dir and the spool, probed in a thread at most every
        outputs.probe_interval_s; a probe that hangs (NFS) counts as not writable."""
        age = time.monotonic() - self._outputs["checked"]
        if self._probe is not None and not self._probe.done():
            if time.monotonic() - self._probe_started > self.cfg.outputs.write_timeout_s:
                self._outputs["outputs"] = False
            return dict(self._outputs)
        if force or age >= self.cfg.outputs.probe_interval_s:
            self._probe_started = time.monotonic()
            self._probe = asyncio.ensure_future(self._run_probe())
            await asyncio.wait({self._probe}, timeout=self.cfg.outputs.write_timeout_s + 1)
        return dict(self._outputs)

    async def _run_probe(self) -> None:
        timeout = self.cfg.outputs.write_timeout_s
        outputs = False
        # delivery spool: outputs.dir is never touched, not even probed (a probe of a hung
        # hard NFS mount blocks its thread for good); the spool alone makes the node ready.
        if self.cfg.outputs.delivery == "direct":
            try:
                outputs = await bounded(probe_writable, self.cfg.outputs.dir, timeout=timeout)
            except _GaveUpError:
                outputs = False
        try:
            await bounded(ensure_spool, self.cfg.outputs.spool_dir, timeout=timeout)
            spool = await bounded(probe_writable, self.cfg.outputs.spool_dir, timeout=timeout)
        except (_GaveUpError, OSError):
            spool = False
        self._outputs = {"outputs": bool(outputs), "spool": bool(spool), "checked": time.monotonic()}

    def _checks(self) -> dict[str, bool]:
        return {
            "model_loaded": self.model_loaded,
            "warmup_done": self.warmed_up,
            "outputs_writable_or_spooled": bool(self._outputs["outputs"] or self._outputs["spool"]),
            "not_draining": not self.drain_reasons(),
            "queue_not_saturated": not self.saturated(),
            "no_stuck_worker": self.stuck == 0,
        }

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        outputs = await self.outputs_state()
        checks = self._checks()
        ready = all(checks.values())
        body: dict[str, Any] = {
            "ready": ready,
            "failing": [name for name, ok in checks.items() if not ok],
            "checks": checks,
            "engine": self.engine.name,
            "node": self.node,
            "outputs": "outputs" if outputs["outputs"] else ("spool" if outputs["spool"] else "none"),
            "delivery": self.cfg.outputs.delivery,
            "draining": self.drain_reasons(),
            "queue": {
                "depth": self.queue_depth(),
                "max_size": self.cfg.queue.max_size,
                "in_flight": self.in_flight,
                "concurrency": self.cfg.queue.concurrency,
            },
        }
        if self.startup_error:
            body["startup_error"] = self.startup_error
        return ready, body

    def live_state(self) -> dict[str, Any]:
        backlog, oldest = spool_backlog(self.cfg.outputs.spool_dir)  # local disk only
        return {
            "queue_depth": self.queue_depth(),
            "queue_max_size": self.cfg.queue.max_size,
            "in_flight": self.in_flight,
            "ready": int(all(self._checks().values())),
            "draining": int(bool(self.drain_reasons())),
            "stuck_workers": self.stuck,
            "spool_backlog_files": backlog,
            "spool_oldest_age_seconds": max(0.0, time.time() - oldest) if oldest is not None else 0.0,
        }

    # ---- requests --------------------------------------------------------------------

    async def run(self, route: str, client: str, make_request: Callable[[], TtsRequest]) -> Result:
        """Validate (make_request raises InputError), queue, synthesize, store; counted,
        timed and written to the access log whatever the outcome."""
        started = time.monotonic()
        self.metrics.request(route)
        req: TtsRequest | None = None
        result: Result | None = None
        status, code = 200, "ok"
        stored: dict[str, str] = {}  # {"output": stem} once the result is being stored
        try:
            req = make_request()
            result = await self._synthesize(req, stored)
            return result
        except TtsError as exc:
            status, code = exc.status, exc.code
            raise
        except asyncio.CancelledError:
            status, code = 499, "client_gone"
            raise
        except Exception as exc:
            log.exception("request failed")
            status, code = 500, "internal_error"
            raise ServiceError(500, "internal_error", f"{type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.monotonic() - started
            self.metrics.observe(route, elapsed)
            if status != 200:
                self.metrics.failure(route, code)
            self.access(route, client, status, code, elapsed, req, result, stored.get("output", ""))

    def refuse(self, route: str, client: str, code: str) -> None:
        """Count and log a request refused before it reached run() (a full Gradio queue)."""
        self.metrics.request(route)
        self.metrics.failure(route, code)
        self.access(route, client, 503, code, 0.0, None, None)

    def access(
        self,
        route: str,
        client: str,
        status: int,
        code: str,
        elapsed: float,
        req: TtsRequest | None,
        result: Result | None,
        output: str = "",
    ) -> None:
        """One JSON line per synthesis request. "output" (the file stem) is on every
        successful line, and on a failed one whose result was already being stored (the
        file may still appear), so lines can be matched with files on the share."""
        line: dict[str, Any] = {
            "ts": _utc(time.time()),
            "client": client,
            "route": route,
            "status": status,
            "code": code,
            "latency_s": round(elapsed, 3),
            "engine": self.engine.name,
        }
        if req is not None:
            line.update(mode=req.mode, seed=req.seed, chars=len(req.text))
        if result is not None:
            line.update(
                output=result.stem,
                stored=result.stored,
                audio_s=round(result.audio.duration, 3),
                queue_wait_s=round(result.queue_wait_s, 3),
            )
        elif output:
            line["output"] = output
        access_log.info(json.dumps(line, ensure_ascii=False))

    async def _synthesize(self, req: TtsRequest, stored: dict[str, str]) -> Result:
        if self.shutting_down:
            raise ServiceError(503, "shutting_down", "the server is shutting down")
        if not (self.model_loaded and self.warmed_up):
            raise ServiceError(503, "not_ready", "the model is loading or warming up")
        if self.saturated():
            raise ServiceError(503, "queue_full", f"queue is full ({self.cfg.queue.max_size} waiting)")
        if self._sem is None:
            raise ServiceError(503, "not_ready", "the server is starting")
        queued = time.monotonic()
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        started = time.monotonic()
        cancel = threading.Event()
        future = run_in_thread(self.engine.synthesize, req, cancel)
        future.add_done_callback(self._release)
        try:
            done, _pending = await asyncio.wait({future}, timeout=self.cfg.queue.timeout_s)
        except asyncio.CancelledError:
            self._cancel(cancel, future, "client went away")
            raise
        if not done:
            self._cancel(cancel, future, "timeout")
            raise ServiceError(
                504, "timeout", f"synthesis took longer than {self.cfg.queue.timeout_s:g} s and was stopped"
            )
        try:
            audio = future.result()
        except TtsError:
            raise
        except SynthesisCancelledError as exc:
            raise ServiceError(504, "timeout", "synthesis was stopped") from exc
        except EngineError as exc:
            raise ServiceError(500, "synthesis_failed", str(exc)) from exc
        except Exception as exc:
            log.exception("synthesis failed")
            raise ServiceError(500, "synthesis_failed", f"{type(exc).__name__}: {exc}") from exc
        synthesis_s = time.monotonic() - started
        return await self._store(req, audio, started - queued, synthesis_s, stored)

    def _release(self, future: asyncio.Future) -> None:
        _consume(future)
        self.in_flight -= 1
        if self._sem is not None:
            self._sem.release()

    def _cancel(self, cancel: threading.Event, future: asyncio.Future, why: str) -> None:
        cancel.set()
        log.warning("synthesis cancelled (%s)", why)
        loop = asyncio.get_running_loop()
        loop.call_later(self.cfg.queue.cancel_grace_s, self._check_stuck, future)

    def _check_stuck(self, future: asyncio.Future) -> None:
        if future.done():
            return
        self.stuck += 1

        def unstuck(_future: asyncio.Future) -> None:
            self.stuck -= 1

        future.add_done_callback(unstuck)
        log.error("a cancelled synthesis is still running after %g s", self.cfg.queue.cancel_grace_s)
        if self.cfg.queue.exit_if_stuck:
            self.on_fatal(3, "synthesis worker stuck")

    def sidecar(self, req: TtsRequest, audio: Audio, stem: str, queue_wait_s: float, synthesis_s: float) -> dict:
        return {
            "id": stem,
            "text": req.text,
            "mode": req.mode,
            "seed": req.seed,
            "engine": self.engine.name,
            "engine_label": self.engine.label,
            "duration": round(audio.duration, 3),
            "sample_rate": audio.sample_rate,
            "node": self.node,
            "created": _utc(time.time()),
            "prompt_text": req.prompt_text,
            "instruct_text": req.instruct_text,
            "text_frontend": req.text_frontend,
            "prompt_sha256": _sha256(req.prompt_wav),
            "prompt_duration": round(req.prompt_info.duration, 3) if req.prompt_info else None,
            "queue_wait_s": round(queue_wait_s, 3),
            "synthesis_s": round(synthesis_s, 3),
            "server_version": __version__,
        }

    async def _store(
        self, req: TtsRequest, audio: Audio, queue_wait_s: float, synthesis_s: float, stored: dict[str, str]
    ) -> Result:
        """delivery direct: outputs.dir, the spool when that fails or hangs. delivery spool:
        the spool only; outputs.dir is not touched (the mover carries the files there)."""
        stem = output_stem(self.node)
        stored["output"] = stem
        wav = audio.wav_bytes()
        sidecar = self.sidecar(req, audio, stem, queue_wait_s, synthesis_s)
        timeout = self.cfg.outputs.write_timeout_s
        spool = self.cfg.outputs.spool_dir
        if self.cfg.outputs.delivery == "direct":
            try:
                direct = {**sidecar, "stored": "outputs"}
                path = await bounded(write_result, self.cfg.outputs.dir, stem, wav, direct, timeout=timeout)
                return Result(req, audio, wav, stem, path, "outputs", queue_wait_s, synthesis_s)
            except (OSError, _GaveUpError) as exc:
                log.warning("cannot write to %s (%s); spooling to %s", self.cfg.outputs.dir, exc, spool)
                self._outputs["outputs"] = False
        try:
            await bounded(ensure_spool, spool, timeout=timeout)
            spooled = {**sidecar, "stored": "spool"}
            path = await bounded(write_result, spool, stem, wav, spooled, timeout=timeout)
        except (OSError, _GaveUpError) as exc:
            if self.cfg.outputs.delivery == "direct":
                log.error("cannot spool to %s either: %s", spool, exc)
                detail = "cannot write the result to the outputs or spool dir"
            else:
                log.error("cannot write to the spool %s: %s", spool, exc)
                detail = "cannot write the result to the spool dir"
            self._outputs["spool"] = False
            raise ServiceError(503, "storage_unavailable", detail) from exc
        self.metrics.spooled.labels(self.engine.name).inc()
        return Result(req, audio, wav, stem, path, "spool", queue_wait_s, synthesis_s)


def is_local_client(host: str | None) -> bool:
    """True for loopback callers (127.0.0.0/8, ::1, ::ffff:127.x). Behind a local reverse
    proxy every caller looks local: do not put one in front of /drain."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return bool(addr.is_loopback or (mapped is not None and mapped.is_loopback))


def ui_result_dir(base: str = "") -> str:
    """A private directory for the copies of results the UI hands to Gradio."""
    return tempfile.mkdtemp(prefix="cosyvoice-tts-ui-", dir=base or None)

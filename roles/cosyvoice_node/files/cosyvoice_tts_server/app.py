"""The ASGI app: FastAPI routes (health, metrics, drain, REST) with the Gradio UI and API
mounted at ``/``.

Routes: GET /livez, GET /readyz, GET /metrics, GET|POST|DELETE /drain, POST /v1/tts, and
Gradio's (UI at /, API ``/synthesize`` through /gradio_api/queue/join; api_open=False so
the queue cannot be bypassed).
"""

import base64
import binascii
import contextlib
import inspect
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from . import __version__
from .config import Config
from .prompts import INSTRUCT_PRESETS
from .service import Service, is_local_client, ui_result_dir
from .tts_request import (
    MODE_LABELS,
    MODES,
    REQUEST_FIELDS,
    SEED_MAX,
    SEED_MIN,
    TtsError,
    build_request,
    input_error,
)

UI_RESULT_MAX_AGE_S = 600


class QueueGate:
    """ASGI middleware: refuse new Gradio queue joins (503, gradio_client QueueError) while
    the shared waiting room is full or the server is shutting down. Gradio's own max_size
    sees only its own queue; this makes REST waiters count for Gradio too."""

    def __init__(self, app: Any, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope.get("path", "")
            if path.endswith("/queue/join") or "/gradio_api/call/" in path:
                reason = self.service.join_refusal()
                if reason:
                    client = (scope.get("client") or ("-", 0))[0]
                    code = "shutting_down" if self.service.shutting_down else "queue_full"
                    self.service.refuse("gradio", client, code)
                    response = JSONResponse({"detail": reason, "error": code}, 503, headers={"Retry-After": "1"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _supported(fn: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep the keyword arguments this Gradio release knows (5.4 in the CosyVoice env, 6.x)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def _prune(directory: str, max_age: float) -> None:
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > max_age:
                    os.unlink(entry.path)


def build_ui(cfg: Config, service: Service, result_dir: str) -> gr.Blocks:
    engine = service.engine
    title = cfg.ui.title if not engine.is_test_engine else f"{cfg.ui.title} — {engine.label}"
    limits = cfg.limits

    async def synthesize(
        text: str,
        mode: str,
        prompt_wav: str | None,
        prompt_text: str,
        instruct_text: str,
        seed: float | None,
        text_frontend: bool,
        request: gr.Request,
    ) -> tuple[str, dict[str, Any]]:
        client = request.client.host if request is not None and request.client else "-"

        fields = {"text": text, "mode": mode, "seed": seed, "prompt_text": prompt_text}
        fields.update(instruct_text=instruct_text, text_frontend=bool(text_frontend))

        def make():
            return build_request(**fields, prompt_wav=prompt_wav, limits=limits)

        try:
            result = await service.run("gradio", client, make)
        except TtsError as exc:
            raise gr.Error(
                **_supported(gr.Error, {"message": exc.gradio_message(), "print_exception": False})
            ) from None
        _prune(result_dir, UI_RESULT_MAX_AGE_S)
        ui_copy = os.path.join(result_dir, f"{result.stem}.wav")
        with open(ui_copy, "wb") as fh:
            fh.write(result.wav)
        info = {
            "output": result.stem,
            "stored": result.stored,
            "seed": result.request.seed,
            "mode": result.request.mode,
            "engine": engine.name,
            "node": service.node,
            "duration": round(result.audio.duration, 3),
            "sample_rate": result.audio.sample_rate,
        }
        return ui_copy, info

    with gr.Blocks(
        **_supported(gr.Blocks, {"title": title, "analytics_enabled": False, "delete_cache": (600, 3600)})
    ) as demo:
        gr.Markdown(f"# {title}")
        if engine.is_test_engine:
            gr.Markdown(
                f"**{engine.label}.** Speech comes from espeak-ng on the CPU, for the lab and CI; prompt clips "
                "are checked as for CosyVoice but no voice is cloned."
            )
        with gr.Row():
            with gr.Column():
                text_in = gr.Textbox(label=f"Text (up to {limits.max_text_chars} characters)", lines=4)
                mode_in = gr.Radio(choices=[(MODE_LABELS[m], m) for m in MODES], value="zero_shot", label="Mode")
                prompt_in = gr.Audio(
                    label=f"Prompt clip ({limits.prompt_min_s:g}-{limits.prompt_max_s:g} s, WAV)",
                    type="filepath",
                    sources=["upload", "microphone"],
                )
                prompt_text_in = gr.Textbox(label="Prompt transcript (zero-shot)", lines=2)
                instruct_in = gr.Dropdown(
                    choices=list(INSTRUCT_PRESETS),
                    value=INSTRUCT_PRESETS[0][1],
                    allow_custom_value=True,
                    label="Instruction (instruct mode): a dialect or style, or your own text",
                )
                seed_in = gr.Number(value=1, precision=0, label=f"Seed ({SEED_MIN}..{SEED_MAX})")
                frontend_in = gr.Checkbox(
                    value=True,
                    label="Text frontend (normalisation); turn off to pass [h][ào] / [M][AY0] markup verbatim",
                )
                button = gr.Button("Synthesize", variant="primary")
            with gr.Column():
                audio_out = gr.Audio(label="Result", type="filepath")
                info_out = gr.JSON(label="Details")
        button.click(
            synthesize,
            inputs=[text_in, mode_in, prompt_in, prompt_text_in, instruct_in, seed_in, frontend_in],
            outputs=[audio_out, info_out],
            api_name="synthesize",
            concurrency_limit=cfg.queue.concurrency,
        )
    demo.queue(max_size=cfg.queue.max_size, default_concurrency_limit=cfg.queue.concurrency, api_open=False)
    queue = getattr(demo, "_queue", None)
    if queue is not None:  # Gradio's idle polling (1 ms, 10 ms), see ui.queue_poll_s
        if hasattr(queue, "sleep_when_free"):
            queue.sleep_when_free = cfg.ui.queue_poll_s
        if hasattr(queue, "progress_update_sleep_when_free"):
            queue.progress_update_sleep_when_free = max(cfg.ui.queue_poll_s, 0.1)
    return demo


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than limit (read no further than that)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _rest_request(body: bytes | None, max_upload: int, scratch: str, cfg: Config):
    """Build a TtsRequest from the POST /v1/tts JSON body (see README)."""
    if body is None:
        raise input_error("prompt_too_large", f"request body larger than {max_upload} bytes")
    try:
        data = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise input_error("bad_request", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise input_error("bad_request", "body must be a JSON object")
    unknown = set(data) - {*REQUEST_FIELDS, "prompt_wav_b64"}
    if unknown:
        raise input_error("bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
    prompt_path = None
    encoded = data.get("prompt_wav_b64")
    if encoded:
        if not isinstance(encoded, str):
            raise input_error("bad_request", "prompt_wav_b64 must be a base64 string")
        try:
            clip = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise input_error("bad_request", "prompt_wav_b64 is not valid base64") from None
        prompt_path = os.path.join(scratch, "prompt.wav")
        with open(prompt_path, "wb") as fh:
            fh.write(clip)
    fields = {name: data[name] for name in REQUEST_FIELDS if name in data}
    return build_request(**fields, prompt_wav=prompt_path, limits=cfg.limits)


def _error_response(exc: TtsError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return JSONResponse(exc.body(), exc.status, headers=headers)


def create_app(cfg: Config, service: Service) -> FastAPI:
    result_dir = ui_result_dir(cfg.ui.temp_dir)
    demo = build_ui(cfg, service, result_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield

    app = FastAPI(title="cosyvoice-tts", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    max_upload = cfg.limits.max_upload_mb * 1024 * 1024

    @app.get("/livez")
    async def livez() -> dict[str, Any]:
        return {
            "status": "alive",
            "engine": service.engine.name,
            "node": service.node,
            "uptime_s": round(time.time() - service.started, 1),
        }

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready, body = await service.readiness()
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/drain")
    async def drain_state() -> dict[str, Any]:
        return {"draining": bool(service.drain_reasons()), "reasons": service.drain_reasons()}

    @app.post("/drain")
    async def drain(request: Request) -> JSONResponse:
        if not is_local_client(request.client.host if request.client else None):
            return JSONResponse({"error": "forbidden", "detail": "drain is for localhost callers only"}, 403)
        service.api_drain = True
        return JSONResponse({"draining": True, "reasons": service.drain_reasons()})

    @app.delete("/drain")
    async def undrain(request: Request) -> JSONResponse:
        if not is_local_client(request.client.host if request.client else None):
            return JSONResponse({"error": "forbidden", "detail": "drain is for localhost callers only"}, 403)
        service.api_drain = False
        reasons = service.drain_reasons()
        return JSONResponse({"draining": bool(reasons), "reasons": reasons})

    @app.post("/v1/tts")
    async def tts(request: Request) -> Response:
        client = request.client.host if request.client else "-"
        # base64 grows a clip by 4/3; allow some room for the other fields.
        body = await _read_capped(request, max_upload * 4 // 3 + 256 * 1024)
        scratch = ui_result_dir(cfg.ui.temp_dir)
        try:
            result = await service.run("rest", client, lambda: _rest_request(body, max_upload, scratch, cfg))
        except TtsError as exc:
            return _error_response(exc)
        finally:
            with contextlib.suppress(OSError):
                for entry in os.scandir(scratch):
                    os.unlink(entry.path)
                os.rmdir(scratch)
        headers = {
            "X-TTS-Output": result.stem,
            "X-TTS-Stored": result.stored,
            "X-TTS-Seed": str(result.request.seed),
            "X-TTS-Engine": service.engine.name,
            "X-TTS-Node": service.node,
            "X-TTS-Duration": f"{result.audio.duration:.3f}",
        }
        return Response(result.wav, media_type="audio/wav", headers=headers)

    app.add_middleware(QueueGate, service=service)
    mount_kwargs = {"max_file_size": f"{cfg.limits.max_upload_mb}mb", "show_error": True, "ssr_mode": False}
    app = gr.mount_gradio_app(app, demo, path="/", **_supported(gr.mount_gradio_app, mount_kwargs))

    def gradio_waiting() -> int:
        queue = getattr(demo, "_queue", None)
        return len(queue) if queue is not None else 0

    service.gradio_waiting = gradio_waiting
    return app

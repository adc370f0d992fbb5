"""``python -m cosyvoice_tts_server [--config FILE] [--check-config] [--set KEY=VALUE ...]``

Exit status: 0 after a clean stop (SIGTERM included), 2 for a bad setting (one line on
stderr naming it), 1 when the engine cannot load or warm up, 3 when a cancelled synthesis
would not stop (queue.exit_if_stuck).
"""

import argparse
import asyncio
import logging
import logging.handlers
import os
import signal
import sys
from typing import Any

from . import __version__
from .config import Config, ConfigError, describe_settings, load_config, parse_overrides, warmup_prompt_wav

PROG = "cosyvoice-tts"
log = logging.getLogger("cosyvoice_tts")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cosyvoice_tts_server", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("COSYVOICE_TTS_CONFIG", ""), help="YAML settings file")
    parser.add_argument("--check-config", action="store_true", help="validate the settings and exit")
    parser.add_argument("--list-settings", action="store_true", help="print every setting, its variable, default")
    parser.add_argument("--host", help="listen.host")
    parser.add_argument("--port", help="listen.port")
    parser.add_argument("--engine", help="engine: espeak or cosyvoice")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any setting, e.g. queue.max_size=4"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    out = parse_overrides(args.set)
    for key, value in (("listen.host", args.host), ("listen.port", args.port), ("engine", args.engine)):
        if value is not None:
            out[key] = value
    return out


def setup_logging(cfg: Config) -> None:
    logging.basicConfig(
        level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    access = logging.getLogger("cosyvoice_tts.access")
    access.propagate = False
    access.setLevel(logging.INFO)
    if cfg.access_log == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
    else:
        os.makedirs(os.path.dirname(cfg.access_log), exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(cfg.access_log, encoding="utf-8")  # logrotate-friendly
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)


def make_engine(cfg: Config) -> Any:
    if cfg.engine == "espeak":
        from .engine_espeak import EspeakEngine  # noqa: PLC0415

        return EspeakEngine(cfg.espeak)
    from .engine_cosyvoice import CosyVoiceEngine  # noqa: PLC0415

    return CosyVoiceEngine(cfg.cosyvoice, warmup_prompt_wav(cfg), cfg.cosyvoice.warmup_prompt_text)


def serve(cfg: Config) -> int:
    # Before Gradio is imported (the package __init__ already turned analytics off).
    if cfg.ui.temp_dir:
        os.makedirs(cfg.ui.temp_dir, exist_ok=True)
        os.environ["GRADIO_TEMP_DIR"] = cfg.ui.temp_dir
    no_proxy = os.environ.get("NO_PROXY", "")
    if "127.0.0.1" not in no_proxy:
        os.environ["NO_PROXY"] = ",".join(p for p in (no_proxy, "localhost,127.0.0.1,::1") if p)
    import uvicorn  # noqa: PLC0415

    from .app import create_app  # noqa: PLC0415
    from .service import Service  # noqa: PLC0415

    service = Service(cfg, make_engine(cfg))
    app = create_app(cfg, service)

    class NodeServer(uvicorn.Server):
        """SIGTERM: drain first (refuse new work, let admitted work finish within
        shutdown.grace_s, linger shutdown.linger_s for result downloads), then stop."""

        exit_code = 0
        _stopping = False
        _loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets=None):  # type: ignore[no-untyped-def]
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets=sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if sig == signal.SIGTERM and not self._stopping and self._loop is not None:
                self._stopping = True
                self._loop.call_soon_threadsafe(self._start_graceful)
                return
            super().handle_exit(sig, frame)

        def _start_graceful(self) -> None:
            service.begin_shutdown()
            self._graceful_task = asyncio.ensure_future(self._graceful())

        async def _graceful(self) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + cfg.shutdown.grace_s
            while not service.idle() and loop.time() < deadline:
                await asyncio.sleep(0.1)
            if service.idle():
                await asyncio.sleep(min(cfg.shutdown.linger_s, max(0.0, deadline - loop.time())))
            else:
                log.warning("shutdown.grace_s (%g s) ran out with work left", cfg.shutdown.grace_s)
            # The admitted work is done: what is still open now is long-lived streams (Gradio
            # heartbeats from open browser tabs), which would otherwise hold the exit up.
            self.config.timeout_graceful_shutdown = 1
            self.should_exit = True

        def fatal(self, code: int, why: str) -> None:
            log.error("exiting with status %d: %s", code, why)
            self.exit_code = code
            self.config.timeout_graceful_shutdown = 5
            self.should_exit = True

    config = uvicorn.Config(
        app,
        host=cfg.listen.host,
        port=cfg.listen.port,
        workers=1,
        log_config=None,
        access_log=cfg.http_access_log,
        timeout_graceful_shutdown=max(1, int(cfg.shutdown.grace_s)),
        lifespan="on",
    )
    server = NodeServer(config)

    def on_fatal(code: int, why: str) -> None:
        if server._loop is None:
            os._exit(code)
        server._loop.call_soon_threadsafe(server.fatal, code, why)

    service.on_fatal = on_fatal
    log.info(
        "cosyvoice-tts %s: engine %s on %s:%d, node %s",
        __version__,
        cfg.engine,
        cfg.listen.host,
        cfg.listen.port,
        service.node,
    )
    server.run()
    if not server.started and server.exit_code == 0:
        return 1  # could not bind or start up
    return server.exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_settings:
        for key, env, default in describe_settings():
            print(f"{key}\t{env}\t{default!r}")
        return 0
    try:
        cfg = load_config(args.config or None, overrides_from(args))
    except ConfigError as exc:
        print(f"{PROG}: invalid setting {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"{PROG}: config OK (engine {cfg.engine}, listen {cfg.listen.host}:{cfg.listen.port})")
        return 0
    setup_logging(cfg)
    return serve(cfg)


if __name__ == "__main__":
    sys.exit(main())

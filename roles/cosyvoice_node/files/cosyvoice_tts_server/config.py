"""Server settings: defaults, YAML file, environment and CLI overrides, validation.

Precedence (last wins): built-in defaults < YAML file < ``COSYVOICE_TTS_<SECTION>_<KEY>``
environment variables < ``--set section.key=value`` (and ``--host/--port/--engine``).
Every problem is reported as a ConfigError naming the setting, e.g.
``queue.max_size: must be an integer in 1..10000 (got 0)``.
"""

import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

ENGINES = ("espeak", "cosyvoice")
DELIVERIES = ("direct", "spool")
MODEL_YAMLS = ("cosyvoice3.yaml", "cosyvoice2.yaml", "cosyvoice.yaml")
ENV_PREFIX = "COSYVOICE_TTS_"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class ConfigError(Exception):
    """A setting is wrong; str() is one line that names it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class ListenConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a node behind LVS listens on all addresses
    port: int = 7860


@dataclass(frozen=True)
class QueueConfig:
    concurrency: int = 1  # syntheses at once in this process (one GPU process: keep 1)
    max_size: int = 8  # requests waiting for a slot; one more gets 503 / QueueError
    timeout_s: float = 60.0  # synthesis time limit per request, after it got a slot
    cancel_grace_s: float = 10.0  # a timed-out worker must stop within this, else "stuck"
    exit_if_stuck: bool = True  # exit (status 3) so systemd restarts a wedged process


@dataclass(frozen=True)
class LimitsConfig:
    max_text_chars: int = 1000
    prompt_min_s: float = 1.0
    prompt_max_s: float = 30.0
    max_upload_mb: int = 20  # prompt clip size (Gradio upload, REST body)


@dataclass(frozen=True)
class OutputsConfig:
    dir: str = "/var/lib/cosyvoice-tts/outputs"  # the NFS mount in production
    spool_dir: str = "/var/spool/cosyvoice-tts"  # local: the fallback (direct) or every result (spool)
    # direct: write to dir, fall back to spool_dir. spool: write to spool_dir only and never
    # touch dir (a hung hard NFS mount blocks every writer); the mover carries results to dir.
    delivery: str = "direct"
    write_timeout_s: float = 10.0  # a hung NFS write falls back to the spool after this
    probe_interval_s: float = 5.0  # /readyz re-checks writability at most this often


@dataclass(frozen=True)
class MoverConfig:
    """python -m cosyvoice_tts_server.mover: carries results from outputs.spool_dir to outputs.dir."""

    interval_s: float = 2.0  # a pass over the spool this often
    max_backoff_s: float = 30.0  # while outputs.dir is unavailable the wait doubles up to this
    require_mountpoint: bool = False  # true: outputs.dir must be a mount point, else it counts as down


@dataclass(frozen=True)
class ShutdownConfig:
    grace_s: float = 30.0  # SIGTERM: queued and in-flight work may finish within this
    linger_s: float = 2.0  # then keep serving this long so clients fetch their results


@dataclass(frozen=True)
class EspeakConfig:
    binary: str = "espeak-ng"
    voice: str = "en"
    cjk_voice: str = "cmn"  # used when the text contains CJK characters
    # TEST ONLY: sleep this long inside the synthesis subprocess for texts containing
    # test_delay_marker (every text when the marker is empty). 0 = off.
    test_delay_s: float = 0.0
    test_delay_marker: str = "[slow]"


@dataclass(frozen=True)
class CosyvoiceConfig:
    model_dir: str = "/opt/cosyvoice/pretrained_models/Fun-CosyVoice3-0.5B"
    repo_dir: str = ""  # CosyVoice checkout; added to sys.path with third_party/Matcha-TTS
    load_jit: bool = False
    load_trt: bool = False
    fp16: bool = False
    warmup_prompt_wav: str = ""  # default: <repo_dir>/asset/zero_shot_prompt.wav
    warmup_prompt_text: str = "希望你以后能够做的比我还好呦。"


@dataclass(frozen=True)
class UiConfig:
    title: str = "CosyVoice TTS"
    temp_dir: str = ""  # GRADIO_TEMP_DIR (uploads, result copies); "" = Gradio's default
    # How often Gradio's idle queue loops wake up. Gradio polls every 1 ms (and its progress
    # loop every 10 ms), about 1100 wake-ups a second on an idle node; 20 ms adds at most
    # 20 ms to a job that takes seconds.
    queue_poll_s: float = 0.02


@dataclass(frozen=True)
class Config:
    engine: str = "cosyvoice"
    node_name: str = ""  # "" = the hostname
    log_level: str = "info"
    access_log: str = "-"  # path of the one-line-per-request log; "-" = stdout
    http_access_log: bool = False  # uvicorn's own per-HTTP-request log
    drain_file: str = "/var/lib/cosyvoice-tts/drain"  # present = draining
    warmup_text: str = "Warm-up."
    listen: ListenConfig = field(default_factory=ListenConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    mover: MoverConfig = field(default_factory=MoverConfig)
    espeak: EspeakConfig = field(default_factory=EspeakConfig)
    cosyvoice: CosyvoiceConfig = field(default_factory=CosyvoiceConfig)
    ui: UiConfig = field(default_factory=UiConfig)


# (low, high) for numbers, checked after the types.
RANGES: dict[str, tuple[float, float]] = {
    "listen.port": (1, 65535),
    "queue.concurrency": (1, 64),
    "queue.max_size": (1, 10000),
    "queue.timeout_s": (1, 3600),
    "queue.cancel_grace_s": (0.1, 600),
    "limits.max_text_chars": (1, 100000),
    "limits.prompt_min_s": (0, 600),
    "limits.prompt_max_s": (0.1, 600),
    "limits.max_upload_mb": (1, 1024),
    "outputs.write_timeout_s": (0.1, 600),
    "outputs.probe_interval_s": (0, 3600),
    "shutdown.grace_s": (0, 3600),
    "shutdown.linger_s": (0, 60),
    "ui.queue_poll_s": (0.001, 1),
    "espeak.test_delay_s": (0, 3600),
    "mover.interval_s": (0.05, 3600),
    "mover.max_backoff_s": (0.05, 86400),
}
ABSOLUTE_PATHS = ("outputs.dir", "outputs.spool_dir", "drain_file")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _sections(cls=Config) -> dict[str, Any]:
    """{"engine": str, "listen": {"host": str, ...}, ...}: the schema as nested field types."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        out[f.name] = _sections(f.type) if dataclasses.is_dataclass(f.type) else f.type
    return out


def setting_keys() -> dict[str, type]:
    """Every setting as a dotted key and its type."""
    keys: dict[str, type] = {}
    for name, kind in _sections().items():
        if isinstance(kind, dict):
            keys.update({f"{name}.{sub}": t for sub, t in kind.items()})
        else:
            keys[name] = kind
    return keys


def env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", "_").upper()


def _coerce(key: str, kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"must be true or false (got {value!r})")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"must be an integer (got {value!r})")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(key, f"must be a number (got {value!r})")
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(key, f"must be a string (got {value!r})")


def _flatten(data: Any, where: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(where, "the file must hold a mapping of settings")
    keys = setting_keys()
    sections = {k.split(".", 1)[0] for k in keys if "." in k}
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if name in sections:
            if not isinstance(value, dict):
                raise ConfigError(str(name), "must be a mapping")
            for sub, subvalue in value.items():
                flat[f"{name}.{sub}"] = subvalue
        else:
            flat[str(name)] = value
    for key in flat:
        if key not in keys:
            raise ConfigError(key, "unknown setting")
    return flat


def _parse_scalar(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"cannot parse {text!r}") from exc


def load_config(
    path: str | None = None,
    overrides: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
    check_engine: bool = True,
) -> Config:
    """Build and validate the settings; raises ConfigError. check_engine=False (the mover)
    skips the checks of the engine's files (model dir, warm-up clip), which it does not use."""
    keys = setting_keys()
    flat: dict[str, Any] = {}
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "bad YAML"
            raise ConfigError("config", f"{path} is not valid YAML: {first}") from exc
        flat.update(_flatten(data, "config"))
    env = os.environ if environ is None else environ
    for key in keys:
        if env_name(key) in env:
            flat[key] = _parse_scalar(key, env[env_name(key)])
    for key, text in (overrides or {}).items():
        if key not in keys:
            raise ConfigError(key, "unknown setting")
        flat[key] = _parse_scalar(key, text) if isinstance(text, str) else text
    values = {key: _coerce(key, keys[key], value) for key, value in flat.items()}
    cfg = _build(values)
    validate(cfg, check_engine=check_engine)
    return cfg


def _build(values: dict[str, Any]) -> Config:
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if "." in key:
            section, sub = key.split(".", 1)
            nested.setdefault(section, {})[sub] = value
        else:
            top[key] = value
    for f in dataclasses.fields(Config):
        if f.name in nested:
            top[f.name] = f.type(**nested[f.name])
    return Config(**top)


def get(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ConfigError("listen.host", f"must be an IP address or a host name (got {host!r})") from None


def _check_model_dir(model_dir: str) -> None:
    if not model_dir:
        raise ConfigError("cosyvoice.model_dir", "must be set for engine cosyvoice")
    if not os.path.isdir(model_dir):
        raise ConfigError("cosyvoice.model_dir", f"{model_dir} is not a directory")
    if not any(os.path.isfile(os.path.join(model_dir, name)) for name in MODEL_YAMLS):
        raise ConfigError("cosyvoice.model_dir", f"{model_dir} holds none of {', '.join(MODEL_YAMLS)}")


def warmup_prompt_wav(cfg: Config) -> str:
    if cfg.cosyvoice.warmup_prompt_wav:
        return cfg.cosyvoice.warmup_prompt_wav
    if cfg.cosyvoice.repo_dir:
        return os.path.join(cfg.cosyvoice.repo_dir, "asset", "zero_shot_prompt.wav")
    return ""


def validate(cfg: Config, check_engine: bool = True) -> None:
    if cfg.engine not in ENGINES:
        raise ConfigError("engine", f"unknown engine {cfg.engine!r} (use one of: {', '.join(ENGINES)})")
    for key, (low, high) in RANGES.items():
        value = get(cfg, key)
        if not low <= value <= high:
            kind = "an integer" if isinstance(value, int) else "a number"
            raise ConfigError(key, f"must be {kind} in {low:g}..{high:g} (got {value:g})")
    _check_host(cfg.listen.host)
    if cfg.limits.prompt_min_s >= cfg.limits.prompt_max_s:
        raise ConfigError("limits.prompt_min_s", "must be below limits.prompt_max_s")
    if cfg.log_level.lower() not in LOG_LEVELS:
        raise ConfigError("log_level", f"must be one of {', '.join(LOG_LEVELS)} (got {cfg.log_level!r})")
    for key in ABSOLUTE_PATHS:
        if not os.path.isabs(get(cfg, key)):
            raise ConfigError(key, f"must be an absolute path (got {get(cfg, key)!r})")
    if cfg.access_log != "-" and not os.path.isabs(cfg.access_log):
        raise ConfigError("access_log", f"must be '-' or an absolute path (got {cfg.access_log!r})")
    if os.path.abspath(cfg.outputs.dir) == os.path.abspath(cfg.outputs.spool_dir):
        raise ConfigError("outputs.spool_dir", "must differ from outputs.dir")
    if cfg.outputs.delivery not in DELIVERIES:
        raise ConfigError("outputs.delivery", f"must be one of {', '.join(DELIVERIES)} (got {cfg.outputs.delivery!r})")
    if cfg.mover.max_backoff_s < cfg.mover.interval_s:
        raise ConfigError("mover.max_backoff_s", "must not be below mover.interval_s")
    if not cfg.warmup_text.strip():
        raise ConfigError("warmup_text", "must not be empty")
    if cfg.engine == "cosyvoice" and check_engine:
        _check_model_dir(cfg.cosyvoice.model_dir)
        if cfg.cosyvoice.repo_dir and not os.path.isdir(cfg.cosyvoice.repo_dir):
            raise ConfigError("cosyvoice.repo_dir", f"{cfg.cosyvoice.repo_dir} is not a directory")
        wav = warmup_prompt_wav(cfg)
        if not wav:
            raise ConfigError("cosyvoice.warmup_prompt_wav", "must be set (or set cosyvoice.repo_dir)")
        if not os.path.isfile(wav):
            raise ConfigError("cosyvoice.warmup_prompt_wav", f"{wav} is not a file")
    if cfg.engine == "espeak" and not cfg.espeak.binary.strip():
        raise ConfigError("espeak.binary", "must not be empty")


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` arguments as {key: text}; raises ConfigError naming --set."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE (got {item!r})")
        out[key.strip()] = value
    return out


def describe_settings() -> list[tuple[str, str, Any]]:
    """(dotted key, environment variable, default) for every setting: for --help-settings."""
    default = Config()
    return [(key, env_name(key), get(default, key)) for key in setting_keys()]

"""A synthesis request and its validation, shared by the Gradio and REST paths.

Each input problem is an InputError with an HTTP status and a short code. The REST
endpoint answers ``{"error": code, "detail": message}`` with that status; the Gradio
endpoint raises ``gr.Error("[<status> <code>] <message>")`` (gradio_client: AppError).
"""

import random
from dataclasses import dataclass
from typing import Any

from .audio import ClipInfo, UnsupportedAudioError, probe_clip
from .config import LimitsConfig

MODES = ("zero_shot", "cross_lingual", "instruct")
MODE_LABELS = {
    "zero_shot": "3-second voice cloning (zero-shot)",
    "cross_lingual": "Cross-lingual",
    "instruct": "Instruct (dialect, style)",
}
SEED_MIN, SEED_MAX = 1, 100_000_000
# What a client may send (the REST JSON keys; the Gradio API takes them in this order).
REQUEST_FIELDS = ("text", "mode", "seed", "prompt_text", "instruct_text", "text_frontend")


class TtsError(Exception):
    """A request that cannot be served: status is the HTTP status, code a stable name."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def gradio_message(self) -> str:
        return f"[{self.status} {self.code}] {self.message}"

    def body(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.message}


class InputError(TtsError):
    """The client sent something wrong (4xx)."""


# code -> HTTP status: the table the README documents.
ERROR_STATUS = {
    "bad_request": 400,
    "empty_text": 400,
    "bad_mode": 400,
    "mode_unsupported": 400,
    "bad_seed": 400,
    "seed_out_of_range": 400,
    "prompt_missing": 400,
    "prompt_text_missing": 400,
    "instruct_missing": 400,
    "text_too_long": 413,
    "prompt_too_large": 413,
    "prompt_unsupported_format": 415,
    "prompt_too_short": 422,
    "prompt_too_long": 422,
}


def input_error(code: str, message: str) -> InputError:
    return InputError(ERROR_STATUS[code], code, message)


@dataclass(frozen=True)
class TtsRequest:
    text: str
    mode: str
    seed: int
    prompt_wav: str | None = None  # a local file path
    prompt_text: str = ""  # transcript of the prompt clip (zero_shot)
    instruct_text: str = ""  # instruction (instruct), e.g. 请用四川话表达。
    text_frontend: bool = True  # False: no text normalisation, markup passes verbatim
    prompt_info: ClipInfo | None = None


def parse_seed(value: Any) -> int:
    """A seed from the client; None or "" picks a random one (reported back)."""
    if value is None or value == "":
        return random.randint(SEED_MIN, SEED_MAX)  # noqa: S311 - a synthesis seed, not a secret
    if isinstance(value, bool):
        raise input_error("bad_seed", f"seed must be an integer {SEED_MIN}..{SEED_MAX}")
    if isinstance(value, float):
        if not value.is_integer():
            raise input_error("bad_seed", f"seed must be an integer {SEED_MIN}..{SEED_MAX} (got {value})")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise input_error("bad_seed", f"seed must be an integer {SEED_MIN}..{SEED_MAX} (got {value!r})") from None
    if not isinstance(value, int):
        raise input_error("bad_seed", f"seed must be an integer {SEED_MIN}..{SEED_MAX}")
    if not SEED_MIN <= value <= SEED_MAX:
        raise input_error("seed_out_of_range", f"seed must be in {SEED_MIN}..{SEED_MAX} (got {value})")
    return value


def check_prompt_clip(path: str, limits: LimitsConfig) -> ClipInfo:
    try:
        info = probe_clip(path)
    except UnsupportedAudioError as exc:
        raise input_error("prompt_unsupported_format", f"prompt audio: unsupported format: {exc}") from None
    except OSError as exc:
        raise input_error("prompt_unsupported_format", f"prompt audio: cannot read it ({exc.strerror})") from None
    if info.duration < limits.prompt_min_s:
        raise input_error(
            "prompt_too_short", f"prompt audio is {info.duration:.2f} s; it must be at least {limits.prompt_min_s:g} s"
        )
    if info.duration > limits.prompt_max_s:
        raise input_error(
            "prompt_too_long", f"prompt audio is {info.duration:.2f} s; it must be at most {limits.prompt_max_s:g} s"
        )
    return info


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise input_error("bad_request", f"{name} must be a string")
    return value


def build_request(
    *,
    text: Any = None,
    mode: Any = None,
    seed: Any = None,
    prompt_wav: str | None = None,
    prompt_text: Any = "",
    instruct_text: Any = "",
    text_frontend: Any = True,
    limits: LimitsConfig,
) -> TtsRequest:
    """Validate what a client sent; raises InputError. Cheap checks first, the clip last."""
    text = _text(text, "text")
    if not text.strip():
        raise input_error("empty_text", "text is empty")
    if len(text) > limits.max_text_chars:
        raise input_error("text_too_long", f"text has {len(text)} characters; the limit is {limits.max_text_chars}")
    mode = mode or "zero_shot"
    if mode not in MODES:
        raise input_error("bad_mode", f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    seed = parse_seed(seed)
    prompt_text = _text(prompt_text, "prompt_text").strip()
    instruct_text = _text(instruct_text, "instruct_text").strip()
    if len(prompt_text) > limits.max_text_chars or len(instruct_text) > limits.max_text_chars:
        raise input_error("text_too_long", f"prompt_text and instruct_text are limited to {limits.max_text_chars}")
    if not isinstance(text_frontend, bool):
        raise input_error("bad_request", "text_frontend must be true or false")
    if mode == "zero_shot" and not prompt_text:
        raise input_error("prompt_text_missing", "zero_shot needs prompt_text: the transcript of the prompt clip")
    if mode == "instruct" and not instruct_text:
        raise input_error("instruct_missing", "instruct needs instruct_text, e.g. 请用四川话表达。")
    if not prompt_wav:
        raise input_error(
            "prompt_missing", f"{mode} needs a prompt clip ({limits.prompt_min_s:g}-{limits.prompt_max_s:g} s)"
        )
    info = check_prompt_clip(prompt_wav, limits)
    return TtsRequest(
        text=text,
        mode=mode,
        seed=seed,
        prompt_wav=prompt_wav,
        prompt_text=prompt_text,
        instruct_text=instruct_text,
        text_frontend=text_frontend,
        prompt_info=info,
    )

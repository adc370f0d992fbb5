"""CosyVoice prompt building and call arguments: pure functions, no torch needed.

CosyVoice3 wants ``<|endofprompt|>`` in every prompt:
- zero-shot prompt_text: ``You are a helpful assistant.<|endofprompt|>`` + transcript;
- cross-lingual tts_text: ``You are a helpful assistant.<|endofprompt|>`` + text;
- instruct2 instruct_text: ``You are a helpful assistant. <instruction><|endofprompt|>``.
CosyVoice2 takes the bare transcript, the bare text and ``<instruction><|endofprompt|>``.
A value that already holds ``<|endofprompt|>`` is passed as given (an expert override).
Pronunciation markup in the text (pinyin ``[h][ào]``, CMU phonemes ``[M][AY0]``) is passed
through untouched; ``text_frontend=False`` keeps the text normaliser from mangling it.
"""

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .tts_request import InputError, TtsRequest

SYSTEM_PROMPT = "You are a helpful assistant."
END_OF_PROMPT = "<|endofprompt|>"
KINDS = ("cosyvoice3", "cosyvoice2", "cosyvoice")

# (label, instruction) offered in the UI; any other instruction text works too.
DIALECTS = (
    "广东话",
    "东北话",
    "甘肃话",
    "贵州话",
    "河南话",
    "湖北话",
    "湖南话",
    "江西话",
    "闽南话",
    "宁夏话",
    "山西话",
    "陕西话",
    "山东话",
    "上海话",
    "四川话",
    "天津话",
    "云南话",
)
_DIALECT_LABELS = {"广东话": "粤语 / 广东话 (Cantonese)", "四川话": "四川话 (Sichuanese)"}
INSTRUCT_PRESETS: tuple[tuple[str, str], ...] = (
    *((_DIALECT_LABELS.get(d, d), f"请用{d}表达。") for d in DIALECTS),
    ("语速快 (fast)", "请用尽可能快地语速说一句话。"),
    ("语速慢 (slow)", "请用尽可能慢地语速说一句话。"),
    ("开心 (happy)", "请非常开心地说一句话。"),
    ("伤心 (sad)", "请非常伤心地说一句话。"),
    ("生气 (angry)", "请非常生气地说一句话。"),
    ("Loud", "Please say a sentence as loudly as possible."),
    ("Soft", "Please say a sentence in a very soft voice."),
)


def model_kind(file_names: Iterable[str]) -> str:
    """The model family from the names in a model directory (as AutoModel decides it)."""
    names = set(file_names)
    for kind in KINDS:
        if f"{kind}.yaml" in names:
            return kind
    raise ValueError("no cosyvoice3.yaml, cosyvoice2.yaml or cosyvoice.yaml in the model directory")


def zero_shot_prompt_text(transcript: str, kind: str = "cosyvoice3") -> str:
    transcript = transcript.strip()
    if kind != "cosyvoice3" or END_OF_PROMPT in transcript:
        return transcript
    return f"{SYSTEM_PROMPT}{END_OF_PROMPT}{transcript}"


def cross_lingual_text(text: str, kind: str = "cosyvoice3") -> str:
    if kind != "cosyvoice3" or END_OF_PROMPT in text:
        return text
    return f"{SYSTEM_PROMPT}{END_OF_PROMPT}{text}"


def instruct_text(instruction: str, kind: str = "cosyvoice3") -> str:
    instruction = instruction.strip()
    if END_OF_PROMPT in instruction:
        return instruction
    if kind == "cosyvoice3":
        return f"{SYSTEM_PROMPT} {instruction}{END_OF_PROMPT}"
    return f"{instruction}{END_OF_PROMPT}"


@dataclass(frozen=True)
class InferenceCall:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


def build_inference_call(req: TtsRequest, kind: str = "cosyvoice3", stream: bool = False) -> InferenceCall:
    """Which AutoModel method to call with which arguments for a validated request."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    kwargs = {"stream": stream, "text_frontend": req.text_frontend}
    if req.mode == "zero_shot":
        args = (req.text, zero_shot_prompt_text(req.prompt_text, kind), req.prompt_wav)
        return InferenceCall("inference_zero_shot", args, kwargs)
    if req.mode == "cross_lingual":
        return InferenceCall("inference_cross_lingual", (cross_lingual_text(req.text, kind), req.prompt_wav), kwargs)
    if req.mode == "instruct":
        if kind == "cosyvoice":
            raise InputError(400, "mode_unsupported", "instruct needs a CosyVoice2 or CosyVoice3 model")
        args = (req.text, instruct_text(req.instruct_text, kind), req.prompt_wav)
        return InferenceCall("inference_instruct2", args, kwargs)
    raise InputError(400, "bad_mode", f"unknown mode {req.mode!r}")


def accepted_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split kwargs into those fn accepts and the names it does not (older CosyVoice releases)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs), []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs), []
    kept = {k: v for k, v in kwargs.items() if k in params}
    return kept, sorted(set(kwargs) - set(kept))

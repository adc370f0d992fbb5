"""CosyVoice (CosyVoice3 first) through ``cosyvoice.cli.cosyvoice.AutoModel``.

Imported lazily: torch and cosyvoice exist only in the CosyVoice environment. The model is
loaded once from a local directory (AutoModel downloads only when the path does not
exist, and load_config has checked that it does). One synthesis at a time holds the lock,
seeds random/numpy/torch (process-wide, as upstream does) and consumes the generator
chunk by chunk, checking the cancel event between chunks.
"""

import os
import random
import sys
import threading
from typing import Any

from .audio import Audio
from .config import CosyvoiceConfig
from .engine_base import Engine, EngineError, SynthesisCancelledError
from .prompts import accepted_kwargs, build_inference_call, model_kind
from .tts_request import TtsRequest

SAMPLE_RATE = 24000


def import_paths(repo_dir: str) -> list[str]:
    """sys.path entries a CosyVoice checkout needs (the repo and its Matcha-TTS submodule)."""
    if not repo_dir:
        return []
    return [repo_dir, os.path.join(repo_dir, "third_party", "Matcha-TTS")]


def load_options(cfg: CosyvoiceConfig) -> dict[str, bool]:
    """AutoModel keyword arguments: only the switches that are on, so that a model class
    without e.g. load_jit (CosyVoice3) is not handed an argument it does not take."""
    return {name: True for name in ("load_jit", "load_trt", "fp16") if getattr(cfg, name)}


class CosyVoiceEngine(Engine):
    name = "cosyvoice"
    label = "CosyVoice"

    def __init__(self, cfg: CosyvoiceConfig, warmup_prompt_wav: str, warmup_prompt_text: str):
        self.cfg = cfg
        self.warmup_prompt_wav = warmup_prompt_wav
        self.warmup_prompt_text = warmup_prompt_text
        self.kind = model_kind(os.listdir(cfg.model_dir)) if os.path.isdir(cfg.model_dir) else "cosyvoice3"
        self.model: Any = None
        self.sample_rate = SAMPLE_RATE
        self._lock = threading.Lock()
        self._torch: Any = None

    def load(self) -> None:
        for path in reversed(import_paths(self.cfg.repo_dir)):
            if os.path.isdir(path) and path not in sys.path:
                sys.path.insert(0, path)
        try:
            import torch  # noqa: PLC0415
            from cosyvoice.cli.cosyvoice import AutoModel  # noqa: PLC0415
        except ImportError as exc:
            raise EngineError(
                f"cannot import CosyVoice ({exc}); run inside its environment, set cosyvoice.repo_dir"
            ) from exc
        self._torch = torch
        self.model = AutoModel(model_dir=self.cfg.model_dir, **load_options(self.cfg))
        self.sample_rate = int(getattr(self.model, "sample_rate", SAMPLE_RATE))

    def seed(self, seed: int) -> None:
        random.seed(seed)
        try:
            import numpy  # noqa: PLC0415

            numpy.random.seed(seed)
        except ImportError:
            pass
        self._torch.manual_seed(seed)
        if self._torch.cuda.is_available():
            self._torch.cuda.manual_seed_all(seed)

    def warmup(self, text: str, cancel: threading.Event) -> Audio:
        req = TtsRequest(
            text=text, mode="zero_shot", seed=1, prompt_wav=self.warmup_prompt_wav, prompt_text=self.warmup_prompt_text
        )
        return self.synthesize(req, cancel)

    def synthesize(self, req: TtsRequest, cancel: threading.Event) -> Audio:
        if self.model is None:
            raise EngineError("model not loaded")
        call = build_inference_call(req, self.kind)
        method = getattr(self.model, call.method)
        kwargs, _dropped = accepted_kwargs(method, call.kwargs)
        torch = self._torch
        chunks = []
        with self._lock, torch.inference_mode():
            if cancel.is_set():
                raise SynthesisCancelledError("cancelled before start")
            self.seed(req.seed)
            generator = method(*call.args, **kwargs)
            try:
                for output in generator:
                    chunks.append(output["tts_speech"].detach().float().cpu())
                    if cancel.is_set():
                        raise SynthesisCancelledError("stopped between chunks")
            finally:
                generator.close()
        if not chunks:
            raise EngineError("CosyVoice returned no audio")
        speech = torch.cat(chunks, dim=1).reshape(-1)
        pcm = (speech.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).numpy().tobytes()
        return Audio(pcm=pcm, sample_rate=self.sample_rate)


def gpu_memory() -> list[tuple[str, int, int]]:
    """(device, allocated bytes, reserved bytes) per CUDA device; [] without torch or GPU.

    Looks at torch only if this process already imported it (the cosyvoice engine does):
    the espeak engine does not pay for importing torch to report nothing.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        return [
            (str(i), int(torch.cuda.memory_allocated(i)), int(torch.cuda.memory_reserved(i)))
            for i in range(torch.cuda.device_count())
        ]
    except Exception:  # a metric must never break /metrics
        return []

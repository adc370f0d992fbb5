"""espeak-ng on the CPU: the test engine for the lab and CI (no GPU, no weights).

It is not CosyVoice: it checks prompt clips like the real engine but does not clone
voices. The output is deterministic for the same text and seed: the seed picks the pitch
and the speed. Each synthesis is one subprocess in its own process group, killed when the
request is cancelled, so a timed-out request really frees the worker.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import wave

from .audio import Audio, UnsupportedAudioError, read_wav_pcm16
from .config import EspeakConfig
from .engine_base import Engine, EngineError, SynthesisCancelledError
from .tts_request import TtsRequest

LABEL = "espeak-ng CPU test engine — not CosyVoice"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_MARKUP = re.compile(r"\[([^\[\]]{1,16})\]")
_POLL_S = 0.05


def voice_params(seed: int) -> tuple[int, int]:
    """(pitch 30..70, speed 150..179 words per minute) from the seed."""
    return 30 + seed % 41, 150 + (seed // 41) % 30


def speakable(text: str) -> str:
    """Pronunciation markup ``[h][ào]`` / ``[M][AY0]`` joined into plain letters for espeak."""
    return _MARKUP.sub(r"\1", text)


class EspeakEngine(Engine):
    name = "espeak"
    label = LABEL
    is_test_engine = True

    def __init__(self, cfg: EspeakConfig):
        self.cfg = cfg
        self.binary = ""

    def load(self) -> None:
        found = shutil.which(self.cfg.binary)
        if not found:
            raise EngineError(f"espeak.binary: {self.cfg.binary} not found (apt-get install espeak-ng)")
        self.binary = found

    def warmup(self, text: str, cancel: threading.Event) -> Audio:
        return self._run(text, seed=1, cancel=cancel, delay=0.0)

    def synthesize(self, req: TtsRequest, cancel: threading.Event) -> Audio:
        marker = self.cfg.test_delay_marker
        delay = self.cfg.test_delay_s if (not marker or marker in req.text) else 0.0
        return self._run(req.text, seed=req.seed, cancel=cancel, delay=delay)

    def _argv(self, text: str, seed: int, text_file: str, wav_file: str, delay: float) -> list[str]:
        pitch, speed = voice_params(seed)
        voice = self.cfg.cjk_voice if _CJK.search(text) else self.cfg.voice
        argv = [
            self.binary,
            "-v",
            voice,
            "-p",
            str(pitch),
            "-s",
            str(speed),
            "-b",
            "1",
            "-f",
            text_file,
            "-w",
            wav_file,
        ]
        if delay > 0:
            # TEST ONLY (espeak.test_delay_s): the delay runs inside the same killable process.
            argv = ["sh", "-c", 'sleep "$0" && exec "$@"', f"{delay:g}", *argv]
        return argv

    def _run(self, text: str, seed: int, cancel: threading.Event, delay: float) -> Audio:
        with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
            text_file = os.path.join(tmp, "text.txt")
            wav_file = os.path.join(tmp, "out.wav")
            err_file = os.path.join(tmp, "stderr.txt")
            with open(text_file, "w", encoding="utf-8") as fh:
                fh.write(speakable(text))
            with open(err_file, "wb") as err:
                proc = subprocess.Popen(
                    self._argv(text, seed, text_file, wav_file, delay),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                )
                try:
                    while True:
                        try:
                            rc = proc.wait(timeout=_POLL_S)
                            break
                        except subprocess.TimeoutExpired:
                            if cancel.is_set():
                                raise SynthesisCancelledError("espeak-ng killed") from None
                finally:
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
            if rc != 0:
                with open(err_file, encoding="utf-8", errors="replace") as fh:
                    detail = fh.read().strip().splitlines()[-1:] or [f"exit status {rc}"]
                raise EngineError(f"espeak-ng failed: {detail[0]}")
            try:
                audio = read_wav_pcm16(wav_file)
            except (OSError, EOFError, wave.Error, UnsupportedAudioError) as exc:
                raise EngineError(f"espeak-ng wrote no usable WAV: {exc}") from exc
        if audio.frames == 0:
            raise EngineError("espeak-ng produced no audio")
        return audio

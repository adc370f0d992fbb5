"""Audio containers: synthesized PCM, WAV encoding, and probing of prompt clips."""

import io
import wave
from dataclasses import dataclass


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit little-endian PCM."""

    pcm: bytes
    sample_rate: int

    @property
    def frames(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    def wav_bytes(self) -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.pcm)
        return buf.getvalue()


@dataclass(frozen=True)
class ClipInfo:
    format: str
    sample_rate: int
    channels: int
    duration: float


class UnsupportedAudioError(Exception):
    """The clip is in no format this server can read."""


def read_wav_pcm16(path: str) -> Audio:
    """A mono 16-bit WAV file as Audio (what espeak-ng writes)."""
    with wave.open(path, "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise UnsupportedAudioError(
                f"expected mono 16-bit PCM, got {wav.getnchannels()} ch, {8 * wav.getsampwidth()} bit"
            )
        return Audio(pcm=wav.readframes(wav.getnframes()), sample_rate=wav.getframerate())


def probe_clip(path: str) -> ClipInfo:
    """Format, rate, channels and duration of a prompt clip; raises UnsupportedAudioError.

    PCM WAV is read with the standard library. Where the soundfile package is importable
    (it is in the CosyVoice environment) FLAC, OGG and other libsndfile formats work too.
    """
    wav_error = ""
    try:
        with wave.open(path, "rb") as wav:
            rate, frames = wav.getframerate(), wav.getnframes()
            if rate <= 0:
                raise UnsupportedAudioError("WAV header has a sample rate of 0")
            return ClipInfo("wav", rate, wav.getnchannels(), frames / rate)
    except (wave.Error, EOFError) as exc:
        wav_error = str(exc) or type(exc).__name__
    try:
        import soundfile  # noqa: PLC0415 - optional, present in the CosyVoice environment
    except ImportError:
        raise UnsupportedAudioError(f"expected a PCM WAV file ({wav_error})") from None
    try:
        info = soundfile.info(path)
    except RuntimeError as exc:
        raise UnsupportedAudioError(f"not a readable audio file ({exc})") from None
    if info.samplerate <= 0:
        raise UnsupportedAudioError("sample rate of 0")
    return ClipInfo(str(info.format).lower(), int(info.samplerate), int(info.channels), float(info.duration))

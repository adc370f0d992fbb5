#!/usr/bin/env python3
"""Write playbooks/files/upgrade-prompt.wav: the prompt clip of rolling_upgrade.yml's synthesis check.

2 s of mono 16-bit PCM at 16 kHz, inside the node server's prompt limits (1-30 s). It is a
deterministic voice-like buzz (a 140 Hz harmonic series with a little vibrato, shaped into
four "syllables"), not speech: the check needs a clip the server accepts, not a voice worth
cloning. The same bytes every run, so the committed file can be regenerated and compared.

    python3 tools/make_upgrade_prompt.py [OUT]
"""

import math
import os
import struct
import sys
import wave

RATE = 16000
SECONDS = 2.0
F0 = 140.0
HARMONICS = (1.0, 0.5, 0.33, 0.25, 0.2, 0.12)
PEAK = 0.5 * 32767

DEFAULT_OUT = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "playbooks", "files", "upgrade-prompt.wav")
)


def sample(i: int) -> int:
    t = i / RATE
    f0 = F0 * (1.0 + 0.02 * math.sin(2 * math.pi * 5.0 * t))  # vibrato
    phase = 2 * math.pi * f0 * t
    voiced = sum(a * math.sin((k + 1) * phase) for k, a in enumerate(HARMONICS)) / sum(HARMONICS)
    syllables = max(0.0, math.sin(2 * math.pi * 2.0 * t)) ** 0.5  # 4 bursts in 2 s, pauses between
    fade = min(1.0, t / 0.05, (SECONDS - t) / 0.05)
    return round(PEAK * voiced * syllables * fade)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    frames = int(RATE * SECONDS)
    pcm = b"".join(struct.pack("<h", sample(i)) for i in range(frames))
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    print(f"{out}: {frames / RATE:.2f} s, {RATE} Hz, mono, 16-bit")


if __name__ == "__main__":
    main()

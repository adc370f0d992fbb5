"""CosyVoice TTS node server: FastAPI + Gradio, bounded queue, health, drain, metrics.

Runs one engine per process: ``cosyvoice`` (CosyVoice3 on a GPU, inside the CosyVoice
environment) or ``espeak`` (espeak-ng on the CPU, a test engine for the lab and CI).
Start it with ``python -m cosyvoice_tts_server --config /etc/cosyvoice-tts/server.yml``.
"""

import os as _os

# Set before anything imports gradio (the package is imported first): no usage analytics.
_os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

__version__ = "0.1.0"

"""What the service needs from an engine."""

import threading

from .audio import Audio
from .tts_request import TtsRequest


class SynthesisCancelledError(Exception):
    """The synthesis stopped because its cancel event was set (timeout, client gone)."""


class EngineError(Exception):
    """The synthesis failed for a reason that is not the client's input."""


class Engine:
    """One engine per process. synthesize() runs in a worker thread and must return soon
    after ``cancel`` is set (raising SynthesisCancelledError): that is what frees the concurrency slot."""

    name = "engine"
    label = "engine"
    is_test_engine = False

    def load(self) -> None:
        raise NotImplementedError

    def warmup(self, text: str, cancel: threading.Event) -> Audio:
        raise NotImplementedError

    def synthesize(self, req: TtsRequest, cancel: threading.Event) -> Audio:
        raise NotImplementedError

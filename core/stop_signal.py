"""Stop training at a step boundary on SIGINT or SIGTERM, so that the checkpoint written then resumes exactly.

A KeyboardInterrupt can land between a step's weight update and its step count, which leaves a checkpoint
one update ahead of its step. A cluster's preemption (SIGTERM) or a job's time limit (`timeout -s INT`) is
better served by a flag that the loop reads after each whole step. A second Ctrl-C still interrupts at once.
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Between install() and restore() (or inside a with block), the first SIGINT or SIGTERM sets `received`
    (the signal's number)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.received = signum

    def install(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        """The handlers from before install()."""
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def __enter__(self) -> "StopSignal":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

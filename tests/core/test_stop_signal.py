"""The training loop's signal flag: the first SIGINT/SIGTERM is recorded, a second Ctrl-C interrupts, and the
previous handlers come back."""
import os
import signal

import pytest

from core.stop_signal import StopSignal


def test_first_signal_is_recorded_second_ctrl_c_interrupts_and_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with StopSignal() as stop:
        assert stop.received is None and stop.name == ""
        os.kill(os.getpid(), signal.SIGTERM)  # would end the test process without the handler
        assert stop.received == signal.SIGTERM and stop.name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before

"""Stopping a training run: SIGTERM/SIGINT raise in the main thread, except where native code
calls back into Python (held back to the section's end) and once the bundle is being published
(only recorded)."""

import os
import signal

import pytest

from training.stages import install_stop_handlers, no_more_stops, shielded, stop_signal


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # the handler runs between bytecodes of the main thread
        pass


@pytest.fixture
def handlers():
    restore = install_stop_handlers()
    yield
    restore()


def test_a_stop_raises_at_once(handlers):
    with pytest.raises(KeyboardInterrupt):
        _signal_self(signal.SIGTERM)
    assert stop_signal() == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second one ends the process


def test_a_stop_inside_a_shielded_section_is_raised_when_it_ends(handlers):
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with shielded():
            _signal_self(signal.SIGTERM)
            reached.append("the end of the section")
    assert reached == ["the end of the section"] and stop_signal() == signal.SIGTERM


def test_after_no_more_stops_a_stop_is_only_recorded(handlers):
    with shielded():
        pass  # nothing received: leaves quietly
    no_more_stops()
    _signal_self(signal.SIGTERM)
    assert stop_signal() == signal.SIGTERM


def test_installing_again_starts_afresh(handlers):
    no_more_stops()
    _signal_self(signal.SIGTERM)
    install_stop_handlers()  # a new run in the same process
    assert stop_signal() is None
    with pytest.raises(KeyboardInterrupt):
        _signal_self(signal.SIGTERM)

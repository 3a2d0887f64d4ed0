"""An interrupt after LoadGen ended must stop the scoring even where Python drops the
KeyboardInterrupt: raised inside a garbage collector's callback, it is only printed."""

from __future__ import annotations

import signal
import weakref

import pytest

from client_sut.runs.runner import _SIGNALS, _RememberedInterrupt


@pytest.fixture
def signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class _Garbage:
    pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("sig", _SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_dropped_in_a_gc_callback_is_raised_again(signal_handlers, sig):
    interrupt = _RememberedInterrupt()
    interrupt.arm()
    garbage = _Garbage()
    reference = weakref.ref(garbage, lambda _ref: signal.raise_signal(sig))
    del garbage  # the callback runs now; its KeyboardInterrupt goes to "Exception ignored"
    assert reference() is None
    with pytest.raises(KeyboardInterrupt):
        interrupt.raise_if_dropped()


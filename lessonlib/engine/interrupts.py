"""Ctrl-C, in one place: what a press does while lessonlib changes something that must not be left half done.

Machinery, not lesson. Three ways, one for each kind of work:
- `deferred_interrupt()`: the press waits until the block ends (an optimizer step, a file moved by one rename),
  so the block runs whole or not at all; used by `steps` and `photos`.
- `run_whole(restore)`: `restore()` runs to its end whatever Ctrl-C does, from the start again if a press lands
  before the deferral takes hold; used by `snapshot` to put state back.
- `first_ctrl_c_only()`: the first press interrupts as usual, the presses after it are let go so that they
  cannot break the clean-up the first one started; used by `storage` around atomic writes.
Outside the main thread (where Python delivers no signal) each of them changes nothing.
"""
import contextlib
import signal
import threading

__all__ = ["deferred_interrupt", "first_ctrl_c_only", "run_whole"]


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred_interrupt():
    """Hold Ctrl-C until the block ends, so an optimizer step is applied whole or not at all."""
    if not _in_main_thread():
        yield
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed:
            raise KeyboardInterrupt


def run_whole(restore):
    """Run `restore()` to its end whatever Ctrl-C does, then raise a press that came meanwhile.

    Inside `deferred_interrupt` presses wait; one that lands just before it takes hold (as the `finally` of an
    interrupted block starts) runs `restore()` again, from the start: it must be safe to repeat.
    """
    done = pressed = False
    while not done:
        try:
            with deferred_interrupt():
                restore()
                done = True
        except KeyboardInterrupt:   # before the deferral took hold (then done is False), or held until the end
            pressed = True
    if pressed:
        raise KeyboardInterrupt


@contextlib.contextmanager
def first_ctrl_c_only():
    """Inside the block the first Ctrl-C interrupts as usual; the presses after it (an impatient student presses
    several times) are let go, so they cannot interrupt the clean-up that the first one started. In Python a
    second KeyboardInterrupt can land anywhere, even between `except` and the clean-up's first line, so only
    not raising it is safe. Outside the main thread, or with no Python handler for Ctrl-C, nothing changes."""
    previous = signal.getsignal(signal.SIGINT)
    if not _in_main_thread() or not callable(previous):
        yield
        return
    raised = []

    def first_only(signum, frame):
        if raised:
            return                      # the first press is on its way up; this one would only break its clean-up
        try:
            previous(signum, frame)
        except BaseException:
            raised.append(True)
            raise
    signal.signal(signal.SIGINT, first_only)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

"""
The errors the tool reports as one line: the command line prints the message on
stderr and exits non-zero; the notebook API (mask.explain) raises them. Also the
signals that end a run the way Ctrl-C does (SIGTERM, SIGHUP).
"""

import contextlib
import signal
import threading


class UserError(Exception):
    """A problem the user can fix: bad text, an unusable model, an unwritable file."""


class OfflineError(UserError):
    """A Hub model that is not cached, with no connection to download it."""


class BrokenCacheError(OfflineError):
    """
    A Hub model whose copy in the Hugging Face cache is broken (a truncated weight
    file, a missing config.json): unusable until it is downloaded again.
    """

    def __init__(self, name, folder, reason):
        super().__init__(
            f"The Hugging Face cache's copy of {name} is broken ({reason}). "
            f"Delete {folder} and run again with a network connection to download it afresh."
        )
        self.folder, self.reason = folder, reason


class WriteError(UserError, OSError):
    """
    An output file that could not be written; the message names the user's file,
    never a temporary one. Also an OSError, for code that catches those.
    """

    def __init__(self, path, reason):
        super().__init__(f"Cannot write {path}: {reason}")
        self.path = path


class Interrupted(KeyboardInterrupt):
    """
    SIGTERM (`timeout`, `kill`) or SIGHUP (a closed terminal) during a run: handled
    as Ctrl-C is (writes in progress are abandoned and their temporary files
    removed), with the signal's exit status, 128 + its number.
    """

    def __init__(self, number):
        super().__init__(number)
        self.status = 128 + number
        self.message = f"Interrupted ({signal.Signals(number).name})."


@contextlib.contextmanager
def signals_interrupt():
    """
    Inside this block SIGTERM and SIGHUP raise Interrupted in the main thread,
    instead of ending the process on the spot (which would leave .part files).
    A signal that was being ignored (nohup ignores SIGHUP) stays ignored; the
    earlier handlers come back at the end. Outside the main thread, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {number: signal.getsignal(number) for number in numbers}
    caught = [number for number in numbers if previous[number] is signal.SIG_DFL]

    def interrupt(number, frame):
        for other in caught:  # the first signal wins: the clean-up it starts is not cut short by another
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(number)

    for number in caught:
        signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number in caught:
            signal.signal(number, previous[number])

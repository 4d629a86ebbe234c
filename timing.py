"""
Where a run's time goes: named phases with their wall-clock and CPU seconds.

    with timing.phase("forward"):
        ...

Phases nest: a phase's figures leave out the phases inside it, so the figures of a
run add up to its whole. With ATTENTION_PHASES=FILE in the environment, the
process writes {phase: [wall seconds, CPU seconds]} to FILE (JSON) when it exits;
the benchmark (benchmarks/bench.py) reads it. Otherwise this costs two clock
readings per phase and writes nothing.
"""

import atexit
import contextlib
import json
import os
import threading
import time

# Environment variable naming the file the phase figures go to
ENV = "ATTENTION_PHASES"

_totals = {}  # phase -> [wall, cpu], exclusive of the phases inside it
_stack = threading.local()


@contextlib.contextmanager
def phase(name):
    """Count the time spent inside as `name` (less the phases nested inside it)."""
    stack = _stack.__dict__.setdefault("frames", [])
    frame = [time.perf_counter(), time.process_time(), 0.0, 0.0]  # start wall, start cpu, children's wall, cpu
    stack.append(frame)
    try:
        yield
    finally:
        stack.pop()
        wall, cpu = time.perf_counter() - frame[0], time.process_time() - frame[1]
        total = _totals.setdefault(name, [0.0, 0.0])
        total[0] += wall - frame[2]
        total[1] += cpu - frame[3]
        if stack:
            stack[-1][2] += wall
            stack[-1][3] += cpu


def totals():
    """{phase: (wall seconds, CPU seconds)} so far in this process."""
    return {name: tuple(value) for name, value in _totals.items()}


def write():
    """Write the figures to the file ATTENTION_PHASES names, if it names one (also done at exit)."""
    if os.environ.get(ENV):
        with contextlib.suppress(OSError), open(os.environ[ENV], "w", encoding="utf-8") as file:
            json.dump(totals(), file)


atexit.register(write)

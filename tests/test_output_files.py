"""
Output files: every file is either the old one or a complete new one, whatever
happens (disk full, read-only folder, Ctrl-C at any point), and temporary files
never stay behind.
"""

import contextlib
import errno
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import types

import pytest
from conftest import ROOT, assert_complete_png, assert_one_line_failure, call_main, diagram_names, leftovers, side
from PIL import Image

import attention_run
import diagrams
import model_loading
import model_source
import outputs

TEXT = "The turtle slowly moved across the [MASK]."


def old_png_bytes():
    """A small, valid PNG that the tool would never write (10 x 10, mid gray)."""
    buffer = io.BytesIO()
    Image.new("L", (10, 10), 123).save(buffer, "PNG")
    return buffer.getvalue()


def assert_old_or_complete(path):
    """An output file after an interrupted run: the earlier run's bytes, or a whole new PNG."""
    if path.read_bytes() != old_png_bytes():
        assert_complete_png(path)


class _DiskFullFile:
    """A file whose write lands half of its data, then fails as a full disk does."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        self._file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._file, name)


def disk_full_for(predicate):
    """outputs.atomic_file, but writing to the paths `predicate` picks fails midway with ENOSPC."""
    real = outputs.atomic_file

    @contextlib.contextmanager
    def atomic_file(path, mode="wb"):
        with real(path, mode) as file:
            yield _DiskFullFile(file) if predicate(os.path.basename(path)) else file

    return atomic_file


@pytest.fixture
def out_with_old_diagram(tmp_path):
    """An output directory holding an Attention_Layer1_Head1.png from an earlier run (known bytes)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "Attention_Layer1_Head1.png").write_bytes(old_png_bytes())
    return out


def test_failed_write_keeps_the_old_file_intact(tiny_h5, out_with_old_diagram, monkeypatch):
    out = out_with_old_diagram
    monkeypatch.setattr(outputs, "atomic_file", disk_full_for(lambda name: name == "Attention_Layer1_Head1.png"))
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out), "--no-html"])
    line = assert_one_line_failure(run)
    assert line == f"Cannot write {out / 'Attention_Layer1_Head1.png'}: No space left on device"
    assert (out / "Attention_Layer1_Head1.png").read_bytes() == old_png_bytes()
    assert leftovers(out) == []
    for name in diagram_names(out):  # the heads written before the failure are whole
        assert_complete_png(out / name)


@pytest.mark.parametrize("where", ["write", "rename"])
def test_full_disk_is_one_line_and_leaves_no_temporary_files(where, tiny_h5, out_with_old_diagram, monkeypatch):
    out = out_with_old_diagram
    if where == "write":
        monkeypatch.setattr(outputs, "atomic_file", disk_full_for(lambda name: True))
    else:
        def replace(source, target):  # the temporary file is whole; putting it in place fails
            if os.path.basename(target).startswith("Attention_"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return os.replace(source, target)

        monkeypatch.setattr(outputs, "os", types.SimpleNamespace(**{**vars(os), "replace": replace}))
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out)])
    line = assert_one_line_failure(run)
    assert re.fullmatch(rf"Cannot write {re.escape(str(out))}\S*: No space left on device", line), line
    assert os.listdir(out) == ["Attention_Layer1_Head1.png"]  # nothing new, nothing temporary
    assert (out / "Attention_Layer1_Head1.png").read_bytes() == old_png_bytes()


FOUR_DIAGRAMS = [f"Attention_Layer{layer}_Head{head}.png" for layer in (1, 2) for head in (1, 2)]


def old_diagrams_and_failing_encoder(out, monkeypatch, fails):
    """Put four old diagrams in `out`; make diagrams.png_bytes raise fails(call_number) when it returns one."""
    for name in FOUR_DIAGRAMS:
        (out / name).write_bytes(old_png_bytes())
    real, calls, lock = diagrams.png_bytes, [], threading.Lock()

    def png_bytes(pixels):
        with lock:  # the encoder runs on several threads
            calls.append(1)
            error = fails(len(calls))
        if error:
            raise error
        return real(pixels)

    monkeypatch.setattr(diagrams, "png_bytes", png_bytes)


def test_png_encoder_failing_after_some_files(tiny_h5, tmp_path, monkeypatch):
    out = tmp_path
    disk_full = OSError(errno.ENOSPC, "No space left on device")
    old_diagrams_and_failing_encoder(out, monkeypatch, lambda n: disk_full if n > 2 else None)
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out), "--no-html"])
    assert assert_one_line_failure(run).endswith(": No space left on device")
    assert leftovers(out) == []
    assert diagram_names(out) == FOUR_DIAGRAMS  # every one still there: old, or whole and new
    for name in FOUR_DIAGRAMS:
        assert_old_or_complete(out / name)
    assert sum((out / name).read_bytes() != old_png_bytes() for name in FOUR_DIAGRAMS) <= 2


def test_read_only_output_directory_fails_before_the_model_loads(tiny_h5, tmp_path, monkeypatch):
    def mkstemp(dir, prefix, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "x" + suffix))

    monkeypatch.setattr(outputs, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
    attention_run.open_model.cache_clear()  # a model opened by an earlier test would not load again
    monkeypatch.setattr(model_loading, "load_model", lambda source: pytest.fail("loaded the model first"))
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert assert_one_line_failure(run) == f"Cannot write {tmp_path / 'out'}: Permission denied"
    assert run.stdout == ""


def test_save_into_a_missing_directory_names_it(tiny_h5, tmp_path):
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path), "--no-html",
                     "--save", str(tmp_path / "nowhere" / "run.npz")])
    assert assert_one_line_failure(run) == f"Cannot write {tmp_path / 'nowhere'}: No such file or directory"
    assert leftovers(tmp_path) == []


def test_ctrl_c_at_the_prompt_in_process(tiny_h5, tmp_path):
    class CtrlC(io.StringIO):
        def readline(self, *args):
            raise KeyboardInterrupt

    run = call_main(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin=CtrlC())
    assert (run.status, run.stdout, run.stderr) == (130, "Text: ", "Interrupted.\n")


def test_ctrl_c_while_writing_in_process(tiny_h5, tmp_path, monkeypatch):
    """KeyboardInterrupt inside the writer threads: 130, one line, old files old, new ones whole."""
    out = tmp_path
    old_diagrams_and_failing_encoder(out, monkeypatch, lambda n: KeyboardInterrupt() if n == 2 else None)
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out)])
    assert (run.status, run.stderr) == (130, "Interrupted.\n"), run
    assert leftovers(out) == [] and not (out / "attention.html").exists()
    assert diagram_names(out) == FOUR_DIAGRAMS
    for name in FOUR_DIAGRAMS:
        assert_old_or_complete(out / name)


def start(args, **kwargs):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "mask.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def test_ctrl_c_at_the_prompt(tiny_h5, tmp_path):
    process = start(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin=subprocess.PIPE)
    assert process.stdout.read(6) == b"Text: "  # waiting for input now
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert (process.returncode, stdout, stderr) == (130, b"", b"Interrupted.\n")
    assert os.listdir(tmp_path) == []


# Run mask.py in a child whose PNG encoder, on its 5th diagram, signals the test and then
# takes 2 s: the test interrupts at that known point, long before the last of 72 diagrams
SLOW_FIFTH_DIAGRAM = textwrap.dedent("""
    import sys, threading, time
    import diagrams, mask
    real, calls, lock = diagrams.png_bytes, [], threading.Lock()
    def png_bytes(pixels):
        with lock:
            calls.append(1)
            nth = len(calls)
        if nth == 5:
            open(sys.argv[1], "w").close()  # tell the test: interrupt now
            time.sleep(2)
        return real(pixels)
    diagrams.png_bytes = png_bytes
    mask.main(sys.argv[2:])
""")


@pytest.mark.parametrize("signal_number, status", [(signal.SIGINT, 130)])
def test_interrupt_while_writing_the_diagrams(signal_number, status, many_heads, tmp_path):
    """Interrupted mid-drawing: one line, the exit status of the signal, no temporary or truncated file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "Attention_Layer6_Head12.png").write_bytes(old_png_bytes())
    ready = tmp_path / "ready"
    text = "The turtle slowly moved across the road , then the cat sat on the mat and the dog ran to the [MASK] ."
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_FIFTH_DIAGRAM, str(ready), text, "--model", many_heads, "--output-dir", str(out),
         "--no-html"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    try:
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            threading.Event().wait(0.01)
        process.send_signal(signal_number)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, stderr) == (status, b"Interrupted.\n")
    assert len(stdout.decode().splitlines()) == 3  # the fill-ins were printed before the drawing
    written = [name for name in diagram_names(out) if (out / name).read_bytes() != old_png_bytes()]
    assert 1 <= len(written) < 72  # interrupted for real: not every diagram was written
    assert leftovers(out) == []
    n = len(model_loading.load_tokenizer(model_source.ModelSource(many_heads, many_heads))(text)["input_ids"])
    for name in written:
        assert_complete_png(out / name, (side(n), side(n)))

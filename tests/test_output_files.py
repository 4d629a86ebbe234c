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
import stat
import subprocess
import sys
import textwrap
import threading
import types

import pytest
from conftest import (
    ROOT,
    assert_complete_png,
    assert_one_line_failure,
    call_main,
    diagram_names,
    leftovers,
    side,
    with_default_signals,
)
from PIL import Image

import attention_run
import diagrams
import mask
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


def test_save_into_a_missing_directory_fails_before_anything_runs(tiny_h5, tmp_path):
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--no-html",
                     "--save", str(tmp_path / "nowhere" / "run.npz")])
    assert assert_one_line_failure(run) == f"Cannot write {tmp_path / 'nowhere'}: No such file or directory"
    assert run.stdout == "" and not (tmp_path / "out").exists()  # checked up front, like --output-dir
    assert leftovers(tmp_path) == []


def test_save_into_the_new_output_directory(tiny_h5, tmp_path):
    out = tmp_path / "a" / "out"
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out), "--no-html", "--save", str(out / "run.npz")])
    assert run.status == 0, run
    assert (out / "run.npz").read_bytes()[:2] == b"PK" and len(diagram_names(out)) == 4


def test_save_at_a_directory_fails_before_anything_runs(tiny_h5, tmp_path):
    (tmp_path / "run.npz").mkdir()
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save",
                     str(tmp_path / "run.npz")])
    assert assert_one_line_failure(run) == f"Cannot write {tmp_path / 'run.npz'}: Is a directory"
    assert run.stdout == "" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--save", "--output-dir"])
def test_empty_file_or_folder_name_is_one_clear_line(option, tiny_h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = call_main([TEXT, "--model", tiny_h5, option, ""])
    what = "a file name" if option == "--save" else "a folder name (. for the current folder)"
    assert_one_line_failure(run, f"mask.py: argument {option}: expected {what}, not an empty string (see --help)", 2)
    assert os.listdir(tmp_path) == []


def test_longest_legal_save_name_is_written(tiny_h5, tmp_path):
    """A 255-byte name is legal; its temporary name must be too (outputs._temporary shortens it)."""
    name = "r" * 251 + ".npz"
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save", str(tmp_path / name)])
    assert run.status == 0, run
    assert (tmp_path / name).read_bytes()[:2] == b"PK" and leftovers(tmp_path) == []
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save",
                     str(tmp_path / ("r" + name))])
    assert assert_one_line_failure(run) == f"Cannot write {tmp_path / ('r' + name)}: File name too long"
    assert run.stdout == ""


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
    return subprocess.Popen(with_default_signals(os.path.join(ROOT, "mask.py"), *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def test_ctrl_c_at_the_prompt(tiny_h5, tmp_path):
    process = start(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin=subprocess.PIPE)
    assert process.stdout.read(6) == b"Text: "  # waiting for input now
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert (process.returncode, stdout, stderr) == (130, b"", b"Interrupted.\n")
    assert os.listdir(tmp_path) == []


# Run mask.py in a child whose PNG encoder, on its 5th diagram, signals the test and then
# takes 2 s: the test interrupts at that known point, long before the last of 72 diagrams.
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


@pytest.mark.parametrize("signal_number, status, message", [
    (signal.SIGINT, 130, b"Interrupted.\n"),  # Ctrl-C
    (signal.SIGTERM, 143, b"Interrupted (SIGTERM).\n"),  # what `timeout` and `kill` send
    (signal.SIGHUP, 129, b"Interrupted (SIGHUP).\n"),  # the terminal was closed
], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_interrupt_while_writing_the_diagrams(signal_number, status, message, many_heads, tmp_path):
    """Interrupted mid-drawing: one line, the exit status of the signal (128 + its number), no temporary or
    truncated file."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "Attention_Layer6_Head12.png").write_bytes(old_png_bytes())
    ready = tmp_path / "ready"
    text = "The turtle slowly moved across the road , then the cat sat on the mat and the dog ran to the [MASK] ."
    process = subprocess.Popen(
        with_default_signals("-c", SLOW_FIFTH_DIAGRAM, str(ready), text, "--model", many_heads, "--output-dir",
                             str(out), "--no-html"),
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
    assert (process.returncode, stderr) == (status, message)
    assert len(stdout.decode().splitlines()) == 3  # the fill-ins were printed before the drawing
    written = [name for name in diagram_names(out) if (out / name).read_bytes() != old_png_bytes()]
    assert 1 <= len(written) < 72  # interrupted for real: not every diagram was written
    assert leftovers(out) == []
    n = len(model_loading.load_tokenizer(model_source.ModelSource(many_heads, many_heads))(text)["input_ids"])
    for name in written:
        assert_complete_png(out / name, (side(n), side(n)))


# special files as outputs: written through (as cp does) or refused, never replaced -------------------


def read_fifo_in_background(path):
    """A reader for the FIFO at `path` on a thread: returns (thread, chunks); chunks gets every byte read."""
    chunks = []

    def read():
        with open(path, "rb") as fifo:  # blocks until a writer opens it
            chunks.append(fifo.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, chunks


def release_fifo_reader(path, thread):
    """A reader still waiting for a writer (the tool never opened the FIFO): open it once, so the thread ends."""
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)


def test_save_through_a_link_to_dev_null_keeps_the_link(tiny_h5, tmp_path):
    """--save /dev/null as root used to turn /dev/null into a file: a link to it shows the same without harm."""
    link = tmp_path / "null"
    link.symlink_to(os.devnull)
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save", str(link)])
    assert run.status == 0, run
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert leftovers(tmp_path) == []


def test_save_into_a_fifo_writes_through(tiny_h5, tmp_path):
    import numpy as np

    fifo = tmp_path / "run.npz"
    os.mkfifo(fifo)
    thread, chunks = read_fifo_in_background(fifo)
    try:
        run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save", str(fifo)])
        thread.join(30)
    finally:
        release_fifo_reader(fifo, thread)
    assert run.status == 0, run
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not a regular file
    with np.load(io.BytesIO(chunks[0])) as data:  # the reader got the whole file
        assert data["attentions"].shape[:2] == (2, 2)
    assert leftovers(tmp_path) == []


def test_fifo_without_a_reader_is_refused_in_one_line(tiny_h5, tmp_path):
    fifo = tmp_path / "run.npz"
    os.mkfifo(fifo)
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save", str(fifo)])
    assert assert_one_line_failure(run) == f"Cannot write {fifo}: no program is reading from this pipe"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and leftovers(tmp_path) == []


def test_a_link_to_a_regular_file_is_kept_and_its_target_replaced(tiny_h5, tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "run.npz"
    target.write_bytes(b"old")
    target.chmod(0o600)  # the user's own mode stays
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save", str(link)])
    assert run.status == 0, run
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes()[:2] == b"PK" and stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "data") == []


def test_outputs_that_are_links_to_dev_null_stay_links(tiny_h5, tmp_path):
    """Every output goes the same way (outputs.atomic_file): diagrams and viewer too."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("attention.html", "Attention_Layer1_Head1.png"):
        (out / name).symlink_to(os.devnull)
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out)])
    assert run.status == 0, run
    for name in ("attention.html", "Attention_Layer1_Head1.png"):
        assert (out / name).is_symlink() and os.readlink(out / name) == os.devnull
    assert_complete_png(out / "Attention_Layer2_Head2.png")


def test_save_to_a_socket_is_refused_before_anything_runs(tiny_h5, tmp_path):
    import socket

    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--save", str(path)])
    assert assert_one_line_failure(run) == f"Cannot write {path}: not a regular file, device or pipe"
    assert run.stdout == "" and stat.S_ISSOCK(os.lstat(path).st_mode)


SAVE_TO_STDOUT = textwrap.dedent("""
    import os, sys
    import mask
    os.symlink(sys.argv[1], sys.argv[2])  # a link in the test's folder to /dev/stdout or /dev/fd/N
    mask.main(sys.argv[3:])
""")


@pytest.mark.parametrize("alias", ["/dev/stdout", "/proc/self/fd/1"])
def test_save_to_dev_stdout_writes_after_the_sentences(alias, tiny_h5, tmp_path):
    """A /dev/stdout-style name writes through the descriptor: the sentences, then the data, on one pipe."""
    import numpy as np

    link = tmp_path / "stdout.npz"
    process = subprocess.run(
        [sys.executable, "-c", SAVE_TO_STDOUT, alias, str(link), TEXT, "--model", tiny_h5,
         "--output-dir", str(tmp_path / "out"), "--save", str(link)],
        capture_output=True, cwd=ROOT, timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert link.is_symlink() and os.readlink(link) == alias
    lines = process.stdout.split(b"\n", 3)
    assert all(line.startswith(b"The turtle slowly moved across the ") for line in lines[:3])
    with np.load(io.BytesIO(lines[3])) as data:
        assert data["pred_sentences"].shape == (1, 3)


# an earlier run's files: never left beside a new run as if they were one ------------------------------

def test_a_new_run_removes_the_earlier_runs_files_and_says_so(tiny_safetensors, tiny_h5, tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = call_main([TEXT, "--model", tiny_safetensors, "--output-dir", str(out)])  # 3 layers x 4 heads
    assert first.status == 0, first
    assert len(diagram_names(out)) == 12
    # the user's own files, some with names close to the tool's, are never touched
    mine = ["notes.txt", "Attention_Layer1_Head1.png.bak", "my_attention.html", "attention.HTML", "run.npz"]
    for name in mine:
        (out / name).write_text("mine")
    (out / "Attention_Layer9_Head9.png").mkdir()  # a folder and a link with the tool's names: not its files
    (out / "Attention_Layer8_Head8.png").symlink_to(out / "notes.txt")

    second = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out), "--no-html"])  # 2 x 2, no viewer
    assert second.status == 0, second
    assert second.stderr.splitlines()[-2] == (
        f"Removed an earlier run's 8 diagrams and attention.html from {out}, so it holds this run's files only."
    )
    pngs = lambda: [name for name in diagram_names(out) if name.endswith(".png")]
    assert pngs() == FOUR_DIAGRAMS + ["Attention_Layer8_Head8.png", "Attention_Layer9_Head9.png"]
    assert not (out / "attention.html").exists()
    assert all((out / name).read_text() == "mine" for name in mine)
    assert (out / "Attention_Layer9_Head9.png").is_dir() and (out / "Attention_Layer8_Head8.png").is_symlink()

    # a text too long to draw head by head: the overview alone, and no diagram of another sentence beside it
    monkeypatch.setattr(mask, "MAX_DIAGRAM_TOKENS", 5)
    third = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out)])
    assert third.status == 0, third
    assert "Removed an earlier run's 4 diagrams from" in third.stderr
    assert pngs() == ["Attention_Layer8_Head8.png", "Attention_Layer9_Head9.png"]
    assert (out / "Attention_Overview.png").exists()


def test_a_failing_run_leaves_the_earlier_runs_files(tiny_h5, tmp_path):
    out = tmp_path / "out"
    assert call_main([TEXT, "--model", tiny_h5, "--output-dir", str(out)]).status == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert_one_line_failure(call_main(["No mask here.", "--model", tiny_h5, "--output-dir", str(out)]))
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_output_names_are_defined_once():
    """The writers' names come from outputs.OUTPUT_NAMES, the list an earlier run's files are found by."""
    assert outputs.is_output_name(attention_run.OVERVIEW_FILE) and outputs.is_output_name(attention_run.VIEWER_FILE)
    assert outputs.is_output_name("Attention_Layer12_Head3.png") and not outputs.is_output_name("Attention_Layer.png")
    for name in ("Attention_Rollout.png", "heads.csv", "Heads_Summary.png"):  # other writers' names
        assert outputs.is_output_name(name)


def test_signals_are_caught_only_for_the_run_and_an_ignored_hangup_stays_ignored():
    """`nohup mask.py ...` ignores SIGHUP so that closing the terminal doesn't stop the run: that must hold."""
    import errors

    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with errors.signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))  # caught while the run lasts
            with pytest.raises(errors.Interrupted) as interrupted:
                signal.raise_signal(signal.SIGTERM)
            assert (interrupted.value.status, interrupted.value.message) == (143, "Interrupted (SIGTERM).")
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # given back afterwards
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def test_concurrent_runs_into_one_folder_check_it_without_colliding(tmp_path):
    """Runs started together into one folder each probe it (check_writable) under a name of their own."""
    out = tmp_path / "out"
    threads, rounds = 8, 100
    start, failures = threading.Barrier(threads), []

    def probe():
        start.wait()
        for _ in range(rounds):
            try:
                outputs.check_writable(str(out))
            except Exception as error:  # a shared probe name: one run removes the other's probe
                failures.append(error)

    workers = [threading.Thread(target=probe) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert failures == [] and os.listdir(out) == []

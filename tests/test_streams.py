"""
Standard input and output that are closed, full, or a pipe whose reader has gone,
in real processes: problems with stdout are named as stdout's (never as the output
folder's), a reader that stops reading (`| head -1`) is no error for the files, and
nothing ends in a traceback or an "Exception ignored" message at exit.
"""

import os
import subprocess
import sys

from conftest import ROOT, diagram_names

TEXT = "The turtle slowly moved across the [MASK]."
FILES = ["Attention_Layer1_Head1.png", "Attention_Layer1_Head2.png", "Attention_Layer2_Head1.png",
         "Attention_Layer2_Head2.png", "Attention_Overview.png", "attention.html"]


def mask_py(args, **kwargs):
    """mask.py in a child process; stderr captured as text."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "mask.py"), *args], stderr=subprocess.PIPE, text=True,
                          timeout=120, **kwargs)


def in_shell(redirection, args):
    """mask.py started by sh with a redirection such as >&- (stdout closed) or <&- (stdin closed)."""
    command = f'exec "$@" {redirection}'
    return subprocess.run(["sh", "-c", command, "sh", sys.executable, os.path.join(ROOT, "mask.py"), *args],
                          stdout=subprocess.DEVNULL if "<" in redirection else None, stderr=subprocess.PIPE,
                          text=True, timeout=120)


def test_a_reader_that_has_gone_is_no_error_for_the_files(tiny_h5, tmp_path):
    """`mask.py ... | head -1`, with the reader gone before the first line: the files are written all the same."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        result = mask_py([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path)], stdout=write_end)
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert "Broken pipe" not in result.stderr and "Cannot" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith("Wrote 4 diagrams, Attention_Overview.png, attention.html")
    assert sorted(os.listdir(tmp_path)) == FILES


def test_a_full_stdout_is_named_as_stdout(tiny_h5, tmp_path):
    with open("/dev/full", "w") as full:
        result = mask_py([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out")], stdout=full)
    assert (result.returncode, result.stderr) == (1, "Cannot write standard output: No space left on device\n")
    assert diagram_names(tmp_path / "out") == []


def test_a_closed_stdout_is_one_line_before_anything_runs(tiny_h5, tmp_path):
    result = in_shell(">&-", [TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert (result.returncode, result.stderr) == (
        1, "Cannot write standard output: it is closed (use >/dev/null to discard the fill-ins)\n")
    assert not (tmp_path / "out").exists()


def test_a_closed_stdin(tiny_h5, tmp_path):
    """No text and nothing to read it from: one line. With the text given, stdin is never needed."""
    result = in_shell("<&-", ["--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert (result.returncode, result.stderr) == (1, "No text given: standard input is closed.\n")
    result = in_shell("<&-", ["No mask here.", "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert (result.returncode, result.stderr) == (1, "Input must include mask token [MASK].\n")


def test_closed_stderr_never_moves_notes_onto_stdout(tiny_h5, tmp_path):
    """With stderr closed (2>&-) the notes are lost, but the run works and stdout carries only the sentences."""
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, os.path.join(ROOT, "mask.py"), TEXT,
         "--model", tiny_h5, "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("The turtle slowly moved across the ") for line in lines), lines
    assert sorted(os.listdir(tmp_path)) == FILES

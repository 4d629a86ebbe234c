"""
Hardening: bad input, interrupted runs and hostile text or models never crash the
tool or lose files. Every failure is one line on stderr and a non-zero exit status;
every output file is either the old one or a complete new one.

Sections: long input; odd text; files (atomic writes, disk full, read-only, Ctrl-C);
untrusted models; property-based tests of the contract functions; a CLI fuzz.
"""

import collections
import contextlib
import errno
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import diagrams
import mask
import models
import outputs
import patterns
from conftest import ROOT, Run
from tiny_bert import build_bert_dir

TEXT = "The turtle slowly moved across the [MASK]."


def call_main(argv, stdin=""):
    """mask.main(argv) in-process, with its own stdin/stdout/stderr; any exception but SystemExit propagates."""
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin) if isinstance(stdin, str) else stdin
    status = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            mask.main(argv)
    except SystemExit as exit:
        status = exit.code
    finally:
        sys.stdin = saved_stdin
    return Run(status, stdout.getvalue(), stderr.getvalue())


def assert_one_line_failure(run, status=1):
    """Exit `status`, exactly one line on stderr, no traceback; returns that line."""
    assert run.status == status, run
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run
    return lines[0]


def leftovers(directory):
    """Temporary files an interrupted or failed write could leave (atomic_file names them .NAME.XXXX.part)."""
    return [name for name in os.listdir(directory) if name.endswith(".part") or ".attention-write-test" in name]


def diagram_names(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("Attention_Layer"))


def assert_complete_png(path, size=None):
    with Image.open(path) as image:
        image.load()  # decodes every byte: a truncated file raises here
        if size is not None:
            assert image.size == size, path


def old_png_bytes():
    """A small, valid PNG that the tool would never write (10 x 10, mid gray)."""
    buffer = io.BytesIO()
    Image.new("L", (10, 10), 123).save(buffer, "PNG")
    return buffer.getvalue()


def assert_old_or_complete(path):
    """An output file after an interrupted run: the earlier run's bytes, or a whole new PNG."""
    if path.read_bytes() != old_png_bytes():
        assert_complete_png(path)


def side(n_tokens):
    return mask.GRID_SIZE * n_tokens + mask.PIXELS_PER_WORD


# 1. long input ------------------------------------------------------------------------------

def test_text_longer_than_the_model_reads_is_one_line(tiny_h5, tmp_path):
    text = "the " * 62 + "[MASK]"  # [CLS] + 62 + [MASK] + [SEP] = 65 tokens; the tiny model reads 64
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    line = assert_one_line_failure(run)
    assert line == f"Text is too long: 65 tokens, and {tiny_h5} reads at most 64. Shorten it."
    assert run.stdout == "" and not (tmp_path / "out").exists()


def test_length_limit_is_inclusive_and_defaults_to_bert_base():
    def source(config):
        return types.SimpleNamespace(config=config, label="M")

    def ids(n):
        return {"input_ids": np.zeros((1, n), dtype=np.int64)}

    mask._check_length(ids(64), source({"max_position_embeddings": 64}))  # exactly the limit: fine
    with pytest.raises(models.UserError, match=r"^Text is too long: 65 tokens, and M reads at most 64\. Shorten it\.$"):
        mask._check_length(ids(65), source({"max_position_embeddings": 64}))
    mask._check_length(ids(512), source({}))  # BERT's 512 when the config doesn't say
    with pytest.raises(models.UserError, match="513 tokens, and M reads at most 512"):
        mask._check_length(ids(513), source({}))


# 2. odd text -------------------------------------------------------------------------------

ODD_TEXTS = {
    "emoji": "The 😀 and 👩‍👩‍👧 sat on the [MASK].",
    "accents": "Café naïve Ünïcödé [MASK] résumé.",
    "chinese": "猫坐在[MASK]上。",
    "arabic": "مرحبا [MASK] بالعالم",
    "hebrew-rtl": "שלום [MASK] עולם",
    "rtl-override": "\u202eThe [MASK] sat.\u202c",
    "control-chars": "\x00The\x07 [MASK]\x1b sat.\x7f",
    "invisible": "\u200b\ufeffThe [MASK]\u200d sat.",
    "tabs-newlines": "The\t[MASK]\r\nsat.",
    "combining": "The [MASK]\u0301 sat.",
    "long-word": "x" * 500 + " [MASK].",
    "glued-period": "[MASK].",
    "parentheses": "([MASK])",
    "quotes": "«[MASK]»!?",
    "only-mask": "[MASK]",
    "special-tokens-in-text": "[CLS] [SEP] [PAD] [UNK] [MASK]",
}


@pytest.mark.parametrize("text", list(ODD_TEXTS.values()), ids=list(ODD_TEXTS))
def test_odd_text_works(text, tiny_h5, fuzz_oracle, tmp_path):
    out = tmp_path / "out"
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(out), "--no-html"])
    assert run.status == 0, run
    before, after = text.split("[MASK]")
    assert fill_ins_parse(run.stdout, [(before, after)], fuzz_oracle[1]), run  # 3 sentences, text kept as is
    assert run.stderr == f"Wrote 4 diagrams, Attention_Overview.png to {out}\n"
    n = len(models.load_tokenizer(models.ModelSource(tiny_h5, tiny_h5))(text)["input_ids"])
    assert diagram_names(out) == [f"Attention_Layer{l}_Head{h}.png" for l in (1, 2) for h in (1, 2)]
    for name in diagram_names(out):
        assert_complete_png(out / name, (side(n), side(n)))
    assert leftovers(out) == []


@pytest.mark.parametrize("text", ["[mask]", "The [Mask] sat.", "([mAsK]).", "[mask] and [MASK]"])
def test_lowercase_mask_is_read_as_mask_with_a_note(text, tiny_h5, tmp_path):
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path), "--no-html"])
    assert run.status == 0, run
    assert run.stderr.splitlines()[0] == "Note: reading [mask] as [MASK]."
    assert len(run.stderr.splitlines()) == 2 and run.stderr.splitlines()[1].startswith("Wrote ")
    masks = text.count("[")
    assert len(run.stdout.splitlines()) == (3 if masks == 1 else 2 * (1 + 3))
    assert set(re.findall(r"\[mask\]", run.stdout, flags=re.IGNORECASE)) <= {"[MASK]"}  # none left lowercase


def test_text_starting_with_a_dash(tiny_h5, tmp_path):
    """argparse reads "-[MASK]..." as an option: one line (exit 2); after "--" it is the text."""
    options = ["--model", tiny_h5, "--output-dir", str(tmp_path), "--no-html"]
    assert "unrecognized arguments" in assert_one_line_failure(call_main(["-[MASK]"] + options), status=2)
    for argv in [options + ["--", "-[MASK]"], ["- a [MASK] b"] + options, ["-5 is [MASK]"] + options]:
        run = call_main(argv)
        assert run.status == 0 and len(run.stdout.splitlines()) == 3, run


@pytest.mark.parametrize("text", ["", " ", "   \t\n ", "\u3000\u2003"])
def test_empty_text_is_one_line(text, tiny_h5, tmp_path):
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert assert_one_line_failure(run) == "No text given: type a sentence containing [MASK]."
    assert not (tmp_path / "out").exists()


def test_empty_line_at_the_prompt_is_one_line(tiny_h5, tmp_path):
    run = call_main(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin="\n")
    assert assert_one_line_failure(run) == "No text given: type a sentence containing [MASK]."
    assert run.stdout == "Text: "


@pytest.mark.parametrize("stdin_errors", ["strict", "surrogateescape"])
def test_bytes_that_are_not_utf8_at_the_prompt_are_one_line(stdin_errors, tiny_h5, tmp_path):
    stdin = io.TextIOWrapper(io.BytesIO(b"The \xff\xfe [MASK] sat.\n"), encoding="utf-8", errors=stdin_errors)
    run = call_main(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin=stdin)
    assert assert_one_line_failure(run) == "Text is not valid UTF-8: check the terminal's encoding."


def test_lone_surrogates_in_text_are_one_line(tiny_h5, tmp_path):
    for text in ["\udcff [MASK]", "[MASK] \ud800"]:
        run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path)])
        assert assert_one_line_failure(run) == "Text is not valid UTF-8: check the terminal's encoding."


def test_bytes_that_are_not_utf8_on_the_command_line_are_one_line(tiny_h5, tmp_path):
    """A real process: Python turns the byte 0xff of argv into a lone surrogate."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "mask.py").encode(), b"The \xff [MASK] sat.",
         b"--model", tiny_h5.encode(), b"--output-dir", str(tmp_path).encode()],
        capture_output=True, timeout=120,
    )
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr == b"Text is not valid UTF-8: check the terminal's encoding.\n"


HOSTILE_LABELS = ["\x00", "a\x00b", "😀", "中文", "مرحبا", "\u202e", "\u200b", "", "\ud800", "\n", "\t",
                  "e\u0301", "\U0010ffff", "x" * 500, "\ufffd"]


def test_labels_the_font_cannot_draw_never_crash_the_diagram(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tokens = ["[CLS]", *HOSTILE_LABELS, "[SEP]"]
    n = len(tokens)
    mask.generate_diagram(1, 1, tokens, np.full((n, n), 1 / n))
    mask.generate_diagram(1, 2, [diagrams.printable(token) for token in tokens], np.full((n, n), 1 / n))
    for name in ["Attention_Layer1_Head1.png", "Attention_Layer1_Head2.png"]:
        assert_complete_png(tmp_path / name, (side(n), side(n)))


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_printable_labels_are_printable_and_keep_printable_text(text):
    label = diagrams.printable(text)
    assert label and label.isprintable()
    if text and text.isprintable():
        assert label == text
    else:
        assert len(label) == max(len(text), 1)


def test_words_mode_with_hostile_text(tiny_h5, tmp_path):
    text = "\x00play##ing 😀 [MASK]\u200b##s 中文."
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path), "--words", "--patterns", "--no-html"])
    assert run.status == 0, run
    for name in diagram_names(tmp_path):
        assert_complete_png(tmp_path / name)


# 3. files: atomic writes, disk full, read-only, Ctrl-C -------------------------------------

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
    old_diagrams_and_failing_encoder(out, monkeypatch, lambda n: OSError(errno.ENOSPC, "No space left on device") if n > 2 else None)
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
    monkeypatch.setattr(models, "load_model", lambda source: pytest.fail("loaded the model first"))
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


@pytest.fixture(scope="module")
def many_heads(tmp_path_factory):
    """6 layers x 12 heads: a run writes 72 diagrams, long enough to interrupt."""
    return build_bert_dir(str(tmp_path_factory.mktemp("many_heads")), layers=6, heads=12, hidden=48, seed=5)


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


def test_ctrl_c_while_writing_the_diagrams(many_heads, tmp_path):
    """
    SIGINT as soon as the first diagram file appears: exit 130 with one line (or, if the
    run won the race, 0 with every file), never a traceback, a temporary or a truncated file.
    """
    out = tmp_path / "out"
    out.mkdir()
    (out / "Attention_Layer6_Head12.png").write_bytes(old_png_bytes())
    text = "The turtle slowly moved across the road , then the cat sat on the mat and the dog ran to the [MASK] ."
    process = start([text, "--model", many_heads, "--output-dir", str(out), "--no-html"])
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if any(name.startswith((".Attention_", "Attention_Layer1")) for name in os.listdir(out)):
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert len(stdout.decode().splitlines()) == 3  # the fill-ins were printed before the drawing
    if process.returncode == 130:
        assert stderr == b"Interrupted.\n"
        print(f"interrupted with {len(diagram_names(out))} of 72 diagrams in place")
    else:
        assert process.returncode == 0 and stderr.decode().startswith("Wrote 72 diagrams"), stderr
        assert len(diagram_names(out)) == 72
    assert leftovers(out) == []
    n = len(models.load_tokenizer(models.ModelSource(many_heads, many_heads))(text)["input_ids"])
    for name in diagram_names(out):
        if (out / name).read_bytes() != old_png_bytes():
            assert_complete_png(out / name, (side(n), side(n)))


# 4. untrusted models -----------------------------------------------------------------------

def copy_model(source, target, weights=True):
    shutil.copytree(source, target, ignore=None if weights else shutil.ignore_patterns("*.h5", "*.safetensors"))
    return target


def edit_config(directory, **changes):
    path = os.path.join(directory, "config.json")
    with open(path) as file:
        config = json.load(file)
    with open(path, "w") as file:
        json.dump({**config, **changes}, file)


def write(directory, name, data):
    with open(os.path.join(directory, name), "wb" if isinstance(data, bytes) else "w") as file:
        file.write(data)


class _Unpickled:
    """Unpickling this runs code (it writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('unpickled')",)


def make_safetensors_dir(model, d, tensors):
    from safetensors.numpy import save_file

    copy_model(model, d, weights=False)
    save_file(tensors, os.path.join(d, "model.safetensors"))


def _truncated_safetensors(model, d):
    make_safetensors_dir(model, d, {"bert.embeddings.word_embeddings.weight": np.ones((100, 32), np.float32)})
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as file:
        data = file.read()
    write(d, "model.safetensors", data[: len(data) // 2])


def _empty_hdf5(model, d):
    import h5py

    copy_model(model, d, weights=False)
    h5py.File(os.path.join(d, "tf_model.h5"), "w").close()


def _drop_mask_token(model, d):
    copy_model(model, d)
    for name in ["tokenizer_config.json", "special_tokens_map.json"]:
        with open(os.path.join(d, name)) as file:
            data = json.load(file)
        data["mask_token"] = None
        write(d, name, json.dumps(data))


BAD_MODELS = [
    ("gpt2-config", lambda m, d: (copy_model(m, d), edit_config(d, model_type="gpt2")),
     "is not a BERT model (model_type: gpt2); this tool reads BERT masked LMs only."),
    ("config-not-json", lambda m, d: (copy_model(m, d), write(d, "config.json", "{model_type: bert")),
     "config.json: Expecting property name"),
    ("config-is-a-list", lambda m, d: (copy_model(m, d), write(d, "config.json", '["bert"]')),
     "is not a BERT model (model_type: unknown)"),
    ("config-not-utf8", lambda m, d: (copy_model(m, d), write(d, "config.json", b'{"model_type": "\xff"}')),
     "Cannot read"),
    ("heads-do-not-divide", lambda m, d: (copy_model(m, d), edit_config(d, num_attention_heads=3)),
     "hidden_size 32 is not a multiple of num_attention_heads 3."),
    ("length-not-a-number", lambda m, d: (copy_model(m, d), edit_config(d, max_position_embeddings="abc")),
     "max_position_embeddings is 'abc', not a positive whole number."),
    ("zero-layers", lambda m, d: (copy_model(m, d), edit_config(d, num_hidden_layers=0)),
     "num_hidden_layers is 0, not a positive whole number."),
    ("more-layers-than-weights", lambda m, d: (copy_model(m, d), edit_config(d, num_hidden_layers=3)),
     "don't fit its config: tf_model.h5 lacks bert/encoder/layer_._2/"),
    ("vocab-size-mismatch", lambda m, d: (copy_model(m, d), edit_config(d, vocab_size=7)), "tf_model.h5"),
    ("h5-garbage", lambda m, d: (copy_model(m, d, weights=False), write(d, "tf_model.h5", os.urandom(4096))),
     "tf_model.h5: Unable to synchronously open file (file signature not found)"),
    ("h5-empty", _empty_hdf5, "don't fit its config: tf_model.h5 lacks"),
    ("safetensors-garbage",
     lambda m, d: (copy_model(m, d, weights=False), write(d, "model.safetensors", os.urandom(4096))),
     "model.safetensors: Error while deserializing header"),
    ("safetensors-truncated", _truncated_safetensors, "model.safetensors: Error while deserializing header"),
    ("safetensors-missing-weights",
     lambda m, d: make_safetensors_dir(m, d, {"unrelated": np.zeros(3, np.float32)}),
     "don't fit its config: the safetensors weights lack"),
    ("safetensors-wrong-shape",
     lambda m, d: make_safetensors_dir(m, d, {"bert.embeddings.word_embeddings.weight": np.zeros((5, 32), np.float32),
                                              "cls.predictions.bias": np.zeros(5, np.float32)}),
     "don't fit its config"),
    ("no-weights", lambda m, d: copy_model(m, d, weights=False), "has no weights (tf_model.h5 or model.safetensors)."),
    ("no-tokenizer", lambda m, d: (copy_model(m, d), *[os.remove(os.path.join(d, f)) for f in
                                                       ["vocab.txt", "tokenizer.json"]]),
     "Cannot load the tokenizer of"),
    ("tokenizer-json-garbage", lambda m, d: (copy_model(m, d), write(d, "tokenizer.json", "{1: 2")),
     "Cannot load the tokenizer of"),
    ("no-mask-token", _drop_mask_token, "has no mask token."),
]


@pytest.mark.parametrize("build, expected", [case[1:] for case in BAD_MODELS], ids=[case[0] for case in BAD_MODELS])
def test_broken_or_foreign_model_is_refused_in_one_line(build, expected, tiny_h5, tmp_path):
    model_dir = str(tmp_path / "model")
    build(tiny_h5, model_dir)
    run = call_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    line = assert_one_line_failure(run)
    assert expected in line, line
    assert run.stdout == ""
    assert not (tmp_path / "out").exists() or diagram_names(tmp_path / "out") == []


def test_pickled_weights_are_never_opened(tiny_h5, tmp_path):
    marker = tmp_path / "unpickled.txt"
    model_dir = copy_model(tiny_h5, str(tmp_path / "model"), weights=False)
    write(model_dir, "pytorch_model.bin", pickle.dumps(_Unpickled(str(marker))))
    run = call_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert assert_one_line_failure(run) == (
        f"{model_dir} only has pytorch_model.bin, a pickle this tool will not open; "
        "convert it to model.safetensors (or tf_model.h5)."
    )
    assert not marker.exists()
    # and the marker mechanism works: loading the file for real would have run it
    with open(os.path.join(model_dir, "pytorch_model.bin"), "rb") as file:
        pickle.load(file)
    assert marker.exists()


# A model's own Python file: importing it writes a marker
REMOTE_CODE = (
    "open({marker!r}, 'a').write(__name__ + '\\n')\n"
    "from transformers import BertTokenizerFast as EvilTokenizer\n"
)


@pytest.mark.parametrize("tokenizer_class", ["EvilTokenizer", "BertTokenizer"])
def test_auto_map_never_runs_the_models_code(tokenizer_class, tiny_h5, tmp_path, monkeypatch):
    marker = tmp_path / "remote-code-ran.txt"
    model_dir = copy_model(tiny_h5, str(tmp_path / "model"))
    for module in ["tokenization_evil", "configuration_evil", "modeling_evil"]:
        write(model_dir, module + ".py", REMOTE_CODE.format(marker=str(marker)))
    auto_map = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", "tokenization_evil.EvilTokenizer"]}
    edit_config(model_dir, auto_map={**auto_map, "AutoConfig": "configuration_evil.EvilConfig",
                                     "AutoModelForMaskedLM": "modeling_evil.EvilModel"})
    with open(os.path.join(model_dir, "tokenizer_config.json")) as file:
        tokenizer_config = json.load(file)
    write(model_dir, "tokenizer_config.json",
          json.dumps({**tokenizer_config, "tokenizer_class": tokenizer_class, "auto_map": auto_map}))

    import transformers

    real, seen = transformers.AutoTokenizer.from_pretrained, []

    def from_pretrained(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    run = call_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out"), "--no-html"])
    assert seen == [False]
    assert not marker.exists(), marker.read_text()
    if tokenizer_class == "EvilTokenizer":  # only the model's own code could build it: refused
        assert "contains custom code" in assert_one_line_failure(run)
    else:  # the standard tokenizer: the auto_map is ignored and the run works
        assert run.status == 0 and len(run.stdout.splitlines()) == 3, run


# 5. properties of the contract functions ---------------------------------------------------

SCALARS = [float, np.float32, np.float64, lambda x: tf.constant(x, dtype=tf.float64)]


@given(st.floats(0, 1), st.sampled_from(SCALARS))
@settings(max_examples=300, deadline=None)
def test_color_is_the_rounded_gray_of_the_score(score, make):
    value = make(score)
    g = round(float(value) * 255)
    color = mask.get_color_for_attention_score(value)
    assert color == (g, g, g) and all(type(channel) is int for channel in color)


@given(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not 0 <= x <= 1), st.sampled_from(SCALARS[:3]))
@settings(max_examples=200, deadline=None)
def test_color_clips_scores_outside_0_1_and_draws_nan_black(score, make):
    with np.errstate(over="ignore"):  # np.float32(1e300) is inf
        value = make(score)
    f = float(value)  # np.float32 may round a tiny score to 0
    expected = 0 if np.isnan(f) or f <= 0 else 255 if f >= 1 else round(f * 255)
    assert mask.get_color_for_attention_score(value) == (expected,) * 3
    assert all(type(channel) is int for channel in mask.get_color_for_attention_score(value))


def test_color_docstring_documents_clipping_and_nan():
    doc = mask.get_color_for_attention_score.__doc__
    assert "clipped" in doc and "NaN" in doc


ID_FORMS = {
    "list": lambda ids: {"input_ids": [ids]},
    "numpy-int64": lambda ids: {"input_ids": np.array([ids], dtype=np.int64)},
    "numpy-int32": lambda ids: {"input_ids": np.array([ids], dtype=np.int32)},
    "tf": lambda ids: {"input_ids": tf.constant([ids], dtype=tf.int32)},
}


@given(
    ids=st.lists(st.integers(0, 30), min_size=1, max_size=40),
    mask_id=st.integers(0, 30),
    extra=st.lists(st.integers(0, 40), max_size=3),
    form=st.sampled_from(list(ID_FORMS)),
)
@settings(max_examples=300, deadline=None)
def test_mask_token_index_matches_a_reference(ids, mask_id, extra, form):
    for position in extra:  # sometimes put the mask in more places
        ids.insert(min(position, len(ids)), mask_id)
    reference = ids.index(mask_id) if mask_id in ids else None
    index = mask.get_mask_token_index(mask_id, ID_FORMS[form](ids))
    assert index == reference and (index is None or type(index) is int)
    assert mask.get_mask_token_indices(mask_id, ID_FORMS[form](ids)) == [i for i, t in enumerate(ids) if t == mask_id]


@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
@settings(max_examples=300, deadline=None)
def test_gray_levels_agree_with_the_color_of_each_score(scores):
    levels = diagrams.gray_levels(scores)
    assert levels.dtype == np.uint8 and levels.shape == scores.shape
    expected = [mask.get_color_for_attention_score(score)[0] for score in scores.flat]
    assert levels.ravel().tolist() == expected


PIECES = ["[CLS]", "[SEP]", "[MASK]", "play", "##ing", "##s", "the", ".", "##", "un", "##known"]


@given(
    tokens=st.lists(st.sampled_from(PIECES), min_size=1, max_size=12),
    heads=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=200, deadline=None)
def test_merged_word_pieces_keep_rows_summing_to_1(tokens, heads, seed):
    n = len(tokens)
    weights = np.random.default_rng(seed).random((2, heads, n, n)) + 1e-3
    attentions = (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)
    words, merged = patterns.merge_word_pieces(tokens, attentions, ["[CLS]", "[SEP]", "[MASK]"])
    assert merged.shape == (2, heads, len(words), len(words))
    np.testing.assert_allclose(merged.sum(axis=-1), 1, atol=1e-5)
    assert "".join(w for w in words) == "".join(t[2:] if t.startswith("##") and i and tokens[i - 1] not in
                                                 ("[CLS]", "[SEP]", "[MASK]") else t for i, t in enumerate(tokens))


# 6. CLI fuzz -------------------------------------------------------------------------------

FUZZ = collections.Counter()
FUZZ_MESSAGES = collections.Counter()

FRAGMENTS = [
    "the cat sat on the", "mat", "the turtle slowly moved across", "😀", "👩‍👩‍👧", "猫坐在", "مرحبا بالعالم",
    "שלום עולם", "café naïve", "\x00", "\x07", "\x1b[31m", "\u200b", "\ufeff", "\u202e", "\r\n", "\t", "x" * 500,
    "(", ")", ".", "...", "'", '"', "[", "]", "[MAS", "K]", "##ing", "[CLS]", "[SEP]", "[UNK]", " ", "",
    "the cat sat on the mat . " * 12,
]
MASKS = ["[MASK]", "[mask]", "[Mask]", "[mAsK]", "[MASK].", "([MASK])", "[MASK],", '"[mask]"', "[MASK]?!", "«[MASK]»",
         "[MASK][MASK]", "¿[mask]?", "\x00[MASK]\x00"]


@st.composite
def sentences(draw):
    piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(st.characters(exclude_categories=["Cs"]), max_size=15))
    parts = [draw(piece)]
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 1, 2, 3]))):
        parts += [draw(st.sampled_from(MASKS)), draw(piece)]
    return draw(st.sampled_from([" ", "", "\n", "\u3000"])).join(parts)


def fill_ins_parse(stdout, groups, words):
    """True if stdout is exactly the K sentences of each group (prefix + word + suffix), with headers."""
    rest = stdout
    for nth, (prefix, suffix) in enumerate(groups):
        if len(groups) > 1:
            header = f"Mask {nth + 1} of {len(groups)}:\n"
            if not rest.startswith(header):
                return False
            rest = rest[len(header):]
        for _ in range(mask.K):
            sentence = next((prefix + w + suffix + "\n" for w in words if rest.startswith(prefix + w + suffix + "\n")),
                            None)
            if sentence is None:
                return False
            rest = rest[len(sentence):]
    return rest == ""


@pytest.fixture(scope="module")
def fuzz_oracle(tiny_h5):
    tokenizer = models.load_tokenizer(models.ModelSource(tiny_h5, tiny_h5))
    words = sorted({tokenizer.decode([i]) for i in range(tokenizer.vocab_size)}, key=len, reverse=True)
    return tokenizer, words


@given(text=sentences(), words_mode=st.booleans())
@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_cli_fuzz(text, words_mode, tiny_h5, fuzz_oracle, tmp_path_factory):
    """
    Hostile sentences through main(): either exit 0 with exactly the fill-in sentences and
    every diagram, or exit 1 with exactly one line; never a traceback.
    Which of the two is decided by the tokenizer: empty, too long, or no mask gives the error.
    """
    tokenizer, words = fuzz_oracle
    base = tmp_path_factory.getbasetemp()
    out = tempfile.mkdtemp(dir=base, prefix="fuzz")
    try:
        options = ["--model", tiny_h5, "--output-dir", out, "--no-html"] + ["--words"] * words_mode
        run = call_main(options + ["--", text])  # "--": a sentence may start with "-"
        FUZZ["cases"] += 1
        assert "Traceback" not in run.stderr
        normalized = re.sub(r"\[mask\]", "[MASK]", text, flags=re.IGNORECASE)
        note = "Note: reading [mask] as [MASK].\n" if normalized != text else ""
        FUZZ["with note"] += bool(note)
        if not text.strip():
            expected_error = "No text given: type a sentence containing [MASK]."
            note = ""
        else:
            n = len(tokenizer(normalized)["input_ids"])
            if n > 64:
                expected_error = f"Text is too long: {n} tokens, and {tiny_h5} reads at most 64. Shorten it."
            elif "[MASK]" not in normalized:
                expected_error = "Input must include mask token [MASK]."
            else:
                expected_error = None
        if expected_error:  # one line: the [mask] note comes only once the text is usable
            assert (run.status, run.stdout, run.stderr) == (1, "", expected_error + "\n"), run
            FUZZ["exit 1 (one-line error)"] += 1
            FUZZ_MESSAGES[re.sub(r"\d+", "N", expected_error.replace(tiny_h5, "MODEL"))] += 1
            return
        assert run.status == 0, run
        FUZZ["exit 0"] += 1
        FUZZ["masks: %d" % normalized.count("[MASK]")] += 1
        starts = [m.start() for m in re.finditer(re.escape("[MASK]"), normalized)]
        groups = [(normalized[:s], normalized[s + len("[MASK]"):]) for s in starts]
        assert fill_ins_parse(run.stdout, groups, words), run
        assert run.stderr == note + f"Wrote 4 diagrams, Attention_Overview.png to {out}\n", run
        names = sorted(os.listdir(out))
        assert names == ["Attention_Layer1_Head1.png", "Attention_Layer1_Head2.png", "Attention_Layer2_Head1.png",
                         "Attention_Layer2_Head2.png", "Attention_Overview.png"], names
        with Image.open(os.path.join(out, "Attention_Layer2_Head2.png")) as image:
            if not words_mode:
                assert image.size == (side(n), side(n))
            image.load()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_cli_fuzz_summary():
    """Runs after the fuzz (pytest keeps file order): it must have seen both outcomes."""
    if not FUZZ["cases"]:
        pytest.skip("the fuzz did not run in this session")
    summary = ", ".join(f"{key}: {value}" for key, value in sorted(FUZZ.items()))
    messages = "; ".join(f"{value} x {key!r}" for key, value in FUZZ_MESSAGES.most_common())
    print(f"\nCLI fuzz: {summary}\nCLI fuzz errors: {messages}")
    assert FUZZ["exit 0"] > 0 and FUZZ["exit 1 (one-line error)"] > 0

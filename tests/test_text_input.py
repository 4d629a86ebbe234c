"""
Text from users: too long, odd, empty, undecodable, hostile labels, a lowercase or
missing mask. Every failure is one line on stderr and a non-zero exit status.
"""

import io
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest
from conftest import (
    ROOT,
    assert_complete_png,
    assert_one_line_failure,
    call_main,
    diagram_names,
    fill_ins_parse,
    leftovers,
    side,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import attention_run
import diagrams
import mask
import model_loading
import model_source
from errors import UserError

TEXT = "The turtle slowly moved across the [MASK]."


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

    attention_run.check_length(64, source({"max_position_embeddings": 64}))  # exactly the limit: fine
    with pytest.raises(UserError, match=r"^Text is too long: 65 tokens, and M reads at most 64\. Shorten it\.$"):
        attention_run.check_length(65, source({"max_position_embeddings": 64}))
    attention_run.check_length(512, source({}))  # BERT's 512 when the config doesn't say
    with pytest.raises(UserError, match="513 tokens, and M reads at most 512"):
        attention_run.check_length(513, source({}))


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
def test_odd_text_works(text, tiny_h5, tiny_h5_words, tmp_path):
    out = tmp_path / "out"
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(out), "--no-html"])
    assert run.status == 0, run
    before, after = text.split("[MASK]")
    assert fill_ins_parse(run.stdout, [(before, after)], tiny_h5_words[1]), run  # 3 sentences, text kept as is
    assert run.stderr == f"Wrote 4 diagrams, Attention_Overview.png to {out}\n"
    n = len(model_loading.load_tokenizer(model_source.ModelSource(tiny_h5, tiny_h5))(text)["input_ids"])
    assert diagram_names(out) == [f"Attention_Layer{layer}_Head{head}.png" for layer in (1, 2) for head in (1, 2)]
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



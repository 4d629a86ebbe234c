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


@pytest.fixture
def tokenizer_must_not_run(monkeypatch):
    """Tokenizing a huge text takes seconds and gigabytes: these texts must be refused before it."""
    from transformers import PreTrainedTokenizerBase

    def refuse(self, *args, **kwargs):
        raise AssertionError("the text was tokenized")

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", refuse)


@pytest.mark.parametrize("kind", ["words", "one-word", "spaces"])
def test_text_far_over_the_limit_is_refused_by_its_length_first(kind, tiny_h5, tmp_path, tokenizer_must_not_run):
    """A 20 MB line on stdin used to take 24 s and 3.4 GB before "Text is too long"; 60 MB killed the process."""
    size = 10 * 10**6  # (over 16 Mi characters, reading stdin stops first: see the next tests)
    text = {"words": "the cat [MASK] " * (size // 15), "one-word": "x" * size, "spaces": "a" + " " * size + "[MASK]"}
    run = call_main(["--model", tiny_h5, "--output-dir", str(tmp_path / "out")], stdin=text[kind] + "\n")
    n = len(text[kind])
    assert_one_line_failure(run, f"Text is too long: {n:,} characters, far more than the 64 tokens "
                                 f"{tiny_h5} reads (at most {64 * attention_run.CHARS_PER_POSITION:,} characters "
                                 "are read). Shorten it.")
    assert run.stdout == "Text: " and not (tmp_path / "out").exists()


def test_the_character_bound_never_refuses_a_text_that_fits(tiny_h5, tmp_path):
    """Right at the bound: a text that fits in tokens but is mostly spaces still runs."""
    bound = 64 * attention_run.CHARS_PER_POSITION
    text = "The cat sat on the [MASK]." + " " * (bound - 26)
    assert len(text) == bound
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--no-html"])
    assert run.status == 0 and len(run.stdout.splitlines()) == 3, run


def test_an_endless_line_on_stdin_is_read_only_so_far(tiny_h5, tmp_path, monkeypatch, tokenizer_must_not_run):
    """`cat /dev/zero | mask.py` (or a 20 MB line): at most MAX_TEXT_CHARS characters are read, then one line."""
    monkeypatch.setattr(attention_run, "MAX_TEXT_CHARS", 1000)

    class Endless(io.TextIOBase):
        read_so_far = 0

        def readline(self, size=-1):
            assert 0 < size <= 1001, size  # never an unbounded read
            Endless.read_so_far += size
            return "x" * size

    run = call_main(["--model", tiny_h5, "--output-dir", str(tmp_path / "out")], stdin=Endless())
    assert_one_line_failure(run, "Text is too long: more than 1,000 characters.")
    assert Endless.read_so_far == 1001


def test_top_k_over_the_vocabulary_gives_the_whole_vocabulary_with_a_note(tiny_h5, tmp_path):
    run = call_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "--no-html", "-k", "5000"])
    assert run.status == 0, run
    assert len(run.stdout.splitlines()) == 94  # the tiny model's vocabulary
    assert run.stderr.splitlines()[0] == (
        f"Note: 5,000 fill-ins per mask is more than the 94 tokens {tiny_h5} knows; giving all 94."
    )


def test_many_masks_times_a_large_k_is_refused_before_the_model_loads(tiny_h5, tmp_path, monkeypatch):
    """510 masks with -k 5000 was a MemoryError traceback: masks x K sentences, each a copy of the text, are bounded."""
    monkeypatch.setattr(attention_run, "MAX_FILL_INS", 1000)  # the tiny model can't reach the real bounds
    attention_run.open_model.cache_clear()
    monkeypatch.setattr(model_loading, "load_model", lambda source: pytest.fail("loaded the model first"))
    text = " ".join(["[MASK]"] * 62)  # 62 masks + [CLS] + [SEP] = the tiny model's 64 positions
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "-k", "50"])
    assert_one_line_failure(run, "Too many fill-ins: 62 masks x 50 makes 3,100 sentences of 433 characters; "
                                 "a run builds at most 1,000 sentences and 20,000,000 characters of them. "
                                 "Use -k 16 or less.")
    assert run.stdout == "" and not (tmp_path / "out").exists()
    monkeypatch.setattr(attention_run, "MAX_FILL_IN_CHARS", 433 * 62 - 1)  # not even one fill-in per mask
    run = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path / "out"), "-k", "1"])
    assert assert_one_line_failure(run).endswith("Use fewer masks or a shorter text.")
    request = attention_run.prepare(text, tiny_h5)
    monkeypatch.setattr(attention_run, "MAX_FILL_IN_CHARS", 20_000_000)
    assert request.checked_top_k(16) == (16, [])
    with pytest.raises(UserError, match="Use -k 16 or less"):
        request.checked_top_k(17)


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



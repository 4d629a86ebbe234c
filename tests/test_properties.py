"""
Property-based tests (hypothesis) of the pure functions: the contract functions,
gray levels, mask lookup, mask normalization and the length check, word merging;
then a short fuzz of whole command-line runs on a tiny model.
"""

import collections
import os
import pathlib
import re
import shutil
import stat
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from conftest import call_main, fill_ins_parse, side
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import attention_run
import diagrams
import fill_ins
import mask
import patterns
from errors import UserError

# the contract functions -----------------------------------------------------------------

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
    assert fill_ins.mask_positions(mask_id, ID_FORMS[form](ids)["input_ids"][0]) == [
        i for i, t in enumerate(ids) if t == mask_id]


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


@given(
    lengths=st.lists(st.integers(1, 4), min_size=1, max_size=12),
    heads=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=200, deadline=None)
def test_merged_words_keep_rows_summing_to_1(lengths, heads, seed):
    groups, start = [], 0
    for length in lengths:  # consecutive words of 1-4 tokens each
        groups.append(list(range(start, start + length)))
        start += length
    n = start
    weights = np.random.default_rng(seed).random((2, heads, n, n)) + 1e-3
    attentions = (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)
    merged = patterns.merge_words(groups, attentions)
    assert merged.shape == (2, heads, len(groups), len(groups))
    np.testing.assert_allclose(merged.sum(axis=-1), 1, atol=1e-5)
    # attention to a word is the sum over its tokens, averaged over the attending word's tokens
    w, v = len(groups) - 1, 0
    expected = attentions[1, 0][np.ix_(groups[w], groups[v])].sum(axis=1).mean()
    assert merged[1, 0, w, v] == pytest.approx(expected, abs=1e-5)


# mask normalization, the length check and the mask lookup, on hostile text ------------------

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


def expected_outcome(text, tokenizer, model_dir):
    """What the tool must do with `text`: (the text as read, the error line or None), from first principles."""
    normalized = re.sub(r"\[mask\]", "[MASK]", text, flags=re.IGNORECASE)
    if len(text) > 64 * attention_run.CHARS_PER_POSITION:  # refused by its length alone, before tokenizing
        return normalized, (f"Text is too long: {len(text):,} characters, far more than the 64 tokens {model_dir} "
                            f"reads (at most {64 * attention_run.CHARS_PER_POSITION:,} characters are read). "
                            "Shorten it.")
    if not text.strip():
        return normalized, "No text given: type a sentence containing [MASK]."
    n = len(tokenizer(normalized)["input_ids"])
    if n > 64:
        return normalized, f"Text is too long: {n} tokens, and {model_dir} reads at most 64. Shorten it."
    if "[MASK]" not in normalized:
        return normalized, "Input must include mask token [MASK]."
    return normalized, None


@given(text=sentences())
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_prepare_reads_or_refuses_hostile_text(text, tiny_h5, tiny_h5_words):
    """
    attention_run.prepare (normalization, length check, mask lookup; no model run):
    the text as read has every [mask] in upper case and nothing else changed, the
    masks are found where the tokenizer put them, and refusals carry the right line.
    """
    tokenizer, _ = tiny_h5_words
    normalized, error = expected_outcome(text, tokenizer, tiny_h5)
    if error:
        with pytest.raises(UserError) as refused:
            attention_run.prepare(text, tiny_h5)
        assert str(refused.value) == error
        FUZZ_MESSAGES[re.sub(r"\d+", "N", error.replace(tiny_h5, "MODEL"))] += 1
        return
    request = attention_run.prepare(text, tiny_h5)
    assert request.text == normalized
    ids = request.encoding["input_ids"][0].tolist()
    assert request.mask_positions == [i for i, t in enumerate(ids) if t == tokenizer.mask_token_id]
    assert len(request.mask_positions) == normalized.count("[MASK]")
    assert request.notes == (["Note: reading [mask] as [MASK]."] if normalized != text else [])
    FUZZ_MESSAGES["read"] += 1


# hostile lengths, many masks, large K (issue 17) -----------------------------------------------

BOUND = 64 * 1000  # the tiny model's 64 positions x attention_run.CHARS_PER_POSITION
PADDING = [" ", "x", "the ", "[MASK] ", "\u3000", "猫", "\x00"]


@st.composite
def hostile_lengths(draw):
    """A sentence padded to a length near the character bound (either side of it) or far past it."""
    sentence = draw(sentences())
    target = draw(st.one_of(st.integers(BOUND - 3, BOUND + 3), st.sampled_from([BOUND // 2, 2 * BOUND, 40 * BOUND])))
    pad = draw(st.sampled_from(PADDING))
    padding = pad * (max(0, target - len(sentence)) // len(pad) + 1)
    where = draw(st.sampled_from(["before", "after"]))
    text = padding + sentence if where == "before" else sentence + padding
    return text[:target] if where == "after" else text[len(text) - target:]


@given(text=hostile_lengths())
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_prepare_refuses_text_far_too_long_before_tokenizing(text, tiny_h5, tiny_h5_words):
    """Past the bound: refused by its length, and the tokenizer never sees it. Within it: the usual rules."""
    assert attention_run.CHARS_PER_POSITION * 64 == BOUND
    tokenizer, _ = tiny_h5_words
    normalized, error = expected_outcome(text, tokenizer, tiny_h5) if len(text) > BOUND else (None, None)
    opened = attention_run.open_model(tiny_h5)
    real, calls = type(opened.tokenizer).__call__, []
    type(opened.tokenizer).__call__ = lambda self, *args, **kwargs: calls.append(1) or real(self, *args, **kwargs)
    try:
        if error:
            with pytest.raises(UserError) as refused:
                attention_run.prepare(text, tiny_h5)
            assert str(refused.value) == error and calls == []
            FUZZ_MESSAGES["refused by characters"] += 1
            return
        normalized, error = expected_outcome(text, tokenizer, tiny_h5)
        if error:
            with pytest.raises(UserError) as refused:
                attention_run.prepare(text, tiny_h5)
            assert str(refused.value) == error
        else:
            assert attention_run.prepare(text, tiny_h5).text == normalized
        FUZZ_MESSAGES["within the character bound"] += 1
    finally:
        type(opened.tokenizer).__call__ = real


@given(masks=st.integers(1, 62), filler=st.integers(0, 40), k=st.one_of(st.integers(1, 200), st.integers(1, 10**9)),
       most=st.integers(1, 20_000), most_chars=st.integers(1, 2_000_000))
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
def test_fill_ins_per_mask_are_capped_and_bounded(masks, filler, k, most, most_chars, tiny_h5):
    """K over the vocabulary gives the vocabulary with a note; masks x K sentences past a bound are refused."""
    words = min(filler, 62 - masks)  # [CLS] + masks + words + [SEP] within the 64 positions
    text = " ".join(["[MASK]"] * masks + ["cat"] * words)
    request = attention_run.prepare(text, tiny_h5)
    with pytest.MonkeyPatch.context() as patch:  # the real bounds are out of the tiny model's reach
        patch.setattr(attention_run, "MAX_FILL_INS", most)
        patch.setattr(attention_run, "MAX_FILL_IN_CHARS", most_chars)
        check_fill_in_bounds(request, text, masks, k, most, most_chars, tiny_h5)


def check_fill_in_bounds(request, text, masks, k, most, most_chars, tiny_h5):
    given_k = min(k, 94)  # the tiny model's vocabulary
    note = [f"Note: {k:,} fill-ins per mask is more than the 94 tokens {tiny_h5} knows; giving all 94."] * (k > 94)
    if masks * given_k <= most and masks * given_k * len(text) <= most_chars:
        assert request.checked_top_k(k) == (given_k, note)
        FUZZ_MESSAGES["fill-ins within bounds"] += 1
        return
    with pytest.raises(UserError) as refused:
        request.checked_top_k(k)
    largest = min(most // masks, most_chars // (masks * len(text)))
    assert str(refused.value).endswith(f"Use -k {largest} or less." if largest else
                                       "Use fewer masks or a shorter text.")
    if largest:  # the advice is right: that K passes, one more does not
        assert request.checked_top_k(largest)[0] == largest
        with pytest.raises(UserError):
            request.checked_top_k(largest + 1)
    FUZZ_MESSAGES["too many fill-ins"] += 1


# hostile --save and --output-dir names (issue 17, item 14): checked before the run, one line, nothing damaged

NAME_CASES = ["empty", "dot", "255 bytes", "256 bytes", "newline", "existing folder", "missing folder", "a file",
              "inside a file", "fifo without a reader", "link to /dev/null", "link to a file"]


def make_name(case, place):
    """A path for `case` under `place` (made as the case needs); returns (path, what the run must give)."""
    if case == "empty":
        return "", "usage"
    if case == "dot":
        return ".", "dot"
    if case in ("255 bytes", "256 bytes"):
        return os.path.join(place, "é" * 125 + ("x" * 5 if case == "255 bytes" else "x" * 6)), case
    if case == "newline":
        return os.path.join(place, "two\nlines"), "ok"
    if case == "existing folder":
        os.mkdir(os.path.join(place, "folder"))
        return os.path.join(place, "folder"), case
    if case == "missing folder":
        return os.path.join(place, "nowhere", "x"), case
    if case in ("a file", "inside a file"):
        with open(os.path.join(place, "file"), "w") as file:
            file.write("mine")
        return os.path.join(place, "file", "x") if case == "inside a file" else os.path.join(place, "file"), case
    if case == "fifo without a reader":
        os.mkfifo(os.path.join(place, "fifo"))
        return os.path.join(place, "fifo"), case
    target = os.devnull if case == "link to /dev/null" else os.path.join(place, "target")
    if case == "link to a file":
        with open(target, "w") as file:
            file.write("mine")
    os.symlink(target, os.path.join(place, "link"))
    return os.path.join(place, "link"), case


@given(case=st.sampled_from(NAME_CASES), option=st.sampled_from(["--save", "--output-dir"]))
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_cli_fuzz_output_names(case, option, tiny_h5, tmp_path_factory):
    """Either the run works and the name's file(s) are written, or one line says why, before anything is printed
    when it can be known up front; a FIFO, a link or a file the user had is never replaced by something else."""
    place = tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="names")
    try:
        name, expected = make_name(case, place)
        other = os.path.join(place, "out") if option == "--save" else os.path.join(place, "run.npz")
        argv = ["The cat sat on the [MASK].", "--model", tiny_h5, "--no-html", option, name,
                "--output-dir" if option == "--save" else "--save", other]
        cwd = os.getcwd()
        os.chdir(place)  # "." is this folder
        try:
            run = call_main(argv)
        finally:
            os.chdir(cwd)
        assert "Traceback" not in run.stderr
        FUZZ_MESSAGES[f"{option} {case}"] += 1
        lines = run.stderr.splitlines()
        if expected == "usage":
            assert (run.status, run.stdout, len(lines)) == (2, "", 1), run
            return
        works = {"--save": ["ok", "255 bytes", "link to /dev/null", "link to a file", "a file"],
                 "--output-dir": ["ok", "dot", "255 bytes", "existing folder", "missing folder"]}[option]
        if expected in works:
            assert run.status == 0, run
            if option == "--save" and case != "link to /dev/null":
                with np.load(os.path.realpath(name)) as data:
                    assert data["pred_sentences"].shape == (1, 3)
        else:
            assert run.status == 1 and len(lines) == 1, run
            assert lines[0].startswith("Cannot write "), run
            if case != "fifo without a reader":  # known only when the file is opened, after the run
                assert run.stdout == "", run
        if case in ("link to /dev/null", "link to a file"):
            assert os.path.islink(os.path.join(place, "link"))
        if case == "fifo without a reader":
            assert stat.S_ISFIFO(os.lstat(name).st_mode)
        if case == "inside a file" or (case == "a file" and option == "--output-dir"):
            assert open(os.path.join(place, "file")).read() == "mine"
        parts = [n for _, _, names in os.walk(place) for n in names if n.endswith(".part")]
        assert parts == []
    finally:
        shutil.rmtree(place, ignore_errors=True)


# a short fuzz of whole runs ----------------------------------------------------------------

@given(text=sentences(), words_mode=st.booleans())
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_cli_fuzz(text, words_mode, tiny_h5, tiny_h5_words, tmp_path_factory):
    """
    Hostile sentences through main(): either exit 0 with exactly the fill-in sentences and
    every diagram, or exit 1 with exactly one line; never a traceback.
    """
    tokenizer, words = tiny_h5_words
    out = tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="fuzz")
    try:
        options = ["--model", tiny_h5, "--output-dir", out, "--no-html"] + ["--words"] * words_mode
        run = call_main(options + ["--", text])  # "--": a sentence may start with "-"
        FUZZ["cases"] += 1
        assert "Traceback" not in run.stderr
        normalized, error = expected_outcome(text, tokenizer, tiny_h5)
        if error:  # one line: the [mask] note comes only once the text is usable
            assert (run.status, run.stdout, run.stderr) == (1, "", error + "\n"), run
            FUZZ["exit 1 (one-line error)"] += 1
            return
        note = "Note: reading [mask] as [MASK].\n" if normalized != text else ""
        assert run.status == 0, run
        FUZZ["exit 0"] += 1
        starts = [m.start() for m in re.finditer(re.escape("[MASK]"), normalized)]
        groups = [(normalized[:s], normalized[s + len("[MASK]"):]) for s in starts]
        assert fill_ins_parse(run.stdout, groups, words), run
        assert run.stderr == note + f"Wrote 4 diagrams, Attention_Overview.png to {out}\n", run
        assert sorted(os.listdir(out)) == ["Attention_Layer1_Head1.png", "Attention_Layer1_Head2.png",
                                           "Attention_Layer2_Head1.png", "Attention_Layer2_Head2.png",
                                           "Attention_Overview.png"]
        with Image.open(os.path.join(out, "Attention_Layer2_Head2.png")) as image:
            if not words_mode:
                n = len(tokenizer(normalized)["input_ids"])
                assert image.size == (side(n), side(n))
            image.load()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_fuzz_summary():
    """Runs after the fuzz (pytest keeps file order): it must have seen both outcomes of each."""
    if not FUZZ["cases"]:
        pytest.skip("the fuzz did not run in this session")
    summary = ", ".join(f"{key}: {value}" for key, value in sorted(FUZZ.items()))
    messages = "; ".join(f"{value} x {key!r}" for key, value in FUZZ_MESSAGES.most_common())
    print(f"\nCLI fuzz: {summary}\nprepare(): {messages}")
    assert FUZZ["exit 0"] > 0 and FUZZ["exit 1 (one-line error)"] > 0
    assert FUZZ_MESSAGES["read"] > 0 and len(FUZZ_MESSAGES) >= 4
    pairs = [("refused by characters", "within the character bound"), ("too many fill-ins", "fill-ins within bounds")]
    for one, other in pairs:  # each property test that ran saw both of its outcomes
        assert (FUZZ_MESSAGES[one] > 0) == (FUZZ_MESSAGES[other] > 0), (one, other)


# hostile model folders: configs and tokenizers ----------------------------------------------

# Config keys of a BERT and a GPT-2 checkpoint that a hostile or broken config.json may change, and values
# of every JSON type, including sizes that would be memory bombs (the weights on disk are tiny)
HOSTILE_KEYS = {
    "bert": ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "type_vocab_size", "hidden_act", "hidden_dropout_prob",
             "attention_probs_dropout_prob", "layer_norm_eps", "id2label", "label2id", "problem_type",
             "position_embedding_type", "pad_token_id", "model_type", "is_decoder", "architectures"],
    "gpt2": ["vocab_size", "n_embd", "n_layer", "n_head", "n_inner", "n_positions", "activation_function",
             "attn_pdrop", "resid_pdrop", "layer_norm_epsilon", "id2label", "bos_token_id", "eos_token_id",
             "scale_attn_by_inverse_layer_idx", "model_type"],
}
HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.sampled_from([100_000, 40_000_000, 10**9, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["gelu", "relu", "evil", "bert", "gpt2", "t5", "relative_key", "x"]),
    st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
)
HOSTILE = collections.Counter()


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory):
    from tiny_models import build_model_dir

    return build_model_dir(str(tmp_path_factory.mktemp("tiny_gpt2")), "gpt2", weights="safetensors", seed=11)


@given(family=st.sampled_from(["bert", "gpt2"]), data=st.data())
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_hostile_configs_run_or_fail_in_one_line(family, data, tiny_h5, tiny_gpt2, tmp_path_factory):
    """
    A config.json with any keys changed to any JSON values: the run either works or fails
    with exactly one line, never a traceback, and sizes the weights don't have are refused
    before the model is built (no memory bomb: 100,000 layers or 40 million words over a tiny
    checkpoint fail in about a second).
    """
    import json

    changes = data.draw(st.dictionaries(st.sampled_from(HOSTILE_KEYS[family]), HOSTILE_VALUES, min_size=1,
                                        max_size=3), label="changes")
    place = tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="hostile")  # a new name: no cached model
    try:
        model_dir = shutil.copytree(tiny_h5 if family == "bert" else tiny_gpt2, os.path.join(place, "model"))
        with open(os.path.join(model_dir, "config.json")) as file:
            config = json.load(file)
        with open(os.path.join(model_dir, "config.json"), "w") as file:
            json.dump({**config, **changes}, file)
        text = "The cat sat on the [MASK]." if family == "bert" else "The cat sat on the"
        run = call_main([text, "--model", model_dir, "--output-dir", os.path.join(place, "out"), "--no-html"])
        assert "Traceback" not in run.stderr, run
        if run.status == 0:
            HOSTILE["config: ran"] += 1
            assert len(run.stdout.splitlines()) == 3, run
            sizes = {key: value for key, value in changes.items() if key in ("num_hidden_layers", "n_layer",
                                                                             "vocab_size", "hidden_size", "n_embd")}
            assert all(value == config[key] for key, value in sizes.items()), (changes, run)
        else:
            HOSTILE["config: refused"] += 1
            assert run.status == 1 and run.stdout == "" and len(run.stderr.splitlines()) == 1, run
    finally:
        shutil.rmtree(place, ignore_errors=True)


VOCAB_OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 200)), st.tuples(st.just("append"), st.text("abcxyz", min_size=1,
                                                                                          max_size=5)),
    st.tuples(st.just("duplicate"), st.integers(0, 200)), st.tuples(st.just("blank"), st.integers(0, 200)),
    st.just(("empty", 0)),
), min_size=1, max_size=4)


@given(operations=VOCAB_OPERATIONS, declared=st.booleans())
@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_hostile_vocab_txt_runs_or_fails_in_one_line(operations, declared, tiny_h5, tmp_path_factory):
    """
    A BERT vocab.txt (no tokenizer.json) with lines dropped, added, duplicated or blanked:
    one line or a run, never a traceback; and a run never happens with [UNK] or [MASK] gone
    (the tokenizer would crash, or every id after [MASK] would be shifted) or with more
    lines than the model's vocab_size.
    """
    from test_hostile_models import vocab_txt_only

    def edit(lines):
        for operation, value in operations:
            if operation == "empty":
                lines = []
            elif operation == "append":
                lines.append(value)
            elif lines and operation == "drop":
                del lines[value % len(lines)]
            elif lines and operation == "duplicate":
                lines.append(lines[value % len(lines)])
            elif lines and operation == "blank":
                lines[value % len(lines)] = ""
        edited[:] = lines
        return lines

    edited = []
    place = tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="vocab")
    try:
        model_dir = vocab_txt_only(tiny_h5, pathlib.Path(place), edit, declared)
        lines = edited
        run = call_main(["The cat sat on the [MASK].", "--model", model_dir, "--output-dir",
                         os.path.join(place, "out"), "--no-html"])
        assert "Traceback" not in run.stderr, run
        if run.status == 0:
            HOSTILE["vocab: ran"] += 1
            assert "[UNK]" in lines and "[MASK]" in lines and len(set(lines)) <= 94, (operations, run)
            assert len(run.stdout.splitlines()) == 3, run
        else:
            HOSTILE["vocab: refused"] += 1
            assert run.status == 1 and run.stdout == "" and len(run.stderr.splitlines()) == 1, run
    finally:
        shutil.rmtree(place, ignore_errors=True)


def test_hostile_summary():
    """Runs after the two tests above: each saw runs and refusals."""
    if not HOSTILE:
        pytest.skip("the hostile-model tests did not run in this session")
    print(f"\nhostile models: {dict(HOSTILE)}")
    assert all(HOSTILE[f"{kind}: {outcome}"] > 0 for kind in ("config", "vocab") for outcome in ("ran", "refused"))

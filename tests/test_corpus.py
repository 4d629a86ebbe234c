"""
Corpus mode (mask.py --corpus): batched, padded runs give every sentence the scores it
gets alone; heads.csv holds their means; bad lines and bad files fail or are skipped in
one line; an interrupted run leaves no file behind. Also the batch pattern code on its
own (padding must change nothing) and how sentences are cut into batches.
"""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_failure, call_main, leftovers, model_outputs, with_default_signals
from PIL import Image

import attention_run
import corpus
import model_loading
import patterns

# Different lengths (6 to 18 tokens), a mask, a sentence pair, a comment and blank lines
CORPUS = """\
# everyday sentences for the tiny models
the cat sat on the mat .
a dog ran .

the turtle slowly moved across the road , then the cat sat on the mat .
she picked up some bread and milk from the store .
it was big !
the [MASK] sat on the mat .
we went to school . [SEP] the sun rises in the east .
   # an indented comment
i had tea .
"""
SENTENCE_LINES = [2, 3, 5, 6, 7, 8, 9, 11]


def write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def corpus_run(tmp_path, model_dir, text=CORPUS, *extra):
    path = write(tmp_path, text)
    out = tmp_path / "out"
    return call_main(["--corpus", str(path), "--model", model_dir, "--output-dir", str(out), *extra]), out


def read_heads_csv(path):
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def single_run_scores(model_dir, text):
    """A sentence run alone, as mask.py runs one text: its pattern scores and head measures."""
    run = attention_run.prepare(text, model_dir, require_mask=False).run()
    return run.patterns, patterns.head_measures(run.attentions)


@pytest.mark.parametrize("fixture", ["tiny_h5", "tiny_safetensors"])
def test_corpus_scores_equal_single_sentence_runs(fixture, request, tmp_path):
    """Batches of 3 with lengths 6 to 18 mixed: every sentence's scores, and the CSV means, as if run alone."""
    model_dir = request.getfixturevalue(fixture)
    run, out = corpus_run(tmp_path, model_dir, CORPUS, "--batch-size", "3", "--save", str(tmp_path / "c.npz"))
    assert run.status == 0, run
    saved = np.load(tmp_path / "c.npz", allow_pickle=False)
    lines = CORPUS.splitlines()
    assert saved["line_numbers"].tolist() == SENTENCE_LINES
    assert saved["sentences"].tolist() == [lines[n - 1].strip() for n in SENTENCE_LINES]
    assert saved["pattern_names"].tolist() == list(patterns.PATTERNS)
    assert len(set(saved["token_counts"].tolist())) >= 5  # really different lengths, padded together
    layers, heads = saved["pattern_scores"].shape[2:]
    assert saved["pattern_scores"].shape == (len(SENTENCE_LINES), len(patterns.PATTERNS), layers, heads)
    alone = [single_run_scores(model_dir, text) for text in saved["sentences"].tolist()]
    for index, (scores, measures) in enumerate(alone):
        for p, name in enumerate(patterns.PATTERNS):
            np.testing.assert_allclose(saved["pattern_scores"][index, p], scores[name], atol=2e-5, err_msg=name)
        for name in patterns.MEASURES:
            np.testing.assert_allclose(saved[name][index], measures[name], rtol=1e-4, atol=2e-5, err_msg=name)
    rows = read_heads_csv(out / corpus.HEADS_FILE)
    assert list(rows[0]) == ["layer", "head", *patterns.PATTERNS, *patterns.MEASURES]
    assert [(int(row["layer"]), int(row["head"])) for row in rows] == [
        (layer, head) for layer in range(1, layers + 1) for head in range(1, heads + 1)]
    for row in rows:
        layer, head = int(row["layer"]) - 1, int(row["head"]) - 1
        for name in patterns.PATTERNS:
            mean = np.mean([scores[name][layer, head] for scores, _ in alone])
            assert float(row[name]) == pytest.approx(mean, abs=2e-5), name
        for name in patterns.MEASURES:
            mean = np.mean([measures[name][layer, head] for _, measures in alone])
            assert float(row[name]) == pytest.approx(mean, rel=1e-4, abs=2e-5), name


def test_corpus_scores_equal_transformers_own_single_runs(tiny_h5, tmp_path):
    """Independent of the tool's own single run: transformers' TFBertForMaskedLM on each sentence alone."""
    text = "\n".join(line for line in CORPUS.splitlines() if "[SEP]" not in line)
    run, out = corpus_run(tmp_path, tiny_h5, text, "--batch-size", "4", "--save", str(tmp_path / "c.npz"))
    assert run.status == 0, run
    saved = np.load(tmp_path / "c.npz", allow_pickle=False)
    for index, sentence in enumerate(saved["sentences"].tolist()):
        _, tokens, _, attentions, _ = model_outputs(tiny_h5, sentence)
        expected = patterns.pattern_scores(attentions, tokens)
        for p, name in enumerate(patterns.PATTERNS):
            np.testing.assert_allclose(saved["pattern_scores"][index, p], expected[name], atol=2e-5, err_msg=name)


def test_padded_batch_attentions_match_one_sentence_forward_passes(tiny_safetensors):
    """The model gives padded keys ~0 attention, and each sentence's block is its own forward pass's attentions."""
    opened = attention_run.open_model(tiny_safetensors)
    texts = ["a dog ran .", "the turtle slowly moved across the road , then the cat sat on the mat .", "it was big !"]
    encodings = [opened.tokenizer(text, return_tensors="np") for text in texts]
    lengths = [e["input_ids"].shape[1] for e in encodings]
    n_max = max(lengths)
    ids, mask, types = (np.zeros((len(texts), n_max), dtype=np.int32) for _ in range(3))
    for b, e in enumerate(encodings):
        ids[b, : lengths[b]], mask[b, : lengths[b]] = e["input_ids"][0], 1
    batch = model_loading.batch_attentions(opened.attention_function, ids, mask, types)
    assert batch.shape[:2] == (3, 3) and batch.shape[-2:] == (n_max, n_max)
    for b, e in enumerate(encodings):
        n = lengths[b]
        _, alone = model_loading.forward(opened.network, e)
        np.testing.assert_allclose(batch[b, :, :, :n, :n], alone, atol=1e-5)
        assert np.abs(batch[b, :, :, :n, n:]).max(initial=0.0) < 1e-6  # padded keys


def random_attentions(rng, shape):
    values = rng.random(shape) ** 3
    return values / values.sum(axis=-1, keepdims=True)


def test_batch_pattern_scores_ignore_padding():
    """Garbage in padded rows, small weights on padded keys: each sentence's scores are its own block's."""
    rng = np.random.default_rng(7)
    lengths = [3, 7, 5]
    sentences = [["[CLS]", "a", "[SEP]"], ["[CLS]", "a", ",", "b", ".", "c", "[SEP]"],
                 ["[CLS]", "x", "!", "y", "[SEP]"]]
    segments = [[0, 0, 0], [0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1]]
    blocks = [random_attentions(rng, (2, 3, n, n)) for n in lengths]
    padded = rng.random((3, 2, 3, 7, 7))  # padded rows stay garbage
    for b, block in enumerate(blocks):
        n = lengths[b]
        padded[b, :, :, :n, :n] = block
        padded[b, :, :, :n, n:] = 1e-3
    batch = patterns.batch_pattern_scores(padded, lengths, sentences, segments=segments)
    measures = patterns.head_measures(padded, lengths)
    for b, block in enumerate(blocks):
        alone = patterns.pattern_scores(block, sentences[b], segments=segments[b])
        for name in patterns.PATTERNS:
            np.testing.assert_allclose(batch[name][b], alone[name], atol=1e-7, err_msg=name)
        for name, value in patterns.head_measures(block).items():
            np.testing.assert_allclose(measures[name][b], value, atol=1e-7, err_msg=name)
    # block: exactly 1 for a single segment, less where a pair's tokens look across
    assert np.all(batch["block"][0] == 1.0)
    assert np.all(batch["block"][1] < 1.0)


def test_head_measures_by_hand():
    # 3 tokens; row 0 on itself, row 1 half on 0 and half on 2, row 2 on token 0
    attention = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])[None, None]
    measures = patterns.head_measures(attention)
    assert measures["distance"][0, 0] == pytest.approx((0 + 1 + 2) / 3)
    assert measures["entropy"][0, 0] == pytest.approx(np.log(2) / 3)


def test_batches_sort_by_length_and_bound_the_cells(monkeypatch):
    lengths = np.array([10, 3, 60, 7, 3, 120, 9])
    monkeypatch.setattr(corpus, "MAX_BATCH_CELLS", 2 * 60 * 60)
    cut = list(corpus.batches(lengths, 3))
    assert sorted(i for batch in cut for i in batch) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= 3 for batch in cut)
    for batch in cut:
        longest = max(lengths[batch])
        assert len(batch) == 1 or len(batch) * longest**2 <= corpus.MAX_BATCH_CELLS
    flat = [lengths[i] for batch in cut for i in batch]
    assert flat == sorted(flat)
    assert cut[-1] == [5]  # 120 tokens: alone


def test_corpus_prints_the_top_heads_and_draws_the_summary(tiny_safetensors, tmp_path):
    run, out = corpus_run(tmp_path, tiny_safetensors)
    assert run.status == 0, run
    rows = read_heads_csv(out / corpus.HEADS_FILE)
    means = {name: np.array([[float(row[name]) for row in rows if int(row["layer"]) == layer]
                             for layer in range(1, 4)]) for name in patterns.PATTERNS}
    title = f"Heads that most show each pattern (mean score 0-1 over {len(SENTENCE_LINES)} sentences):"
    expected = patterns.format_top_heads(patterns.top_heads(means), title=title)
    assert run.stdout.splitlines() == expected
    assert run.stderr.splitlines()[-1] == (f"Analysed {len(SENTENCE_LINES)} sentences; wrote heads.csv, "
                                           f"Heads_Summary.png to {out}")
    assert sorted(os.listdir(out)) == [corpus.SUMMARY_FILE, corpus.HEADS_FILE]
    with Image.open(out / corpus.SUMMARY_FILE) as image:
        image.load()
        assert image.width > 600 and image.height > 600
        gray = np.asarray(image.convert("L"), dtype=np.float64)
    assert gray.std() > 20  # heat maps and text, not a blank page


def test_line_too_long_is_skipped_with_its_number(tiny_h5, tmp_path):
    long_line = "the cat sat on the mat " * 11  # 66 words: more than the tiny model's 64 positions
    text = f"a dog ran .\n# comment\n{long_line}\nit was big !\n"
    run, out = corpus_run(tmp_path, tiny_h5, text, "--save", str(tmp_path / "c.npz"))
    assert run.status == 0, run
    skipped = [line for line in run.stderr.splitlines() if line.startswith("Skipping")]
    assert skipped == [f"Skipping line 3: Text is too long: 68 tokens, and {tiny_h5} reads at most 64. Shorten it."]
    assert np.load(tmp_path / "c.npz")["line_numbers"].tolist() == [1, 4]
    assert (out / corpus.HEADS_FILE).exists()


@pytest.mark.parametrize("content, message", [
    (b"", "{path} has no sentences (one per line; blank lines and lines starting with # are skipped)."),
    (b"# only a comment\n\n   \n", "{path} has no sentences (one per line; blank lines and lines starting with # "
                                   "are skipped)."),
    (b"the cat sat .\nthe caf\xe9 .\n", "Cannot read {path}: not UTF-8 text (line 2)."),
], ids=["empty", "comments-only", "not-utf8"])
def test_unusable_corpus_is_one_line(content, message, tiny_h5, tmp_path, monkeypatch):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    attention_run.open_model.cache_clear()  # a model opened by an earlier test would not load again
    monkeypatch.setattr(model_loading, "load_model", lambda source: pytest.fail("loaded the model first"))
    run = call_main(["--corpus", str(path), "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, message.format(path=path))
    assert run.stdout == "" and not (tmp_path / "out").exists()


def test_missing_corpus_names_the_file(tmp_path):
    path = tmp_path / "nowhere.txt"
    run = call_main(["--corpus", str(path), "--model", "bundled", "--output-dir", str(tmp_path)])
    assert_one_line_failure(run, f"Cannot read {path}: No such file or directory")


def test_every_line_too_long_is_one_error_after_the_notes(tiny_h5, tmp_path):
    run, out = corpus_run(tmp_path, tiny_h5, "the cat sat " * 30 + "\n")
    assert run.status == 1 and run.stderr.splitlines()[-1] == "No sentence left to analyse: all 1 were skipped."
    assert not (out / corpus.HEADS_FILE).exists()


@pytest.mark.parametrize("extra", [["the cat sat ."], ["--words"], ["--scores"], ["--rollout"]],
                         ids=["text", "words", "scores", "rollout"])
def test_options_that_do_not_apply_to_a_corpus(extra, tmp_path):
    run = call_main(["--corpus", str(write(tmp_path, "a dog ran .\n")), *extra])
    name = "TEXT" if not extra[0].startswith("-") else extra[0]
    assert_one_line_failure(run, f"mask.py: {name} does not go with --corpus (see --help)", status=2)


def test_progress_bar_on_a_terminal(tiny_h5, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(corpus, "PROGRESS_DELAY", 0)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    result = corpus.analyse([(1, "a dog ran ."), (2, "it was big !")], tiny_h5, batch_size=1, progress=True)
    assert len(result.texts) == 2
    assert "0/2 [" in terminal.getvalue() and "sentence/s" in terminal.getvalue()  # the bar, counting sentences


def test_ctrl_c_mid_corpus_in_process(tiny_h5, tmp_path, monkeypatch):
    """KeyboardInterrupt in the second batch: 130, one line, the earlier heads.csv untouched, nothing else."""
    out = tmp_path / "out"
    out.mkdir()
    (out / corpus.HEADS_FILE).write_text("old\n")
    real, calls = corpus._analyse_batch, []

    def analyse_batch(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(corpus, "_analyse_batch", analyse_batch)
    path = write(tmp_path, CORPUS)
    run = call_main(["--corpus", str(path), "--model", tiny_h5, "--output-dir", str(out), "--batch-size", "2",
                     "--save", str(out / "c.npz")])
    assert (run.status, run.stdout, run.stderr) == (130, "", "Interrupted.\n")
    assert os.listdir(out) == [corpus.HEADS_FILE] and (out / corpus.HEADS_FILE).read_text() == "old\n"


# A child whose second batch tells the test to interrupt now, then takes 2 s
SLOW_SECOND_BATCH = textwrap.dedent("""
    import sys, time
    import corpus, mask
    real, calls = corpus._analyse_batch, []
    def analyse_batch(*args):
        calls.append(1)
        if len(calls) == 2:
            open(sys.argv[1], "w").close()  # tell the test: interrupt now
            time.sleep(2)
        return real(*args)
    corpus._analyse_batch = analyse_batch
    mask.main(sys.argv[2:])
""")


def test_sigint_mid_corpus_leaves_no_file(tiny_h5, tmp_path):
    out = tmp_path / "out"
    ready = tmp_path / "ready"
    path = write(tmp_path, CORPUS)
    process = subprocess.Popen(
        with_default_signals("-c", SLOW_SECOND_BATCH, str(ready), "--corpus", str(path), "--model", tiny_h5,
                             "--output-dir", str(out), "--batch-size", "2", "--save", str(tmp_path / "c.npz")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    try:
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            threading.Event().wait(0.01)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert (process.returncode, stdout, stderr) == (130, b"", b"Interrupted.\n")
    assert os.listdir(out) == [] and leftovers(tmp_path) == []
    assert not (tmp_path / "c.npz").exists()


def test_save_into_a_missing_directory_fails_before_the_model_loads(tiny_h5, tmp_path, monkeypatch):
    attention_run.open_model.cache_clear()
    monkeypatch.setattr(model_loading, "load_model", lambda source: pytest.fail("loaded the model first"))
    path = write(tmp_path, "a dog ran .\n")
    run = call_main(["--corpus", str(path), "--model", tiny_h5, "--output-dir", str(tmp_path / "out"),
                     "--save", str(tmp_path / "nowhere" / "c.npz")])
    assert_one_line_failure(run, f"Cannot write {tmp_path / 'nowhere'}: No such file or directory")


def test_a_padding_token_past_the_vocabulary_is_not_used_for_padding(tiny_h5, tmp_path):
    """A tokenizer whose pad token was added after the vocabulary (id >= vocab_size) still gets padded batches."""
    import transformers

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_h5, model_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.add_special_tokens({"pad_token": "<pad-added>"})
    tokenizer.save_pretrained(str(model_dir))
    config = json.loads((model_dir / "config.json").read_text())
    assert tokenizer.pad_token_id >= config["vocab_size"]
    text = "the cat sat on the mat .\na dog ran .\nit was big !\n"
    run, out = corpus_run(tmp_path, str(model_dir), text, "--batch-size", "3", "--save", str(tmp_path / "c.npz"))
    assert run.status == 0, run
    saved = np.load(tmp_path / "c.npz", allow_pickle=False)
    for index, sentence in enumerate(saved["sentences"].tolist()):
        scores, _ = single_run_scores(str(model_dir), sentence)
        for p, name in enumerate(patterns.PATTERNS):
            np.testing.assert_allclose(saved["pattern_scores"][index, p], scores[name], atol=2e-5, err_msg=name)

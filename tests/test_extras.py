"""Beyond CS50: several masks, --scores, --patterns, --words, --save, encoder-only checkpoints."""

import os

import numpy as np
import pytest
from conftest import model_outputs

import fill_ins
import patterns

TWO_MASKS = "The [MASK] sat on the [MASK]."


def top_k(logits_row, k):
    return np.argsort(-logits_row, kind="stable")[:k]


def test_several_masks_are_predicted_one_by_one(run_main, tiny_h5, tmp_path):
    run = run_main([TWO_MASKS, "--model", tiny_h5, "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    tokenizer, tokens, logits, _, _ = model_outputs(tiny_h5, TWO_MASKS)
    positions = [i for i, t in enumerate(tokens) if t == "[MASK]"]
    expected = []
    for nth, position in enumerate(positions):
        expected.append(f"Mask {nth + 1} of 2:")
        for token_id in top_k(logits[position], 3):
            # this mask filled in, the other left in place
            expected.append(fill_ins.replace_nth(TWO_MASKS, "[MASK]", nth, tokenizer.decode([int(token_id)])))
    assert run.stdout.splitlines() == expected
    assert run.stdout.splitlines()[1].count("[MASK]") == 1


def test_one_mask_output_is_exactly_cs50s(run_main, tiny_h5, tmp_path):
    run = run_main(["The [MASK] sat.", "--model", tiny_h5, "--output-dir", str(tmp_path)])
    assert "Mask 1" not in run.stdout and len(run.stdout.splitlines()) == 3


def test_scores_are_softmax_probabilities(run_main, tiny_h5, tmp_path):
    run = run_main(["The [MASK] sat.", "--model", tiny_h5, "--scores", "-k", "4", "--output-dir", str(tmp_path)])
    _, tokens, logits, _, _ = model_outputs(tiny_h5, "The [MASK] sat.")
    row = logits[tokens.index("[MASK]")].astype(np.float64)
    probabilities = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
    shown = [float(line.rsplit("(", 1)[1].rstrip(")")) for line in run.stdout.splitlines()]
    np.testing.assert_allclose(shown, np.sort(probabilities)[::-1][:4], atol=5e-4)


# pattern scores ------------------------------------------------------------------------

def pattern_heads(n):
    """Six heads, each a pure example of one pattern, for tokens [CLS] a b , c [SEP]."""
    eye = np.eye(n)
    previous = np.roll(eye, -1, axis=1)
    previous[0] = eye[0]
    following = np.roll(eye, 1, axis=1)
    following[-1] = eye[-1]
    to_column = lambda j: np.tile(eye[j], (n, 1))  # noqa: E731
    uniform = np.full((n, n), 1 / n)
    return np.stack([previous, following, eye, to_column(0), to_column(n - 1), to_column(3), uniform])[None]


def test_pattern_scores_recognise_pure_patterns():
    tokens = ["[CLS]", "a", "b", ",", "c", "[SEP]"]
    scores = patterns.pattern_scores(pattern_heads(len(tokens)), tokens)
    expected_head = {"previous": 0, "next": 1, "self": 2, "cls": 3, "sep": 4, "punctuation": 5, "broad": 6}
    for name, head in expected_head.items():
        assert scores[name].shape == (1, 7)
        assert scores[name][0, head] == pytest.approx(1.0), name
        assert int(np.argmax(scores[name][0])) == head, name
        assert np.all((scores[name] >= 0) & (scores[name] <= 1))
    assert scores["broad"][0, 2] == pytest.approx(0.0)  # one-hot rows have no entropy


def test_top_heads_are_one_based_and_sorted():
    scores = {"previous": np.array([[0.1, 0.9], [0.5, 0.2]])}
    assert patterns.top_heads(scores, count=3)["previous"] == [(1, 2, 0.9), (2, 1, 0.5), (2, 2, 0.2)]


def test_patterns_option_prints_the_strongest_heads(run_main, tiny_safetensors, tmp_path):
    text = "The cat sat on the [MASK], then ran."
    run = run_main([text, "--model", tiny_safetensors, "--patterns", "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    _, tokens, _, attentions, _ = model_outputs(tiny_safetensors, text)
    best = patterns.top_heads(patterns.pattern_scores(attentions, tokens))
    lines = run.stdout.splitlines()
    assert lines[3] == "Heads that most show each pattern (score 0-1):"
    for line, name in zip(lines[4:], patterns.PATTERNS, strict=True):
        layer, head, score = best[name][0]
        assert line.strip().startswith(patterns.PATTERNS[name])
        assert f"Layer {layer}, Head {head}: {score:.2f}" in line


# word level ----------------------------------------------------------------------------

def test_merge_words_sums_to_and_averages_from():
    # tokens: [CLS] play ##ing cat [SEP]
    rng = np.random.default_rng(0)
    attentions = rng.random((2, 3, 5, 5))
    attentions /= attentions.sum(-1, keepdims=True)
    merged = patterns.merge_words([[0], [1, 2], [3], [4]], attentions)
    assert merged.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(merged.sum(-1), 1.0, atol=1e-6)
    a = attentions[1, 2]
    assert merged[1, 2, 0, 1] == pytest.approx(a[0, 1] + a[0, 2])  # to a word: sum over its pieces
    assert merged[1, 2, 1, 2] == pytest.approx((a[1, 3] + a[2, 3]) / 2)  # from a word: mean over pieces
    assert merged[1, 2, 1, 1] == pytest.approx((a[1, 1] + a[1, 2] + a[2, 1] + a[2, 2]) / 2)


def test_words_option_draws_words(run_main, tiny_h5, tmp_path):
    from PIL import Image

    import mask

    text = "The dog was playing [MASK]."
    run = run_main([text, "--model", tiny_h5, "--words", "--save", str(tmp_path / "w.npz"),
                    "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    _, tokens, _, _, _ = model_outputs(tiny_h5, text)
    assert "##ing" in tokens
    saved = np.load(tmp_path / "w.npz", allow_pickle=False)
    assert "playing" in saved["tokens"].tolist() and len(saved["tokens"]) == len(tokens) - 1
    side = Image.open(tmp_path / "Attention_Layer1_Head1.png").size[0]
    assert side == mask.GRID_SIZE * (len(tokens) - 1) + mask.PIXELS_PER_WORD


# saved data ------------------------------------------------------------------------------

def test_save_writes_everything_without_pickle(run_main, tiny_safetensors, tmp_path):
    path = tmp_path / "run.npz"
    run = run_main([TWO_MASKS, "--model", tiny_safetensors, "-k", "2", "--save", str(path),
                    "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    data = np.load(path, allow_pickle=False)
    tokenizer, tokens, logits, attentions, _ = model_outputs(tiny_safetensors, TWO_MASKS)
    assert str(data["text"]) == TWO_MASKS and str(data["model"]) == tiny_safetensors
    assert data["tokens"].tolist() == tokens
    assert data["attentions"].dtype == np.float32 and data["attentions"].shape == attentions.shape
    np.testing.assert_allclose(data["attentions"], attentions, atol=1e-6)
    positions = [i for i, t in enumerate(tokens) if t == "[MASK]"]
    assert data["mask_positions"].tolist() == positions
    assert data["pred_token_ids"].tolist() == [top_k(logits[p], 2).tolist() for p in positions]
    printed = [line for line in run.stdout.splitlines() if not line.startswith("Mask ")]
    assert data["pred_sentences"].ravel().tolist() == printed
    assert np.all(np.diff(data["pred_probabilities"], axis=1) <= 0)
    assert data["pattern_names"].tolist() == list(patterns.PATTERNS)
    expected = patterns.pattern_scores(attentions, tokens)
    for index, name in enumerate(patterns.PATTERNS):
        np.testing.assert_allclose(data["pattern_scores"][index], expected[name], atol=1e-6)


# encoder-only checkpoints -----------------------------------------------------------------

def test_encoder_only_checkpoint_draws_attention_with_one_notice(run_main, tiny_encoder, tmp_path):
    run = run_main(["The cat sat on the mat.", "--model", tiny_encoder, "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    assert run.stdout == ""
    notes = [line for line in run.stderr.splitlines() if "no masked-LM head" in line]
    assert len(notes) == 1
    assert len([n for n in os.listdir(tmp_path) if n.startswith("Attention_Layer")]) == 4


def test_text_too_long_to_draw_gets_the_overview_only(run_main, tmp_path):
    """Past MAX_DIAGRAM_TOKENS, per-head diagrams would be thousands of pixels wide: overview only, announced."""
    from tiny_bert import build_bert_dir

    import mask

    model_dir = build_bert_dir(str(tmp_path / "m"), max_positions=256)
    text = "the cat sat on the mat " * 25 + "[MASK]."  # 153 tokens
    run = run_main([text, "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert run.status == 0, run
    assert len(run.stdout.splitlines()) == 3
    assert sorted(os.listdir(tmp_path / "out")) == ["Attention_Overview.png"]
    assert f"more than the {mask.MAX_DIAGRAM_TOKENS}" in run.stderr and "Traceback" not in run.stderr

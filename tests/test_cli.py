"""The command line end to end, on tiny BERT checkpoints the tests build themselves."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_failure, model_outputs
from PIL import Image
from tiny_bert import build_bert_dir

import mask

TEXT = "The turtle slowly moved across the [MASK]."


def expected_sentences(model_dir, text, k):
    """The model's own top-k for the (single) mask, as CS50's sentences."""
    tokenizer, tokens, logits, _, tf = model_outputs(model_dir, text)
    position = tokens.index(tokenizer.mask_token)
    top = tf.math.top_k(logits[position], k).indices.numpy()
    return [text.replace(tokenizer.mask_token, tokenizer.decode([t])) for t in top]


def pngs(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("Attention_Layer"))


@pytest.mark.parametrize("model_fixture", ["tiny_h5", "tiny_safetensors"])
def test_end_to_end_predictions_and_diagrams(model_fixture, request, run_main, tmp_path):
    model_dir = request.getfixturevalue(model_fixture)
    run = run_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert run.status == 0, run
    assert run.stdout.splitlines() == expected_sentences(model_dir, TEXT, 3)

    config = json.load(open(os.path.join(model_dir, "config.json")))
    layers, heads = config["num_hidden_layers"], config["num_attention_heads"]
    names = pngs(tmp_path / "out")
    assert names == sorted(f"Attention_Layer{layer}_Head{head}.png"
                           for layer in range(1, layers + 1) for head in range(1, heads + 1))

    # pixels against the model's own attentions (row = attending, column = attended-to)
    _, tokens, _, attentions, _ = model_outputs(model_dir, TEXT)
    n = len(tokens)
    for layer, head in [(1, 1), (layers, heads)]:
        image = Image.open(tmp_path / "out" / f"Attention_Layer{layer}_Head{head}.png").convert("RGB")
        assert image.size == (mask.GRID_SIZE * n + mask.PIXELS_PER_WORD,) * 2
        for i, j in [(0, 0), (1, n - 1), (n - 1, 2), (3, 3)]:
            x = mask.PIXELS_PER_WORD + j * mask.GRID_SIZE + 20
            y = mask.PIXELS_PER_WORD + i * mask.GRID_SIZE + 20
            assert image.getpixel((x, y)) == mask.get_color_for_attention_score(attentions[layer - 1, head - 1, i, j])
    assert (tmp_path / "out" / "Attention_Overview.png").exists()
    assert "Wrote" in run.stderr and "Traceback" not in run.stderr


def test_safetensors_only_loads_the_same_weights_as_h5(tmp_path):
    """A checkpoint saved both ways gives the same fill-ins through both loading paths."""
    h5 = build_bert_dir(str(tmp_path / "h5"), weights="h5", seed=7)
    st = build_bert_dir(str(tmp_path / "st"), weights="safetensors", seed=7)
    import model_loading
    import model_source

    logits = []
    for directory in (h5, st):
        source = model_source.ModelSource(directory, directory)
        tokenizer = model_loading.load_tokenizer(source)
        model = model_loading.load_model(source)
        logits.append(model_loading.forward(model, tokenizer(TEXT, return_tensors="np"))[0])
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)


def test_top_k_option_and_scores(run_main, tiny_h5, tmp_path):
    run = run_main([TEXT, "--model", tiny_h5, "-k", "5", "--scores", "--output-dir", str(tmp_path)])
    assert run.status == 0, run
    lines = run.stdout.splitlines()
    assert len(lines) == 5
    plain = [line.rsplit("  (", 1)[0] for line in lines]
    assert plain == expected_sentences(tiny_h5, TEXT, 5)
    probabilities = [float(line.rsplit("(", 1)[1].rstrip(")")) for line in lines]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p <= 1 for p in probabilities)


def test_prompts_like_cs50_when_no_text_given(run_main, tiny_h5, tmp_path):
    run = run_main(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin=TEXT + "\n")
    assert run.status == 0, run
    assert run.stdout.startswith("Text: ")
    assert run.stdout[len("Text: "):].splitlines() == expected_sentences(tiny_h5, TEXT, 3)


def test_output_dir_is_created(run_main, tiny_h5, tmp_path):
    target = tmp_path / "a" / "b"
    run = run_main([TEXT, "--model", tiny_h5, "--output-dir", str(target), "--no-html"])
    assert run.status == 0, run
    assert len(pngs(target)) == 4 and not (target / "attention.html").exists()


def test_default_output_is_current_directory(run_main, tiny_h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = run_main([TEXT, "--model", tiny_h5])
    assert run.status == 0, run
    assert len(pngs(tmp_path)) == 4


# failures: one line on stderr, non-zero exit, no traceback, no files -------------


def test_no_mask(run_main, tiny_h5, tmp_path):
    run = run_main(["The turtle slowly moved.", "--model", tiny_h5, "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, "Input must include mask token [MASK].")
    assert not (tmp_path / "out").exists()


def test_no_mask_names_the_models_own_mask_token(run_main, tmp_path):
    model_dir = build_bert_dir(str(tmp_path / "m"), mask_token="[MSK]")
    run = run_main(["The [MASK] sat.", "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, "Input must include mask token [MSK].")


def test_missing_model_directory(run_main, tmp_path):
    run = run_main([TEXT, "--model", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path)])
    assert_one_line_failure(run, f"Model directory not found: {tmp_path / 'nowhere'}")


def test_directory_of_a_model_the_tool_cannot_read(run_main, tmp_path):
    (tmp_path / "t5").mkdir()
    (tmp_path / "t5" / "config.json").write_text(json.dumps({"model_type": "t5"}))
    run = run_main([TEXT, "--model", str(tmp_path / "t5"), "--output-dir", str(tmp_path)])
    assert_one_line_failure(run)
    assert "model_type t5 is an encoder-decoder" in run.stderr


def test_directory_without_config(run_main, tmp_path):
    run = run_main([TEXT, "--model", str(tmp_path), "--output-dir", str(tmp_path)])
    assert_one_line_failure(run)
    assert "no config.json" in run.stderr


def test_unwritable_output_dir(run_main, tiny_h5, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    run = run_main([TEXT, "--model", tiny_h5, "--output-dir", str(tmp_path / "file" / "out")])
    assert_one_line_failure(run)
    assert "Cannot write" in run.stderr
    assert os.listdir(tmp_path) == ["file"]


def test_end_of_input_at_prompt(run_main, tiny_h5, tmp_path):
    run = run_main(["--model", tiny_h5, "--output-dir", str(tmp_path)], stdin="")
    assert_one_line_failure(run, "No text given (end of input).")


def test_bad_top_k_is_one_line(run_main, tiny_h5):
    run = run_main([TEXT, "--model", tiny_h5, "-k", "0"])
    assert run.status == 2 and len(run.stderr.strip().splitlines()) == 1, run


def test_hub_name_offline_and_not_cached_fails_fast(tmp_path):
    """No network and an empty cache: one line naming the cause and the fixes, within 10 s."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "mask.py"), TEXT, "--model", "some-org/some-bert",
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no connection" in lines[0] and "--model DIR" in lines[0] and "Run once" in lines[0]
    assert elapsed < 10


def test_stdout_is_only_the_sentences_and_no_library_noise(tiny_safetensors, tmp_path):
    """A real process: stdout carries the sentences, stderr no TensorFlow/transformers log lines."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "mask.py"), "--model", tiny_safetensors, "--output-dir", str(tmp_path)],
        input=TEXT + "\n", capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Text: " + "\n".join(expected_sentences(tiny_safetensors, TEXT, 3)) + "\n"
    noise = ["oneDNN", "cuda", "WARNING", "deprecated", "Traceback", "I0000", "E0000"]
    assert not [word for word in noise if word.lower() in result.stderr.lower()], result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Wrote ")


def test_help_and_no_mask_error_come_before_tensorflow(tiny_h5):
    """--help is instant and the no-mask error never imports TensorFlow or loads the model."""
    probe = (
        "import sys, mask\n"
        "try:\n    mask.main(sys.argv[1:])\n"
        "except SystemExit as e:\n    print('EXIT', e.code, 'tensorflow' in sys.modules, file=sys.stderr)\n"
    )
    for argv, expected in [(["--help"], "EXIT 0 False"), (["No mask here.", "--model", tiny_h5], "EXIT 1 False")]:
        result = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, cwd=ROOT,
                                timeout=60)
        assert result.stderr.strip().splitlines()[-1] == expected, result.stderr

"""
The run object (attention_run.AttentionRun) that the command line, mask.explain()
and every writer share; word-level runs; and the CS50 job in a copy of the tool
that holds only what CS50's submit50/check50 copy (top-level *.py and *.md, assets/).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, call_main, diagram_names, model_outputs
from PIL import Image

import mask

# Split words ("play ##ing", "un ##known", "wonder ##ful") before, between and after masks
SPLIT_WORDS = "The wonderful cat was playing with a [MASK] and an unknown [MASK] then walked quickly to the [MASK]."


def viewer_payload(path):
    html = open(path, encoding="utf-8").read()
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1)
    return json.loads(data)


@pytest.mark.parametrize("words", [False, True], ids=["tokens", "words"])
def test_mask_positions_follow_the_tokens_drawn(words, tiny_h5, tmp_path):
    """Every index that refers to tokens (npz, viewer) points at a mask in the tokens as drawn."""
    _, tokens, _, _, _ = model_outputs(tiny_h5, SPLIT_WORDS)
    assert {"##ful", "##ing", "##known"} <= set(tokens)  # the sentence does split words
    run = call_main([SPLIT_WORDS, "--model", tiny_h5, "--output-dir", str(tmp_path), "--save",
                     str(tmp_path / "run.npz")] + ["--words"] * words)
    assert run.status == 0, run
    plain = call_main([SPLIT_WORDS, "--model", tiny_h5, "--output-dir", str(tmp_path / "plain"), "--no-html"])
    assert run.stdout == plain.stdout  # --words changes the drawing, never the fill-ins
    saved = np.load(tmp_path / "run.npz", allow_pickle=False)
    drawn = saved["tokens"].tolist()
    assert len(drawn) == (len(tokens) - 3 if words else len(tokens))
    if words:
        assert {"wonderful", "playing", "unknown"} <= set(drawn)
    assert [drawn[p] for p in saved["mask_positions"]] == ["[MASK]"] * 3
    payload = viewer_payload(tmp_path / "attention.html")
    assert payload["tokens"] == drawn
    assert [group["mask_index"] for group in payload["predictions"]] == saved["mask_positions"].tolist()
    side = mask.GRID_SIZE * len(drawn) + mask.PIXELS_PER_WORD
    assert Image.open(tmp_path / "Attention_Layer2_Head2.png").size == (side, side)


def test_explain_is_the_command_lines_run(tiny_safetensors, tmp_path):
    """mask.explain() gives the same sentences, arrays and pixels as the command line, and .save() its files."""
    text = "The [MASK] sat on the [MASK]."
    cli = call_main([text, "--model", tiny_safetensors, "--output-dir", str(tmp_path / "cli"), "--save",
                     str(tmp_path / "cli.npz")])
    assert cli.status == 0, cli
    run = mask.explain(text, model=tiny_safetensors)
    printed = [line for line in cli.stdout.splitlines() if not line.startswith("Mask ")]
    assert [candidate.sentence for group in run.predictions for candidate in group] == printed
    saved = np.load(tmp_path / "cli.npz", allow_pickle=False)
    np.testing.assert_array_equal(run.attentions, saved["attentions"])
    assert run.tokens == saved["tokens"].tolist()
    for layer, head in [(1, 1), (3, 4)]:
        name = f"Attention_Layer{layer}_Head{head}.png"
        with Image.open(tmp_path / "cli" / name) as image:
            assert np.array_equal(np.asarray(run.diagram(layer, head)), np.asarray(image.convert("L")))
    with Image.open(tmp_path / "cli" / "Attention_Overview.png") as image:
        assert np.array_equal(np.asarray(run.overview()), np.asarray(image.convert("L")))
    run.save(str(tmp_path / "api"))
    assert sorted(os.listdir(tmp_path / "api")) == sorted(os.listdir(tmp_path / "cli"))
    for name in os.listdir(tmp_path / "cli"):
        assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name


def test_explain_raises_the_command_lines_one_line_message(tiny_h5):
    from errors import UserError

    with pytest.raises(UserError, match=r"^Input must include mask token \[MASK\]\.$"):
        mask.explain("No mask here.", model=tiny_h5)


def test_a_model_opens_once_per_process(tiny_h5, monkeypatch):
    import model_loading

    mask.explain("The [MASK] sat.", model=tiny_h5)
    monkeypatch.setattr(model_loading, "load_model", lambda source: pytest.fail("loaded a second time"))
    monkeypatch.setattr(model_loading, "load_tokenizer", lambda source: pytest.fail("read a second time"))
    assert mask.explain("The cat [MASK].", model=tiny_h5).predictions


# A copy of the tool as CS50's submit50 (top-level *.py, *.md) and check50 (+ assets/) make it
CS50_COPY_RUNS = """
import os, sys
import mask
out, model = sys.argv[1], sys.argv[2]
for name in ["with-template", "without-template"]:
    if name == "without-template":
        os.remove(os.path.join("assets", "viewer_template.html"))
    try:
        mask.main(["The cat sat on the [MASK].", "--model", model, "--output-dir", os.path.join(out, name)])
    except SystemExit as exit:
        print("EXIT", name, exit.code, file=sys.stderr)
"""


def test_cs50_job_works_in_a_copy_with_only_py_md_and_assets(tiny_h5, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(os.path.join(ROOT, "assets"), copy / "assets")
    for name in os.listdir(ROOT):
        if name.endswith((".py", ".md")):
            shutil.copy(os.path.join(ROOT, name), copy / name)
    result = subprocess.run([sys.executable, "-c", CS50_COPY_RUNS, str(tmp_path / "out"), tiny_h5],
                            cwd=copy, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "EXIT" not in result.stderr, result.stderr
    assert len(result.stdout.splitlines()) == 6  # three fill-ins, twice
    assert len(diagram_names(tmp_path / "out" / "with-template")) == 4
    assert (tmp_path / "out" / "with-template" / "attention.html").exists()
    # without the viewer's template: every diagram, no viewer, one note, exit 0
    assert len(diagram_names(tmp_path / "out" / "without-template")) == 4
    assert not (tmp_path / "out" / "without-template" / "attention.html").exists()
    second_run = result.stderr.split("Wrote ", 1)[1].split("\n", 1)[1].splitlines()
    assert second_run[0].startswith("Note: ") and "viewer_template.html is missing" in second_run[0]
    assert second_run[1].startswith("Wrote 4 diagrams, Attention_Overview.png to ") and len(second_run) == 2

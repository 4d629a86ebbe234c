"""The fast renderer draws exactly what the straightforward CS50 renderer draws."""

import os

import numpy as np
import pytest
from PIL import Image

import diagrams
import mask
from benchmarks import reference_renderer


def random_attentions(layers, heads, n, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.random((layers, 1, heads, n, n)).astype(np.float32) ** 3
    return weights / weights.sum(axis=-1, keepdims=True)


TOKEN_LISTS = [
    ["[CLS]", "the", "turtle", "slowly", "moved", "across", "the", "[MASK]", ".", "[SEP]"],
    ["[CLS]", "a", "[SEP]"],
    ["[CLS]", "antidisestablishmentarianism", "##ly", "ü", "東", "😀", "[MASK]", "[SEP]"],
    ["x"],
    ["[CLS]", "gjpqy", "(|)", "ÅÉÎ", "[SEP]", "jumpy"],  # descenders and accents, one at the clipped bottom edge
    [" ", "", "\ufffd", "a" * 30, "W" * 12],  # empty, blank, too wide for the margin
]


@pytest.mark.parametrize(
    "tokens", TOKEN_LISTS, ids=["sentence", "short", "odd-labels", "one-token", "descenders", "blank-and-wide"]
)
def test_fast_renderer_matches_reference_pixel_for_pixel(tokens, tmp_path):
    attentions = random_attentions(2, 3, len(tokens), seed=len(tokens))
    (tmp_path / "ref").mkdir()
    (tmp_path / "fast").mkdir()
    reference_renderer.visualize_attentions(tokens, attentions, str(tmp_path / "ref"))
    mask.visualize_attentions(tokens, attentions, str(tmp_path / "fast"))

    names = sorted(os.listdir(tmp_path / "ref"))
    assert names == sorted(os.listdir(tmp_path / "fast")) and len(names) == 6
    for name in names:
        reference = np.asarray(Image.open(tmp_path / "ref" / name).convert("RGB"))
        fast = np.asarray(Image.open(tmp_path / "fast" / name).convert("RGB"))
        assert reference.shape == fast.shape
        assert np.array_equal(reference, fast), f"{name}: {(reference != fast).any(axis=2).sum()} pixels differ"


def test_exact_half_levels_round_like_the_contract():
    """Scores whose gray lands exactly on .5 must round as get_color_for_attention_score rounds."""
    scores = np.array([0.5 / 255, 1.5 / 255, 2.5 / 255, 127.5 / 255, 0.3, 0.8, 1.0, 0.0, np.nan, 2.0, -1.0, np.inf])
    expected = [mask.get_color_for_attention_score(s)[0] for s in scores]
    assert diagrams.gray_levels(scores).tolist() == expected


def test_png_encoder_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(diagrams.png_bytes(pixels))
    image = Image.open(tmp_path / "x.png")
    assert image.mode == "L" and image.size == (53, 37)
    assert np.array_equal(np.asarray(image), pixels)


def test_diagrams_go_to_the_output_dir_given_and_else_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    mask.generate_diagram(3, 4, ["a", "b"], np.eye(2), str(tmp_path / "out"))
    mask.visualize_attentions(["a", "b"], np.full((2, 1, 2, 2, 2), 0.5), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["Attention_Layer1_Head1.png", "Attention_Layer1_Head2.png",
                                                    "Attention_Layer2_Head1.png", "Attention_Layer2_Head2.png",
                                                    "Attention_Layer3_Head4.png"]
    assert sorted(os.listdir(tmp_path)) == ["out"]
    mask.generate_diagram(1, 1, ["a", "b"], np.eye(2))  # CS50's call: the current directory
    assert sorted(os.listdir(tmp_path)) == ["Attention_Layer1_Head1.png", "out"]


def test_overview_shows_every_head_in_its_place():
    layers, heads, n = 3, 4, 6
    attentions = np.zeros((layers, heads, n, n), dtype=np.float32)
    attentions[2, 1] = np.eye(n)  # one bright diagonal: layer 3, head 2
    font = mask.ImageFont.truetype(mask.FONT.path, 20)
    image = diagrams.overview_image(attentions, font)
    pixels = np.asarray(image)
    scale = max(1, 96 // n)
    thumb, gap, left, top = n * scale, 8, 110, 60

    def thumbnail(layer, head):  # 1-based, as the labels read
        y = top + (layer - 1) * (thumb + gap)
        x = left + (head - 1) * (thumb + gap)
        return pixels[y: y + thumb, x: x + thumb]

    assert thumbnail(3, 2).max() == 255 and np.array_equal(np.diag(thumbnail(3, 2)[::scale, ::scale]), [255] * n)
    assert thumbnail(1, 1).max() == 0 and thumbnail(3, 4).max() == 0
    # the legend is a ramp from black to white below the grid
    legend_row = pixels[top + layers * (thumb + gap) + 16 + 9, left: left + 100]
    assert legend_row[0] < 10 and np.all(np.diff(legend_row.astype(int)) >= 0)


def test_overview_for_a_long_sentence_stays_readable():
    attentions = random_attentions(12, 12, 40)[:, 0]
    image = diagrams.overview_image(attentions, mask.ImageFont.truetype(mask.FONT.path, 20))
    width, height = image.size
    assert 1000 < width < 1400 and 1000 < height < 1500, image.size  # 12 x 12 thumbnails of 80 px, 2 px a cell

"""The CS50 contract functions, called as CS50's checker calls them."""

import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from transformers import BatchEncoding

import mask

# get_mask_token_index ------------------------------------------------------

@pytest.mark.parametrize(
    "make_ids",
    [
        lambda ids: tf.constant([ids]),
        lambda ids: np.array([ids]),
        lambda ids: [ids],
    ],
    ids=["tf-tensor", "numpy", "nested-list"],
)
def test_mask_index_in_plain_dict(make_ids):
    inputs = {"input_ids": make_ids([2, 7, 9, 4, 8, 3])}
    index = mask.get_mask_token_index(4, inputs)
    assert index == 3 and type(index) is int


def test_mask_index_in_batch_encoding_with_only_input_ids():
    inputs = BatchEncoding({"input_ids": tf.constant([[101, 1996, 103, 102]])})
    assert mask.get_mask_token_index(103, inputs) == 2


def test_mask_index_never_assumes_103():
    inputs = {"input_ids": np.array([[101, 103, 5, 102]])}
    assert mask.get_mask_token_index(5, inputs) == 2


def test_mask_index_absent_is_none():
    assert mask.get_mask_token_index(103, {"input_ids": [[101, 7, 102]]}) is None


def test_mask_index_is_first_of_several():
    assert mask.get_mask_token_index(9, {"input_ids": np.array([[1, 9, 2, 9]])}) == 1


# get_color_for_attention_score ----------------------------------------------

@pytest.mark.parametrize("score", [0.3, np.float32(0.3), np.float64(0.3), tf.constant(0.3)])
def test_color_03(score):
    color = mask.get_color_for_attention_score(score)
    assert color in [(76, 76, 76), (77, 77, 77)]
    assert all(type(channel) is int for channel in color)


@pytest.mark.parametrize("score", [0.8, np.float32(0.8), tf.constant(0.8), tf.constant(0.8, dtype=tf.float64)])
def test_color_08(score):
    assert mask.get_color_for_attention_score(score) == (204, 204, 204)


def test_color_extremes_and_undefined_values():
    assert mask.get_color_for_attention_score(0) == (0, 0, 0)
    assert mask.get_color_for_attention_score(1.0) == (255, 255, 255)
    assert mask.get_color_for_attention_score(1.7) == (255, 255, 255)  # clipped
    assert mask.get_color_for_attention_score(-0.2) == (0, 0, 0)  # clipped
    assert mask.get_color_for_attention_score(float("nan")) == (0, 0, 0)  # drawn black


# visualize_attentions ---------------------------------------------------------

def test_visualize_calls_generate_diagram_for_every_layer_and_head():
    layers, heads, n = 3, 5, 4
    attentions = tuple(tf.random.uniform((1, heads, n, n), seed=i) for i in range(layers))
    tokens = ["[CLS]", "a", "[MASK]", "[SEP]"]
    with mock.patch.object(mask, "generate_diagram") as generate:
        mask.visualize_attentions(tokens, attentions)
    assert generate.call_count == layers * heads
    calls = generate.call_args_list
    expected = [(i + 1, k + 1) for i in range(layers) for k in range(heads)]
    assert [call.args[:2] for call in calls] == expected
    for call in calls:
        layer, head, passed_tokens, weights = call.args  # CS50's four arguments, in CS50's order
        assert call.kwargs == {"output_dir": "."}
        assert passed_tokens == tokens
        np.testing.assert_array_equal(np.asarray(weights), attentions[layer - 1][0][head - 1].numpy())


# generate_diagram -----------------------------------------------------------------

def test_generate_diagram_size_pixels_and_place(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tokens = ["[CLS]", "the", "cat", "[SEP]"]
    rng = np.random.default_rng(0)
    weights = rng.random((4, 4)).astype(np.float32)
    mask.generate_diagram(2, 7, tokens, weights)

    path = tmp_path / "Attention_Layer2_Head7.png"
    assert os.listdir(tmp_path) == [path.name]  # written in the current directory, nothing else
    image = Image.open(path).convert("RGB")
    side = mask.GRID_SIZE * len(tokens) + mask.PIXELS_PER_WORD
    assert image.size == (side, side)
    for i in range(4):
        for j in range(4):
            x = mask.PIXELS_PER_WORD + j * mask.GRID_SIZE
            y = mask.PIXELS_PER_WORD + i * mask.GRID_SIZE
            expected = mask.get_color_for_attention_score(weights[i][j])
            # corners and centre of cell (i, j): row = attending token, column = attended-to token
            for dx, dy in [(0, 0), (mask.GRID_SIZE - 1, mask.GRID_SIZE - 1), (20, 20)]:
                assert image.getpixel((x + dx, y + dy)) == expected
    # black background in the top-left corner, white-ish label text in both margins
    assert image.getpixel((5, 5)) == (0, 0, 0)
    left_margin = np.asarray(image)[mask.PIXELS_PER_WORD:, : mask.PIXELS_PER_WORD]
    top_margin = np.asarray(image)[: mask.PIXELS_PER_WORD, mask.PIXELS_PER_WORD:]
    assert left_margin.max() > 200 and top_margin.max() > 200


def test_row_labels_are_right_aligned(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mask.generate_diagram(1, 1, ["a", "elephant"], np.eye(2))
    pixels = np.asarray(Image.open("Attention_Layer1_Head1.png").convert("L"))
    band = lambda i: pixels[mask.PIXELS_PER_WORD + i * 40: mask.PIXELS_PER_WORD + (i + 1) * 40, : mask.PIXELS_PER_WORD]  # noqa: E731
    right_edge = lambda rows: np.nonzero(rows.max(axis=0) > 100)[0].max()  # noqa: E731
    left_edge = lambda rows: np.nonzero(rows.max(axis=0) > 100)[0].min()  # noqa: E731
    # both labels end at the grid; the longer one starts further left
    assert abs(right_edge(band(0)) - right_edge(band(1))) <= 3
    assert right_edge(band(0)) > mask.PIXELS_PER_WORD - 10
    assert left_edge(band(1)) < left_edge(band(0)) - 50

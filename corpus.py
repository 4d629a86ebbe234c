"""
Corpus mode: one model over many sentences, every head's behaviour averaged.

    python mask.py --corpus sentences.txt [--model M] [--output-dir DIR] [--batch-size N] [--save FILE.npz]

One sentence a line; blank lines and lines starting with "#" are skipped; a mask is
allowed but not needed (corpus mode draws no diagrams and makes no fill-ins). A
sentence pair "A [SEP] B" is read as a pair, as in a single run. Each line goes
through attention_run.prepare, the checks a single run makes, so a line the model
cannot read (too long) is reported with its number and skipped.

Speed: the sentences run through the encoder in padded batches (sorted by length,
so there is little padding) with an attention mask, through one traced TensorFlow
function; nothing but each sentence's scores is kept, so memory is bounded by one
batch, never by the corpus. Padding changes no score: each sentence's scores are
computed on its own (n, n) block of the padded attentions by patterns.batch_pattern_scores,
the code a single run uses (a batch of one there), and BERT gives padded keys 0 attention.

Outputs: heads.csv (per layer and head, the mean over sentences of every pattern score
and head measure), Heads_Summary.png (the same as heat maps, readable without the CSV),
the top heads per pattern on stdout, and with --save the per-sentence numbers.
"""

import csv
import io
import os
import sys
from dataclasses import dataclass, field

import numpy as np

import attention_run
import diagrams
import families
import model_loading
import outputs
import patterns
from errors import UserError

# Files corpus mode writes into the output directory
HEADS_FILE = "heads.csv"
SUMMARY_FILE = "Heads_Summary.png"

# Sentences per forward pass (--batch-size)
BATCH_SIZE = 32

# Most attention cells a batch may hold per layer and head (sentences x n_max x n_max): long sentences
# go in smaller batches (a 512-token text alone), so a batch stays about 150 MB of float64 scores even for bert-base
MAX_BATCH_CELLS = 32 * 64 * 64

# Seconds before the progress bar appears (a small corpus finishes without one)
PROGRESS_DELAY = 1.0


def read_sentences(path):
    """
    The sentences of a corpus file: a list of (line number, text), 1-based, without blank
    lines and "#" comment lines. Raises UserError (one line) for a missing or unreadable
    file, text that is not UTF-8, or a file with no sentence.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise UserError(f"Cannot read {path}: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark some editors write is not part of line 1
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UserError(f"Cannot read {path}: not UTF-8 text (line {line}).") from None
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            sentences.append((number, line))
    if not sentences:
        raise UserError(f"{path} has no sentences (one per line; blank lines and lines starting with # are skipped).")
    return sentences


@dataclass
class CorpusResult:
    """
    What corpus mode found. S = sentences analysed, P = patterns, L = layers, H = heads.

    model          the model's name as shown to the user
    line_numbers   (S,) the line of each sentence in the file
    texts          (S,) each sentence as the model read it
    token_counts   (S,) tokens of each sentence, [CLS] and [SEP] included
    scores         (S, P, L, H) float32, each sentence's own pattern scores (patterns.PATTERNS order)
    measures       (S, 2, L, H) float32, each sentence's mean attention distance and entropy
    skipped        (line number, reason) of every line that was not analysed
    """

    model: str
    line_numbers: list
    texts: list
    token_counts: np.ndarray
    scores: np.ndarray
    measures: np.ndarray
    skipped: list = field(default_factory=list)

    pattern_names = list(patterns.PATTERNS)
    measure_names = list(patterns.MEASURES)

    def mean_scores(self):
        """{pattern: (L, H)} the mean over sentences of each sentence's score."""
        means = self.scores.astype(np.float64).mean(axis=0)
        return dict(zip(self.pattern_names, means, strict=True))

    def mean_measures(self):
        """{"distance": (L, H), "entropy": (L, H)}, means over sentences."""
        means = self.measures.astype(np.float64).mean(axis=0)
        return dict(zip(self.measure_names, means, strict=True))

    def top_heads_lines(self, count=3):
        """What --patterns prints, for the corpus means."""
        title = f"Heads that most show each pattern (mean score 0-1 over {len(self.texts)} sentences):"
        return patterns.format_top_heads(patterns.top_heads(self.mean_scores(), count), title=title)

    def heads_csv(self):
        """heads.csv as text: one row per layer and head (1-based), the mean of every score and measure."""
        scores, measures = self.mean_scores(), self.mean_measures()
        layers, heads = self.scores.shape[2:]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["layer", "head", *self.pattern_names, *self.measure_names])
        for layer in range(layers):
            for head in range(heads):
                values = [scores[name][layer, head] for name in self.pattern_names]
                values += [measures[name][layer, head] for name in self.measure_names]
                writer.writerow([layer + 1, head + 1, *(f"{value:.6f}" for value in values)])
        return buffer.getvalue()

    def summary_png(self):
        """Heads_Summary.png as PNG bytes (matplotlib, imported only here)."""
        return summary_figure(self)

    def save(self, directory):
        """Write heads.csv and Heads_Summary.png into `directory`, each atomically; returns their names."""
        with outputs.atomic_file(os.path.join(directory, HEADS_FILE), "w") as file:
            file.write(self.heads_csv())
        png = self.summary_png()
        with outputs.atomic_file(os.path.join(directory, SUMMARY_FILE)) as file:
            file.write(png)
        return [HEADS_FILE, SUMMARY_FILE]

    def save_npz(self, path):
        """
        The per-sentence numbers (--save), read back with numpy.load(path) (no pickle):
          model                 0-d str
          sentences             (S,) str, as the model read them
          line_numbers          (S,) int64, their lines in the corpus file
          token_counts          (S,) int64
          pattern_names         (P,) str
          pattern_scores        (S, P, L, H) float32
          distance, entropy     (S, L, H) float32, mean attention distance (tokens) and entropy (nats)
        """
        arrays = {
            "model": np.array(self.model, dtype=str),
            "sentences": np.array(self.texts, dtype=str).reshape(len(self.texts)),
            "line_numbers": np.array(self.line_numbers, dtype=np.int64),
            "token_counts": np.asarray(self.token_counts, dtype=np.int64),
            "pattern_names": np.array(self.pattern_names, dtype=str),
            "pattern_scores": self.scores.astype(np.float32),
        }
        for index, name in enumerate(self.measure_names):
            arrays[name] = self.measures[:, index].astype(np.float32)
        with outputs.atomic_file(path) as file:
            np.savez_compressed(file, **arrays)


def analyse(sentences, model, *, fallback_to_bundled=False, batch_size=BATCH_SIZE, notify=None, progress=False):
    """
    Run `model` over `sentences` ((line number, text) pairs, see read_sentences) in padded
    batches and return a CorpusResult. notify(line) is told about skipped lines and notes;
    progress=True shows a progress bar on stderr (when stderr is a terminal).
    """
    notify = notify or (lambda line: print(line, file=sys.stderr))
    opened = attention_run.open_model(model, fallback_to_bundled)
    for note in opened.source.notes:
        notify(note)
    requests, skipped = [], []
    for number, text in sentences:
        try:
            request = attention_run.prepare(text, model, fallback_to_bundled=fallback_to_bundled, require_mask=False)
        except UserError as error:
            skipped.append((number, str(error)))
            notify(f"Skipping line {number}: {error}")
            continue
        for note in request.notes[len(opened.source.notes):]:
            notify(f"Line {number}: {note}")
        requests.append((number, request))
    if not requests:
        raise UserError(f"No sentence left to analyse: all {len(sentences)} were skipped.")

    # the loaded model's config reads every family's names for these (GPT-2: n_layer, n_head)
    tokenizer, config = opened.tokenizer, opened.network.config
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    count = len(requests)
    lengths = np.array([request.encoding["input_ids"].shape[1] for _, request in requests])
    scores = np.zeros((count, len(patterns.PATTERNS), layers, heads), dtype=np.float32)
    measures = np.zeros((count, len(patterns.MEASURES), layers, heads), dtype=np.float32)
    from tqdm import tqdm

    bar = tqdm(total=count, unit="sentence", file=sys.stderr, disable=None if progress else True,
               delay=PROGRESS_DELAY, leave=False, dynamic_ncols=True)
    with bar:
        for batch in batches(lengths, batch_size):
            chosen = [requests[k][1] for k in batch]
            batch_scores, batch_measures = _analyse_batch(opened, tokenizer, chosen)
            scores[batch] = batch_scores
            measures[batch] = batch_measures
            bar.update(len(batch))
    return CorpusResult(
        model=opened.source.label, line_numbers=[number for number, _ in requests],
        texts=[request.text for _, request in requests], token_counts=lengths, scores=scores,
        measures=measures, skipped=skipped,
    )


def batches(lengths, batch_size):
    """
    Indices of the sentences in batches: sorted by length (little padding), at most batch_size
    sentences and MAX_BATCH_CELLS attention cells (sentences x n_max^2) each, but never empty.
    """
    order = np.argsort(lengths, kind="stable")
    batch = []
    for index in order:
        longest = lengths[index]  # sorted: the newest sentence is the longest
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * longest * longest > MAX_BATCH_CELLS):
            yield batch
            batch = []
        batch.append(int(index))
    if batch:
        yield batch


def _analyse_batch(opened, tokenizer, requests):
    """One padded forward pass: (batch, P, L, H) pattern scores and (batch, 2, L, H) head measures."""
    lengths = [request.encoding["input_ids"].shape[1] for request in requests]
    n_max = max(lengths)
    input_ids = np.full((len(requests), n_max), padding_id(opened), dtype=np.int32)
    attention_mask = np.zeros((len(requests), n_max), dtype=np.int32)  # 1 = token, 0 = padding
    token_type_ids = np.zeros((len(requests), n_max), dtype=np.int32)
    tokens, segments = [], []
    for b, request in enumerate(requests):
        ids = request.encoding["input_ids"][0]
        n = len(ids)
        input_ids[b, :n] = ids
        attention_mask[b, :n] = 1
        if "token_type_ids" in request.encoding:
            token_type_ids[b, :n] = request.encoding["token_type_ids"][0]
        tokens.append([diagrams.printable(token) for token in families.token_labels(tokenizer, request.encoding,
                                                                                    request.text)])
        segments.append(request.segments if request.segments is not None else [0] * n)
    # attentions: (batch, layers, heads, n_max, n_max); sentence b's own block is [b, :, :, :n_b, :n_b]
    attentions = model_loading.batch_attentions(opened.attention_function, input_ids, attention_mask, token_type_ids)
    # the labels the "cls" and "sep" patterns look for are the model's, not the same for every sentence's text
    start, separator = families.special_roles(tokenizer, requests[0].encoding, tokens[0])
    scores = patterns.batch_pattern_scores(attentions, lengths, tokens, start, separator, segments)
    measures = patterns.head_measures(attentions, lengths)
    return (np.stack([scores[name] for name in patterns.PATTERNS], axis=1),
            np.stack([measures[name] for name in patterns.MEASURES], axis=1))


def padding_id(opened):
    """
    The id padded positions get (they are masked out, but still go through the embedding
    lookup): the model's own pad_token_id (RoBERTa-like families count positions from
    it), else the tokenizer's, else 0; never an id at or past vocab_size, such as a pad
    token added to the tokenizer after the vocabulary, which the lookup would refuse.
    """
    vocabulary = opened.network.config.vocab_size
    for candidate in (opened.network.config.pad_token_id, opened.tokenizer.pad_token_id):
        if isinstance(candidate, int) and 0 <= candidate < vocabulary:
            return candidate
    return 0


def summary_figure(result):
    """
    Heads_Summary.png as PNG bytes: for each pattern a layers x heads heat map of its mean
    score (one colour scale, 0 to 1, for all patterns), the same for mean attention distance
    and entropy, and per layer every head's distance and entropy with the layer's mean.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    scores, measures = result.mean_scores(), result.mean_measures()
    layers, heads = result.scores.shape[2:]
    panels = [(name, patterns.PATTERNS[name], scores[name], (0.0, 1.0)) for name in result.pattern_names]
    panels += [(name, patterns.MEASURES[name], measures[name], None) for name in result.measure_names]
    columns = 3
    rows = -(-(len(panels) + 2) // columns)
    cell = 0.42 if heads <= 12 else 0.3
    width = columns * max(3.2, heads * cell + 1.4)
    height = rows * max(2.6, layers * cell + 1.2) + 0.8
    figure, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    axes = axes.ravel()
    annotate = layers * heads <= 144
    for axis, (name, description, grid, limits) in zip(axes, panels, strict=False):
        vmin, vmax = limits or (float(grid.min()), float(grid.max()) or 1.0)
        image = axis.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        axis.set_title(f"{name}: {description}", fontsize=9)
        axis.set_xticks(range(heads), [str(h + 1) for h in range(heads)], fontsize=7)
        axis.set_yticks(range(layers), [str(layer + 1) for layer in range(layers)], fontsize=7)
        axis.set_xlabel("head", fontsize=8)
        axis.set_ylabel("layer", fontsize=8)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
        if annotate:
            middle = (vmin + vmax) / 2
            text = (lambda v: f"{v:.2f}".lstrip("0") if v < 1 else "1") if limits else (lambda v: f"{v:.1f}")
            for layer in range(layers):
                for head in range(heads):
                    value = float(grid[layer, head])
                    axis.text(head, layer, text(value), ha="center", va="center", fontsize=5.5,
                              color="black" if value > middle else "white")
    for offset, name in enumerate(result.measure_names):
        axis = axes[len(panels) + offset]
        grid = measures[name]
        for layer in range(layers):
            axis.scatter(np.full(heads, layer + 1), grid[layer], s=10, color="tab:blue", alpha=0.6,
                         label="a head" if layer == 0 else None)
        axis.plot(range(1, layers + 1), grid.mean(axis=1), color="tab:red", marker="o", label="mean over heads")
        axis.set_title(f"{patterns.MEASURES[name]} per layer", fontsize=9)
        axis.set_xlabel("layer", fontsize=8)
        axis.set_xticks(range(1, layers + 1))
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=7)
    for axis in axes[len(panels) + len(result.measure_names):]:
        axis.set_visible(False)
    figure.suptitle(f"{result.model}: every head, mean over {len(result.texts)} sentences", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))  # room for the title above the panels
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()

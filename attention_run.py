"""
One run of the tool: a text and a model in, everything the tool shows out.

`prepare(text, model)` finds the model, reads its tokenizer and checks the text
(no TensorFlow yet, so a bad text fails in about a second); `Request.run()` loads
the model (once per process), runs it once and returns an `AttentionRun`: tokens,
attentions, fill-ins and pattern scores as plain Python and NumPy values. The
command line (mask.main), the notebook API (mask.explain) and every writer
(per-head diagrams, overview, viewer, .npz) take that object, so they all show
the same run.
"""

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFont

import diagrams
import families
import model_loading
import model_source
import outputs
import patterns
import timing
import viewer
from errors import UserError
from fill_ins import Candidate, fill_ins, mask_positions, next_words

# Name of the overview image and of the viewer page a run writes
OVERVIEW_FILE = "Attention_Overview.png"
VIEWER_FILE = "attention.html"


@dataclass(frozen=True)
class Style:
    """How a run's diagrams look and are written; mask.py gives CS50's constants and functions."""

    font: ImageFont.FreeTypeFont  # token labels
    grid_size: int  # side of one attention cell, in pixels
    margin: int  # width of the label margins, in pixels
    max_tokens: int  # longest text drawn head by head (longer: the overview only)
    # visualize(tokens, attentions, output_dir): writes Attention_Layer{L}_Head{H}.png for every head;
    # attentions as the model returns them, one (batch=1, heads, n, n) array per layer
    visualize: Callable


class OpenModel:
    """A located model with its tokenizer; the TensorFlow model is loaded on first use, once."""

    def __init__(self, source):
        self.source = source
        self.tokenizer = model_loading.load_tokenizer(source)

    @functools.cached_property
    def network(self):
        return model_loading.load_model(self.source)


@functools.lru_cache(maxsize=4)
def open_model(name, fallback_to_bundled=False):
    """The model called `name` (see model_source.locate), opened once per process."""
    return OpenModel(model_source.locate(name, fallback_to_bundled=fallback_to_bundled))


@dataclass
class Request:
    """A checked text, tokenized for its model: what `prepare` returns and `run` runs."""

    model: OpenModel
    text: str  # as the model reads it ("[mask]" written as the model's mask token)
    encoding: object  # the tokenizer's BatchEncoding (NumPy arrays, batch of 1)
    mask_positions: list  # token index of each mask, in order
    notes: list  # lines to tell the user (stderr in the CLI) once the text is known to be usable

    def run(self, *, top_k=3, words=False, style=None):
        """Run the model once and return the AttentionRun (words=True merges word pieces)."""
        logits, attentions = model_loading.forward(self.model.network, self.encoding)
        # logits: (seq, vocab); attentions: (layers, heads, seq, seq)
        with timing.phase("fill-ins"):
            return self._results(logits, attentions, top_k, words, style)

    def _results(self, logits, attentions, top_k, words, style):
        """The run's predictions, tokens as drawn and pattern scores."""
        source, tokenizer = self.model.source, self.model.tokenizer
        predictions, notes = None, list(self.notes)
        top_k = min(top_k, logits.shape[-1])
        if source.has_lm_head and source.causal:
            predictions = [next_words(tokenizer, self.text, logits[-1], top_k)]
        elif source.has_lm_head:
            predictions = fill_ins(tokenizer, self.text, logits, self.mask_positions, top_k)
        else:  # said once the model has loaded: a model that fails to load gets its one-line error only
            what = "language-model head: drawing attention only, no next words" if source.causal else (
                "masked-LM head: drawing attention only, no fill-ins")
            notes.append(f"Note: {source.label} has no {what}.")
        tokens = families.token_labels(tokenizer, self.encoding, self.text)
        # the next words follow the last token; a mask's fill-ins go where the mask is
        positions = [len(tokens) - 1] if source.causal else list(self.mask_positions)
        if words:
            groups = word_groups(tokenizer, self.encoding, self.text)
            raw = tokenizer.convert_ids_to_tokens([int(i) for i in self.encoding["input_ids"][0]])
            tokens = [tokens[group[0]] if len(group) == 1 else families.word_label(tokenizer, [raw[i] for i in group])
                      for group in groups]
            attentions = patterns.merge_words(groups, attentions)
            group_of = {i: w for w, group in enumerate(groups) for i in group}
            positions = [group_of[p] for p in positions]
        tokens = [diagrams.printable(token) for token in tokens]
        start, separator = families.special_roles(tokenizer, self.encoding, tokens)
        scores = patterns.pattern_scores(attentions, tokens, start, separator)
        return AttentionRun(
            text=self.text, model=source.label, tokens=tokens, attentions=attentions.astype(np.float32),
            predictions=predictions, mask_positions=positions, patterns=scores, notes=notes,
            style=style, causal=source.causal, special=(start, separator),
        )


def prepare(text, model, *, fallback_to_bundled=False):
    """
    Find `model`, tokenize `text` with its tokenizer and check both; raises UserError
    with a one-line message for anything unusable. Loads no TensorFlow.
    """
    opened = open_model(model, fallback_to_bundled)
    source, tokenizer = opened.source, opened.tokenizer
    text, typed = normalize_mask(text, tokenizer, source)
    encoding = tokenizer(text, return_tensors="np")
    check_length(encoding["input_ids"].shape[1], source)
    positions = [] if source.causal else mask_positions(tokenizer.mask_token_id, encoding["input_ids"][0])
    if source.has_lm_head and not source.causal and tokenizer.mask_token is None:
        raise UserError(f"The tokenizer of {source.label} has no mask token.")
    if source.has_lm_head and not source.causal and not positions:
        raise UserError(f"Input must include mask token {tokenizer.mask_token}.")
    notes = list(source.notes)
    if typed is not None:
        notes.append(f"Note: reading {typed} as {tokenizer.mask_token}.")
    return Request(opened, text, encoding, positions, notes)


@dataclass
class AttentionRun:
    """
    Everything one run shows. Numbers of layers and heads are 1-based wherever a
    method takes them, as in the file names.

    text          the text as the model read it
    model         the model's name as shown to the user
    tokens        the tokens as drawn (one label per row/column; words with words=True);
                  pieces that continue a word start with "##" (families.token_labels)
    attentions    (layers, heads, n, n) float32; row i = attending token, column j = attended-to
    predictions   one list of Candidates (token, token_id, probability, sentence) per mask,
                  most probable first (a causal LM: one list, its next words); None for a
                  model without its language-model head
    mask_positions  index into tokens of each mask (a causal LM: of the last token, which
                  the next words follow)
    patterns      pattern name -> (layers, heads) scores in [0, 1] (see patterns.py)
    notes         what the run has to tell the user (the CLI prints these on stderr)
    causal        True for a causal LM (each token sees only those before it)
    special       the labels the "cls" and "sep" patterns look for ([CLS]/[SEP], <s>/</s>;
                  None where the model has no such token)
    """

    text: str
    model: str
    tokens: list
    attentions: np.ndarray
    predictions: list
    mask_positions: list
    patterns: dict
    notes: list = field(default_factory=list)
    style: Style = None
    causal: bool = False
    special: tuple = ("[CLS]", "[SEP]")

    @property
    def legible(self):
        """Short enough to draw head by head (longer texts get the overview only)."""
        return len(self.tokens) <= self.style.max_tokens

    def diagram(self, layer, head):
        """Attention_Layer{layer}_Head{head}.png as a PIL image (the same pixels as the file)."""
        pixels = diagrams.head_pixels(self.tokens, self.attentions[layer - 1, head - 1], self.style.font,
                                      self.style.grid_size, self.style.margin)
        return Image.fromarray(pixels, "L")

    def overview(self):
        """Attention_Overview.png as a PIL image: every head at a glance."""
        return diagrams.overview_image(self.attentions, self.style.font.font_variant(size=20))

    def viewer_html(self):
        """attention.html as a string: the self-contained interactive viewer."""
        return viewer.render_viewer_html(**self._viewer_fields())

    def save(self, directory=".", *, html=True):
        """
        Write the files the command line writes into `directory` (created if
        missing): a diagram per head (when legible), the overview and, with html,
        the viewer. Returns what was written, for a "Wrote ..." line.
        """
        outputs.check_writable(directory)  # created if missing, as --output-dir is
        written = []
        if self.legible:
            # visualize_attentions takes the model's layout: one (batch=1, heads, n, n) array per layer
            with timing.phase("diagrams"):
                self.style.visualize(self.tokens, self.attentions[:, None], directory)
            written.append(f"{self.attentions.shape[0] * self.attentions.shape[1]} diagrams")
        with timing.phase("overview"):
            diagrams.save_png(self.overview(), os.path.join(directory, OVERVIEW_FILE))
        written.append(OVERVIEW_FILE)
        if html and self.legible:
            with timing.phase("viewer"):
                viewer.write_viewer(os.path.join(directory, VIEWER_FILE), **self._viewer_fields())
            written.append(VIEWER_FILE)
        return written

    def save_npz(self, path):
        """The run's numbers for later analysis; numpy.load(path) reads them without pickle."""
        outputs.save_npz(path, self)

    def _viewer_fields(self):
        groups = [
            {"mask_index": position, "candidates": [vars(candidate) for candidate in group]}
            for position, group in zip(self.mask_positions, self.predictions or [], strict=False)
        ]
        fields = dict(text=self.text, tokens=self.tokens, attentions=self.attentions,
                      predictions=groups if self.predictions is not None else None,
                      patterns=patterns.top_heads(self.patterns, count=5), model_name=self.model)
        if self.causal:  # the page shows "next word" candidates and masks keys after each query
            fields.update(prediction_kind="next", causal=True)
        return fields


def viewer_available():
    """The viewer's template is a file of its own (assets/); a partial copy of the tool may lack it."""
    return viewer.TEMPLATE_PATH.exists()


def word_groups(tokenizer, encoding, text):
    """
    Token indices grouped into words by the tokenizer's own word boundaries
    (families.word_ids: word_ids(), or word starts from the offsets for tokenizers
    without a pre-tokenizer, as Mistral's); special tokens stand alone. Returns a list
    of index lists covering every token in order.
    """
    word_ids, sequence_ids = families.word_ids(tokenizer, encoding, text), encoding.sequence_ids(0)
    groups, previous = [], None
    for index, (word, sequence) in enumerate(zip(word_ids, sequence_ids, strict=True)):
        key = None if word is None else (sequence, word)
        if key is not None and key == previous:
            groups[-1].append(index)
        else:
            groups.append([index])
        previous = key
    return groups


def normalize_mask(text, tokenizer, source):
    """
    Refuse empty or undecodable text, and a mask typed for a causal LM; read "[mask]"
    in any case (and "[MASK]" for "<mask>" models) as the model's mask token. Returns
    (text as the model reads it, what the user typed for the mask if it was changed, or None).
    """
    if not text.strip():
        what = "the beginning of a sentence" if source.causal else f"a sentence containing {tokenizer.mask_token}"
        raise UserError(f"No text given: type {what}.")
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # undecodable bytes in argv or stdin (surrogateescape)
        raise UserError("Text is not valid UTF-8: check the terminal's encoding.")
    return families.read_mask(text, tokenizer, source.kind, source.label)


def check_length(length, source):
    """A model has a fixed number of positions; longer text is refused, not cut silently."""
    limit = families.max_tokens(source.config)
    if length > limit:
        raise UserError(
            f"Text is too long: {length} tokens, and {source.label} reads at most {limit}. Shorten it."
        )


__all__ = ["AttentionRun", "Candidate", "Request", "Style", "UserError", "open_model", "prepare"]

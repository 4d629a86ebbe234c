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
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFont

import diagrams
import model_loading
import model_source
import outputs
import patterns
import viewer
from errors import UserError
from fill_ins import Candidate, fill_ins, mask_positions

# Names of the overview image, the rollout diagram (--rollout) and the viewer page a run writes
OVERVIEW_FILE = "Attention_Overview.png"
ROLLOUT_FILE = "Attention_Rollout.png"
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

    @functools.cached_property
    def attention_function(self):
        """The encoder traced for padded batches (corpus mode): see model_loading.attention_function."""
        return model_loading.attention_function(self.network)


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
    segments: list = None  # a sentence pair's segment id (0 or 1) per token; None for one sentence

    def run(self, *, top_k=3, words=False, style=None):
        """Run the model once and return the AttentionRun (words=True merges word pieces)."""
        source, tokenizer = self.model.source, self.model.tokenizer
        logits, attentions = model_loading.forward(self.model.network, self.encoding)
        # logits: (seq, vocab); attentions: (layers, heads, seq, seq)
        predictions, notes = None, list(self.notes)
        if source.has_mlm_head:
            top_k = min(top_k, logits.shape[-1])
            predictions = fill_ins(tokenizer, self.text, logits, self.mask_positions, top_k)
        else:  # said once the model has loaded: a model that fails to load gets its one-line error only
            notes.append(f"Note: {source.label} has no masked-LM head: drawing attention only, no fill-ins.")
        tokens = tokenizer.convert_ids_to_tokens(self.encoding["input_ids"][0])
        positions, segments = list(self.mask_positions), self.segments
        if words:
            groups = word_groups(self.encoding)
            tokens = [word_label(tokenizer, [tokens[i] for i in group]) for group in groups]
            attentions = patterns.merge_words(groups, attentions)
            group_of = {i: w for w, group in enumerate(groups) for i in group}
            positions = [group_of[p] for p in positions]
            if segments is not None:  # a word never spans the two sentences
                segments = [segments[group[0]] for group in groups]
        tokens = [diagrams.printable(token) for token in tokens]
        scores = patterns.pattern_scores(attentions, tokens, tokenizer.cls_token, tokenizer.sep_token, segments)
        return AttentionRun(
            text=self.text, model=source.label, tokens=tokens, attentions=attentions.astype(np.float32),
            predictions=predictions, mask_positions=positions, patterns=scores, notes=notes,
            style=style, segments=segments,
        )


def prepare(text, model, *, fallback_to_bundled=False, require_mask=True):
    """
    Find `model`, tokenize `text` with its tokenizer and check both; raises UserError
    with a one-line message for anything unusable. Loads no TensorFlow.

    A text with the model's separator between two sentences ("A [SEP] B" for BERT) is
    encoded as a sentence pair, exactly as tokenizer(A, B) encodes it (segment ids 0 and 1),
    when the model has segment embeddings. require_mask=False accepts text without a mask
    (corpus mode: attention only, no fill-ins).
    """
    opened = open_model(model, fallback_to_bundled)
    source, tokenizer = opened.source, opened.tokenizer
    typed, text = text, normalize_mask(text, tokenizer)
    notes = list(source.notes)
    encoding, segments, note = encode(text, tokenizer, source)
    notes += [note] if note else []
    check_length(encoding["input_ids"].shape[1], source)
    positions = mask_positions(tokenizer.mask_token_id, encoding["input_ids"][0])
    if require_mask and source.has_mlm_head and tokenizer.mask_token is None:
        raise UserError(f"The tokenizer of {source.label} has no mask token.")
    if require_mask and source.has_mlm_head and not positions:
        raise UserError(f"Input must include mask token {tokenizer.mask_token}.")
    if text != typed:
        notes.append(f"Note: reading [mask] as {tokenizer.mask_token}.")
    return Request(opened, text, encoding, positions, notes, segments)


def encode(text, tokenizer, source):
    """
    The tokenizer's encoding of `text` (NumPy, batch of 1), the segment id of each token
    (None unless a pair) and a note for the user (or None).

    "A [SEP] B" (one separator, text on both sides) is a sentence pair: tokenizer(A, B),
    whose token_type_ids are 0 for [CLS] A [SEP] and 1 for B [SEP], as BERT was trained on
    for next-sentence prediction. A model without segment embeddings (type_vocab_size 1)
    reads it as one sequence; so does any other text with separators in it.
    """
    separator = tokenizer.sep_token
    if separator and text.count(separator) == 1:
        first, second = (part.strip() for part in text.split(separator))
        if first and second:
            if source.config.get("type_vocab_size", 2) < 2:
                note = (f"Note: {source.label} has no segment embeddings, so the two sentences around "
                        f"{separator} are read as one sequence.")
                return tokenizer(text, return_tensors="np"), None, note
            encoding = tokenizer(first, second, return_tensors="np", return_token_type_ids=True)
            return encoding, [int(i) for i in encoding["token_type_ids"][0]], None
    return tokenizer(text, return_tensors="np"), None, None


@dataclass
class AttentionRun:
    """
    Everything one run shows. Numbers of layers and heads are 1-based wherever a
    method takes them, as in the file names.

    text          the text as the model read it
    model         the model's name as shown to the user
    tokens        the tokens as drawn (one label per row/column; words with words=True)
    attentions    (layers, heads, n, n) float32; row i = attending token, column j = attended-to
    predictions   one list of Candidates (token, token_id, probability, sentence) per mask,
                  most probable first; None for a model without a masked-LM head
    mask_positions  index into tokens of each mask
    patterns      pattern name -> (layers, heads) scores in [0, 1] (see patterns.py)
    notes         what the run has to tell the user (the CLI prints these on stderr)
    segments      for a sentence pair "A [SEP] B", the segment (0 or 1) of each token as drawn; else None
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
    segments: list = None

    @property
    def legible(self):
        """Short enough to draw head by head (longer texts get the overview only)."""
        return len(self.tokens) <= self.style.max_tokens

    def diagram(self, layer, head):
        """Attention_Layer{layer}_Head{head}.png as a PIL image (the same pixels as the file)."""
        pixels = diagrams.head_pixels(self.tokens, self.attentions[layer - 1, head - 1], self.style.font,
                                      self.style.grid_size, self.style.margin)
        return Image.fromarray(pixels, "L")

    def rollout(self):
        """
        Attention rollout (Abnar & Zuidema 2020) over all layers: (n, n) float32, row i = how much
        of token i's last-layer representation comes from each input token j (see patterns.attention_rollout).
        """
        return patterns.attention_rollout(self.attentions).astype(np.float32)

    def rollout_diagram(self):
        """Attention_Rollout.png as a PIL image: the rollout drawn like one head's diagram."""
        pixels = diagrams.head_pixels(self.tokens, self.rollout(), self.style.font, self.style.grid_size,
                                      self.style.margin)
        return Image.fromarray(pixels, "L")

    def overview(self):
        """Attention_Overview.png as a PIL image: every head at a glance."""
        return diagrams.overview_image(self.attentions, self.style.font.font_variant(size=20))

    def viewer_html(self):
        """attention.html as a string: the self-contained interactive viewer."""
        return viewer.render_viewer_html(**self._viewer_fields())

    def save(self, directory=".", *, html=True, rollout=False):
        """
        Write the files the command line writes into `directory` (created if
        missing): a diagram per head (when legible), with rollout the rollout's
        diagram (when legible), the overview and, with html, the viewer (with the
        rollout too when asked for). Returns what was written, for a "Wrote ..." line.
        """
        outputs.check_writable(directory)  # created if missing, as --output-dir is
        written = []
        if self.legible:
            # visualize_attentions takes the model's layout: one (batch=1, heads, n, n) array per layer
            self.style.visualize(self.tokens, self.attentions[:, None], directory)
            written.append(f"{self.attentions.shape[0] * self.attentions.shape[1]} diagrams")
            if rollout:
                diagrams.save_png(self.rollout_diagram(), os.path.join(directory, ROLLOUT_FILE))
                written.append(ROLLOUT_FILE)
        diagrams.save_png(self.overview(), os.path.join(directory, OVERVIEW_FILE))
        written.append(OVERVIEW_FILE)
        if html and self.legible:
            viewer.write_viewer(os.path.join(directory, VIEWER_FILE), **self._viewer_fields(rollout))
            written.append(VIEWER_FILE)
        return written

    def save_npz(self, path, *, rollout=False):
        """The run's numbers for later analysis (with rollout, the rollout too); numpy.load reads them, no pickle."""
        outputs.save_npz(path, self, rollout=self.rollout() if rollout else None)

    def _viewer_fields(self, rollout=False):
        groups = [
            {"mask_index": position, "candidates": [vars(candidate) for candidate in group]}
            for position, group in zip(self.mask_positions, self.predictions or [], strict=False)
        ]
        return dict(text=self.text, tokens=self.tokens, attentions=self.attentions,
                    predictions=groups if self.predictions is not None else None,
                    patterns=patterns.top_heads(self.patterns, count=5), model_name=self.model,
                    segments=self.segments, rollout=self.rollout() if rollout else None)


def viewer_available():
    """The viewer's template is a file of its own (assets/); a partial copy of the tool may lack it."""
    return viewer.TEMPLATE_PATH.exists()


def word_groups(encoding):
    """
    Token indices grouped into words by the tokenizer's own word boundaries
    (word_ids: works for WordPiece, BPE and SentencePiece alike); special tokens
    stand alone. Returns a list of index lists covering every token in order.
    """
    word_ids, sequence_ids = encoding.word_ids(0), encoding.sequence_ids(0)
    groups, previous = [], None
    for index, (word, sequence) in enumerate(zip(word_ids, sequence_ids, strict=True)):
        key = None if word is None else (sequence, word)
        if key is not None and key == previous:
            groups[-1].append(index)
        else:
            groups.append([index])
        previous = key
    return groups


def word_label(tokenizer, tokens):
    """One word's label from its tokens ("play", "##ing" -> "playing"), as the tokenizer joins them."""
    return tokens[0] if len(tokens) == 1 else tokenizer.convert_tokens_to_string(tokens).strip()


def normalize_mask(text, tokenizer):
    """Refuse empty or undecodable text; accept "[mask]" in any case for models whose mask token is "[MASK]"."""
    mask = tokenizer.mask_token
    if not text.strip():
        raise UserError(f"No text given: type a sentence containing {mask}.")
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # undecodable bytes in argv or stdin (surrogateescape)
        raise UserError("Text is not valid UTF-8: check the terminal's encoding.")
    if mask == "[MASK]":
        text = re.sub(r"\[mask\]", mask, text, flags=re.IGNORECASE)
    return text


def check_length(length, source):
    """A model has a fixed number of positions; longer text is refused, not cut silently."""
    limit = source.config.get("max_position_embeddings", 512)
    if length > limit:
        raise UserError(
            f"Text is too long: {length} tokens, and {source.label} reads at most {limit}. Shorten it."
        )


__all__ = ["AttentionRun", "Candidate", "Request", "Style", "UserError", "open_model", "prepare"]

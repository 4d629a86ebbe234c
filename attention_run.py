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

import base64
import functools
import html
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFont

import diagrams
import families
import model_loading
import model_source
import outputs
import patterns
import query_key
import timing
import viewer
from errors import UserError
from fill_ins import Candidate, fill_ins, mask_positions, next_words

# Names of the overview image, the rollout diagram (--rollout) and the viewer page a run writes
# (every output name: outputs.OUTPUT_NAMES)
OVERVIEW_FILE = outputs.OVERVIEW_FILE
ROLLOUT_FILE = outputs.ROLLOUT_FILE
VIEWER_FILE = outputs.VIEWER_FILE

# The most characters of text read from a pipe or file (16 Mi): far more than any model reads (see check_length)
MAX_TEXT_CHARS = 2**24

# Text longer than this many characters per position of the model is refused before it is tokenized.
# No bound in characters is exact: whitespace costs no token, and BERT reads any word longer than 100
# characters as a single [UNK], so a text of any length could in principle fit. But real text averages
# 3-6 characters a token (English about 4.5; URLs, numbers and rare words split into more, shorter
# tokens), so a text that averages 1,000 is padding or junk, and refusing it loses nothing a reader would
# miss. Tokenizing costs time and memory by the character whatever the count of tokens (a 20 MB line took
# 24 s and 3.4 GB to be refused), so the tokenizer never sees more than this: 512,000 characters for BERT,
# about half a second.
CHARS_PER_POSITION = 1000

# The most fill-in sentences a run builds (masks x K), and the most characters in them: each one is a
# copy of the whole text, printed, kept in the .npz (fixed-width UTF-32: 4 bytes a character, 80 MB at
# most) and, for a short text, in the viewer. 510 masks with K = 5000 used to end in a MemoryError.
MAX_FILL_INS = 100_000
MAX_FILL_IN_CHARS = 20_000_000

# Height of the viewer in a notebook (an iframe cannot size itself to a sandboxed page; it scrolls inside)
NOTEBOOK_VIEWER_HEIGHT = 900


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
        return model_loading.attention_function(self.network, "token_type_ids" in self.tokenizer.model_input_names)


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

    def load(self):
        """Load the model now (run() would): its failure then comes before any note is printed."""
        return self.model.network

    def run(self, *, top_k=3, words=False, style=None):
        """Run the model once and return the AttentionRun (words=True merges word pieces)."""
        top_k, notes = self.checked_top_k(top_k)  # before the model runs: a refusal is quick
        logits, attentions, hidden = model_loading.forward(self.model.network, self.encoding, hidden_states=True)
        # logits: (seq, vocab); attentions: (layers, heads, seq, seq); hidden: (layers + 1, seq, hidden)
        with timing.phase("fill-ins"):
            return self._results(logits, attentions, hidden, top_k, notes, words, style)

    def _results(self, logits, attentions, hidden, top_k, notes, words, style):
        """The run's predictions, tokens as drawn and pattern scores."""
        source, tokenizer = self.model.source, self.model.tokenizer
        predictions, notes = None, self.notes + notes
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
        segments = self.segments
        special = special_positions(tokenizer, self.encoding["input_ids"][0])
        # Queries and keys belong to tokens: a word-level run has none (its rows are merged pieces)
        query_keys = query_key.QueryKeySource(self.model.network, hidden)
        if words:
            groups = word_groups(tokenizer, self.encoding, self.text)
            raw = tokenizer.convert_ids_to_tokens([int(i) for i in self.encoding["input_ids"][0]])
            tokens = [tokens[group[0]] if len(group) == 1 else families.word_label(tokenizer, [raw[i] for i in group])
                      for group in groups]
            attentions = patterns.merge_words(groups, attentions)
            group_of = {i: w for w, group in enumerate(groups) for i in group}
            positions = [group_of[p] for p in positions]
            special = [group_of[i] for i in special if len(groups[group_of[i]]) == 1]  # special tokens stand alone
            query_keys = None
            if segments is not None:  # a word never spans the two sentences
                segments = [segments[group[0]] for group in groups]
        tokens = [diagrams.printable(token) for token in tokens]
        start, separator = families.special_roles(tokenizer, self.encoding, tokens)
        scores = patterns.pattern_scores(attentions, tokens, start, separator, segments)
        return AttentionRun(
            text=self.text, model=source.label, tokens=tokens, attentions=attentions.astype(np.float32),
            predictions=predictions, mask_positions=positions, patterns=scores, notes=notes,
            style=style, special_tokens=special if len(special) < len(tokens) else [], query_key_source=query_keys,
            segments=segments, causal=source.causal, special=(start, separator),
        )

    def checked_top_k(self, top_k):
        """
        (K, notes): the fill-ins per mask the run can give. At most the model's
        vocabulary (said in a note); refused (UserError) when masks x K sentences
        would pass MAX_FILL_INS or MAX_FILL_IN_CHARS. Nothing slow: call it first.
        """
        source, notes = self.model.source, []
        if not source.has_lm_head or not (self.mask_positions or source.causal):
            return top_k, notes
        vocabulary = source.config.get("vocab_size", 30522)  # the logits' width
        if top_k > vocabulary:
            notes.append(f"Note: {top_k:,} fill-ins per mask is more than the {vocabulary:,} tokens {source.label} "
                         f"knows; giving all {vocabulary:,}.")
            top_k = vocabulary
        masks, length = max(1, len(self.mask_positions)), len(self.text)  # a causal LM: one list of next words
        if masks * top_k > MAX_FILL_INS or masks * top_k * length > MAX_FILL_IN_CHARS:
            most = min(MAX_FILL_INS // masks, MAX_FILL_IN_CHARS // (masks * length))
            advice = f"Use -k {most} or less." if most else "Use fewer masks or a shorter text."
            raise UserError(
                f"Too many fill-ins: {masks} masks x {top_k:,} makes {masks * top_k:,} sentences of {length:,} "
                f"characters; a run builds at most {MAX_FILL_INS:,} sentences and {MAX_FILL_IN_CHARS:,} "
                f"characters of them. {advice}"
            )
        return top_k, notes


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
    check_characters(text, source)  # first: even scanning a huge text for its masks takes seconds
    text, typed = normalize_mask(text, tokenizer, source)
    notes = list(source.notes)
    try:
        encoding, segments, note = encode(text, tokenizer, source)
    except Exception as error:  # the tokenizers library's own errors (a broken vocabulary) are bare Exceptions
        raise UserError(f"The tokenizer of {source.label} can't read this text: "
                        f"{model_source.first_line(error)}") from None
    model_loading.check_ids(encoding, tokenizer, source)
    notes += [note] if note else []
    check_length(encoding["input_ids"].shape[1], source)
    positions = [] if source.causal else mask_positions(tokenizer.mask_token_id, encoding["input_ids"][0])
    fills_masks = require_mask and source.has_lm_head and not source.causal
    if fills_masks and tokenizer.mask_token is None:
        raise UserError(f"The tokenizer of {source.label} has no mask token.")
    if fills_masks and not positions:
        raise UserError(f"Input must include mask token {tokenizer.mask_token}.")
    if typed is not None:
        notes.append(f"Note: reading {typed} as {tokenizer.mask_token}.")
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


class QueryKey(NamedTuple):
    """One head's queries and keys (AttentionRun.query_key): softmax(queries @ keys.T / sqrt(d)) = its attention."""

    queries: np.ndarray  # (n, d) float32: row i = token i's query
    keys: np.ndarray  # (n, d) float32: row j = token j's key


@dataclass(repr=False)
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
    special_tokens  index into tokens of each of the model's special tokens ([CLS], [SEP]; not [MASK]):
                  what the viewer's "hide [CLS]/[SEP]" switch hides
    query_key_source  computes every head's queries and keys on first use (query_key.QueryKeySource);
                  None for a word-level run (its rows are merged pieces)
    segments      for a sentence pair "A [SEP] B", the segment (0 or 1) of each token as drawn; else None
    causal        True for a causal LM (each token sees only those before it)
    special       the labels the "cls" and "sep" patterns look for ([CLS]/[SEP], <s>/</s>;
                  None where the model has no such token)

    In a notebook the run shows itself as the interactive viewer; .query_key(layer, head)
    gives a head's queries and keys, .rollout() the attention rollout.
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
    special_tokens: list = field(default_factory=list)
    query_key_source: Callable = field(default=None, compare=False)
    segments: list = None
    causal: bool = False
    special: tuple = ("[CLS]", "[SEP]")

    @property
    def legible(self):
        """Short enough to draw head by head (longer texts get the overview only)."""
        return len(self.tokens) <= self.style.max_tokens

    def diagram(self, layer, head):
        """Attention_Layer{layer}_Head{head}.png as a PIL image (the same pixels as the file)."""
        self._check_head(layer, head)
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

    def query_key(self, layer, head):
        """
        One head's queries and keys for every token, from the model's own weights
        and hidden states: a QueryKey (queries, keys), each (n, d) float32, with
        softmax(queries @ keys.T / sqrt(d)) = self.attentions[layer - 1, head - 1].
        """
        self._check_head(layer, head)
        if self.query_key_source is None:
            raise UserError("Queries and keys belong to tokens, not merged words: run without words=True.")
        # everything: (layers, heads, 2, n, d), computed on the first call
        everything = self.query_key_source()
        return QueryKey(everything[layer - 1, head - 1, 0], everything[layer - 1, head - 1, 1])

    def viewer_html(self, rollout=False):
        """
        attention.html as a string: the self-contained interactive viewer (with
        rollout, its layer selector offers the attention rollout too). Its
        query/key panel gets every head's vectors (float32) when the page stays within
        viewer.SIZE_BUDGET_BYTES with them (the bundled model up to 46 tokens,
        bert-base up to 17); longer texts get the page without that panel. Not
        float16: it would move the bundled model's softmax by up to 8e-4, a wrong third
        decimal next to the page's exact values (see viewer.py).
        """
        fields = self._viewer_fields(rollout)
        page = viewer.render_viewer_html(**fields)
        if self.query_key_source is not None and self.query_key_source.supported:
            # base64 of the float32 numbers, plus the few characters of their JSON keys
            extra = 4 * -(-int(np.prod(self.query_key_source.shape)) * 4 // 3) + 100
            if len(page.encode("utf-8")) + extra <= viewer.SIZE_BUDGET_BYTES:
                page = viewer.render_viewer_html(**fields, query_key=self.query_key_source())
        return page

    def _repr_html_(self):
        """
        How a notebook (Jupyter, JupyterLab, VS Code, Colab, Kaggle) shows the run:
        the viewer page in a sandboxed <iframe srcdoc>, so its CSS and scripts cannot
        touch the notebook's and it needs no network. A text too long for the viewer
        shows the overview image instead.
        """
        if not self.legible or not viewer_available():
            note = (f"{len(self.tokens)} tokens are more than the {self.style.max_tokens} the viewer shows legibly; "
                    "the overview of every head:" if viewer_available() else "The viewer's template is missing; "
                    "the overview of every head:")
            image = base64.b64encode(diagrams.png_bytes(np.asarray(self.overview()))).decode("ascii")
            return f"<p>{html.escape(note)}</p><img alt=\"Attention overview\" src=\"data:image/png;base64,{image}\">"
        # srcdoc holds a whole page: html.escape turns its & < > " ' into entities, which the browser
        # turns back before parsing srcdoc, so no character of the page can end the attribute
        return (
            f'<iframe srcdoc="{html.escape(self.viewer_html(), quote=True)}" '
            'sandbox="allow-scripts allow-downloads" '
            f'title="{html.escape(f"Attention viewer: {self.model}", quote=True)}" '
            f'style="width: 100%; height: {NOTEBOOK_VIEWER_HEIGHT}px; border: 1px solid #ccc;"></iframe>'
        )

    def __repr__(self):
        """A few readable lines (the arrays' shapes, not their numbers)."""
        layers, heads, n, _ = self.attentions.shape
        shown = self.tokens if n <= 24 else self.tokens[:20] + ["...", *self.tokens[-2:]]
        lines = [
            f"AttentionRun(text={self.text!r}, model={self.model!r})",
            f"  tokens ({n}): {' '.join(shown)}",
            f"  attentions: {layers} layers x {heads} heads x {n} x {n} tokens, float32",
        ]
        for nth, group in enumerate(self.predictions or []):
            label = "next words" if self.causal else "fill-ins" if len(self.predictions) == 1 else (
                f"fill-ins, mask {nth + 1}")
            lines.append(f"  {label}: " + ", ".join(f"{c.token} ({c.probability:.3f})" for c in group))
        if self.predictions is None:
            lines.append("  no next words (the model has no language-model head)" if self.causal else
                         "  no fill-ins (the model has no masked-LM head)")
        lines.append("  .diagram(layer, head), .overview(), .query_key(layer, head), .save(directory)")
        return "\n".join(lines)

    def _check_head(self, layer, head):
        """Layers and heads are numbered from 1, as in the file names; refuse others (no wrap-around)."""
        layers, heads = self.attentions.shape[:2]
        for name, value, count in (("layer", layer, layers), ("head", head, heads)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= count:
                raise ValueError(f"{name} must be a whole number from 1 to {count}; got {value!r}")

    def save(self, directory=".", *, html=True, rollout=False, notify=None):
        """
        Write the files the command line writes into `directory` (created if
        missing): a diagram per head (when legible), with rollout the rollout's
        diagram (when legible), the overview and, with html, the viewer (with the
        rollout too when asked for). Returns what was written, for a "Wrote ..." line.

        Once they are all in place, the files an earlier run left there under the
        tool's own names (outputs.OUTPUT_NAMES) are removed, so the folder never
        mixes two runs; `notify` (default: print to stderr) is told in one line.
        A run that fails leaves the earlier files as they were.
        """
        outputs.check_writable(directory)  # created if missing, as --output-dir is
        written, names = [], {OVERVIEW_FILE}
        if self.legible:
            # visualize_attentions takes the model's layout: one (batch=1, heads, n, n) array per layer
            with timing.phase("diagrams"):
                self.style.visualize(self.tokens, self.attentions[:, None], directory)
            layers, heads = self.attentions.shape[:2]
            written.append(f"{layers * heads} diagrams")
            names |= {f"Attention_Layer{layer}_Head{head}.png"
                      for layer in range(1, layers + 1) for head in range(1, heads + 1)}
            if rollout:
                diagrams.save_png(self.rollout_diagram(), os.path.join(directory, ROLLOUT_FILE))
                written.append(ROLLOUT_FILE)
                names.add(ROLLOUT_FILE)
        with timing.phase("overview"):
            diagrams.save_png(self.overview(), os.path.join(directory, OVERVIEW_FILE))
        written.append(OVERVIEW_FILE)
        if html and self.legible:
            with timing.phase("viewer"), outputs.atomic_file(os.path.join(directory, VIEWER_FILE), "w") as file:
                file.write(self.viewer_html(rollout=rollout))
            written.append(VIEWER_FILE)
            names.add(VIEWER_FILE)
        removed = outputs.remove_earlier_outputs(directory, names)
        if removed:
            (notify or _print_to_stderr)(
                f"Removed an earlier run's {_describe(removed)} from {os.path.abspath(directory)}, "
                "so it holds this run's files only."
            )
        return written

    def save_npz(self, path, *, rollout=False):
        """The run's numbers for later analysis (with rollout, the rollout too); numpy.load reads them, no pickle."""
        outputs.save_npz(path, self, rollout=self.rollout() if rollout else None)

    def _viewer_fields(self, rollout=False):
        groups = [
            {"mask_index": position, "candidates": [vars(candidate) for candidate in group]}
            for position, group in zip(self.mask_positions, self.predictions or [], strict=False)
        ]
        fields = dict(text=self.text, tokens=self.tokens, attentions=self.attentions,
                      predictions=groups if self.predictions is not None else None,
                      patterns=patterns.top_heads(self.patterns, count=5), model_name=self.model,
                      special_tokens=self.special_tokens, segments=self.segments,
                      rollout=self.rollout() if rollout else None)
        if self.causal:  # the page shows "next word" candidates and masks keys after each query
            fields.update(prediction_kind="next", causal=True)
        return fields


def _describe(names):
    """Output file names in a few words: "8 diagrams and attention.html"."""
    diagram_count = sum(name.startswith("Attention_Layer") for name in names)
    parts = ([f"{diagram_count} diagram{'s' * (diagram_count != 1)}"] if diagram_count else []) + [
        name for name in names if not name.startswith("Attention_Layer")]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def _print_to_stderr(line):
    print(line, file=sys.stderr)


def viewer_available():
    """The viewer's template is a file of its own (assets/); a partial copy of the tool may lack it."""
    return viewer.TEMPLATE_PATH.exists()


def special_positions(tokenizer, ids):
    """
    Index of each of the model's special tokens in `ids` ([CLS], [SEP], padding,
    <s>, </s>; typed ones too), for the viewer's "hide [CLS]/[SEP]" switch. The mask
    and unknown tokens stand for words, so they stay visible.
    """
    keep = {tokenizer.mask_token_id, tokenizer.unk_token_id}
    special = set(tokenizer.all_special_ids) - keep
    return [index for index, token_id in enumerate(ids) if int(token_id) in special]


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


def check_characters(text, source):
    """Refuse text far longer than the model reads, by its characters, before tokenizing (CHARS_PER_POSITION)."""
    limit = source.config.get("max_position_embeddings", 512)
    if len(text) > limit * CHARS_PER_POSITION:
        raise UserError(
            f"Text is too long: {len(text):,} characters, far more than the {limit} tokens {source.label} reads "
            f"(at most {limit * CHARS_PER_POSITION:,} characters are read). Shorten it."
        )


def check_length(length, source):
    """A model has a fixed number of positions; longer text is refused, not cut silently."""
    limit = families.max_tokens(source.config)
    if length > limit:
        raise UserError(
            f"Text is too long: {length} tokens, and {source.label} reads at most {limit}. Shorten it."
        )


__all__ = ["AttentionRun", "Candidate", "QueryKey", "Request", "Style", "UserError", "open_model", "prepare"]

"""
Head-pattern scores, head measures, attention rollout and word-level attention,
from plain NumPy arrays.

Scores (each in [0, 1], computed per layer and head on one sentence; A is the
head's (n, n) attention matrix, row i = attending token, so each row sums to 1):

  previous     mean over i = 1..n-1 of A[i, i-1]: how much each token looks at the token before it
  next         mean over i = 0..n-2 of A[i, i+1]: ... at the token after it
  self         mean over i of A[i, i]: ... at itself
  cls          mean over i of A[i, [CLS]]: mass on the [CLS] token(s) (the special token that starts the
               sequence: RoBERTa's <s>, OPT's </s>; 0 for a model that adds none, as GPT-2)
  sep          mean over i of A[i, [SEP]]: mass on the [SEP] token(s) (often a "no-op" for BERT; RoBERTa's </s>)
  punctuation  mean over i of the mass on punctuation tokens (0 if the sentence has none)
  broad        mean over i of entropy(A[i]) / log(n): 1 = spread evenly, 0 = on one token
  block        1 - mean over i of the mass on tokens of the other segment: how much attention stays
               within the attending token's own segment (Kovaleva et al. 2019's "block" pattern).
               Segments are the tokenizer's segment ids (token_type_ids) of a sentence pair
               "A [SEP] B": [CLS], A and the first [SEP] are segment 0; B and the last [SEP] are 1.
               A single sentence is one segment, so its block score is exactly 1 for every head:
               the score only tells heads apart on sentence pairs.

These are the "mean attention mass on the target over the attending tokens" of
Clark et al. (2019), "What Does BERT Look At?".

Head measures (not in [0, 1]; per layer and head, mean over the attending tokens i):

  distance     sum over j of A[i, j] * |i - j|: how far, in tokens, a head looks on average
  entropy      -sum over j of A[i, j] * log A[i, j], in nats (broad is this over log(n))

Every function works on a batch of sentences padded to one length n_max (what a
batched forward pass gives: attentions (batch, layers, heads, n_max, n_max) and
each sentence's length); sentence b's scores are computed on its own (n_b, n_b)
block only (rows and columns past n_b are ignored), so they are the scores of
that sentence run alone. The one-sentence functions are the batch of one.
"""

import numpy as np

import families

# Pattern name -> one-line description, in the order they are reported
PATTERNS = {
    "previous": "attends to the previous token",
    "next": "attends to the next token",
    "self": "attends to itself",
    "cls": "attends to [CLS]",
    "sep": "attends to [SEP]",
    "punctuation": "attends to punctuation",
    "broad": "attends broadly (high entropy)",
    "block": "attends within its own segment",
}

# Head measures (see above) -> one-line description, with their units
MEASURES = {
    "distance": "mean attention distance (tokens)",
    "entropy": "attention entropy (nats)",
}


def pattern_scores(attentions, tokens, cls_token="[CLS]", sep_token="[SEP]", segments=None):
    """
    One sentence. attentions: (layers, heads, n, n); segments: n segment ids (None: one segment).
    cls_token, sep_token: the labels of the model's start and separator tokens (None: it has none).
    Returns {pattern: (layers, heads) float array in [0, 1]}.
    """
    attentions = np.asarray(attentions)
    n = attentions.shape[-1]
    scores = batch_pattern_scores(attentions[None], [n], [list(tokens)], cls_token, sep_token,
                                  None if segments is None else [segments])
    return {name: value[0] for name, value in scores.items()}


def batch_pattern_scores(attentions, lengths, tokens, cls_token="[CLS]", sep_token="[SEP]", segments=None):
    """
    A padded batch. attentions: (batch, layers, heads, n_max, n_max); lengths: (batch,) tokens of each
    sentence; tokens: one list of n_b tokens per sentence; segments: one list of n_b segment ids per
    sentence, or None (each sentence one segment).
    Returns {pattern: (batch, layers, heads) float64 in [0, 1]}, each sentence's own scores.
    """
    attentions, lengths, valid = _padded(attentions, lengths)
    n_max = attentions.shape[-1]

    def diagonal(offset):
        # element k of the diagonal is A[k - min(offset, 0), k + max(offset, 0)]: inside the sentence
        # when its larger index is; there are n_b - |offset| such rows
        values = np.diagonal(attentions, offset, axis1=-2, axis2=-1)  # (batch, layers, heads, n_max - |offset|)
        inside = np.arange(n_max - abs(offset))[None, :] + abs(offset) < lengths[:, None]
        count = np.maximum(lengths - abs(offset), 0)
        total = np.einsum("blhk,bk->blh", values, inside.astype(values.dtype))
        return np.divide(total, count[:, None, None], out=np.zeros_like(total), where=count[:, None, None] > 0)

    def columns(predicate):
        # (batch, n_max): 1.0 where token j of sentence b passes predicate (never past the sentence)
        marks = np.zeros((len(lengths), n_max))
        for b, sentence in enumerate(tokens):
            marks[b, : len(sentence)] = [predicate(token) for token in sentence]
        return marks

    def mass_on(marks):
        # Mean over the sentence's attending tokens of the attention summed over the marked columns
        return _row_mean(np.einsum("blhij,bj->blhi", attentions, marks), valid, lengths)

    entropy = _row_mean(_row_entropy(attentions), valid, lengths)
    logs = np.log(np.maximum(lengths, 2))[:, None, None]
    broad = np.where(lengths[:, None, None] > 1, entropy / logs, 0.0)

    # block: 1 - mass on the other segment's tokens (exactly 1 for a sentence that is one segment)
    segment_ids = np.zeros((len(lengths), n_max))
    if segments is not None:
        for b, ids in enumerate(segments):
            segment_ids[b, : len(ids)] = ids
    other = (segment_ids[:, :, None] != segment_ids[:, None, :]) & valid[:, None, :]  # (batch, i, j)
    crossing = _row_mean(np.einsum("blhij,bij->blhi", attentions, other.astype(attentions.dtype)), valid, lengths)

    scores = {
        "previous": diagonal(-1),
        "next": diagonal(1),
        "self": diagonal(0),
        "cls": mass_on(columns(lambda token: token == cls_token)),
        "sep": mass_on(columns(lambda token: token == sep_token)),
        "punctuation": mass_on(columns(is_punctuation)),
        "broad": broad,
        "block": 1.0 - crossing,
    }
    return {name: np.clip(value, 0.0, 1.0) for name, value in scores.items()}


def head_measures(attentions, lengths=None):
    """
    attentions: (batch, layers, heads, n_max, n_max) with lengths (batch,), or one sentence's
    (layers, heads, n, n) with lengths None. Returns {"distance": ..., "entropy": ...}, each
    (batch, layers, heads) float64 (or (layers, heads) for one sentence): see MEASURES.
    """
    single = lengths is None
    if single:
        attentions = np.asarray(attentions)[None]
        lengths = [attentions.shape[-1]]
    attentions, lengths, valid = _padded(attentions, lengths)
    n_max = attentions.shape[-1]
    positions = np.arange(n_max)
    far = np.abs(positions[:, None] - positions[None, :]).astype(attentions.dtype)  # (i, j): |i - j|
    measures = {
        "distance": _row_mean(np.einsum("blhij,ij->blhi", attentions, far), valid, lengths),
        "entropy": _row_mean(_row_entropy(attentions), valid, lengths),
    }
    return {name: value[0] for name, value in measures.items()} if single else measures


def attention_rollout(attentions):
    """
    Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"):
    per layer the mean over heads plus the identity for the residual path, 0.5 A + 0.5 I,
    rows renormalized to sum to 1, multiplied from the first layer up:
    rollout = A_L' ... A_2' A_1'. Row i says how much of token i's final representation
    flows, through every layer, from each input token j.

    attentions: (layers, heads, n, n). Returns (n, n) float64; every row sums to 1.
    """
    attentions = np.asarray(attentions, dtype=np.float64)
    n = attentions.shape[-1]
    identity = np.eye(n)
    rollout = identity
    for layer in attentions:  # (heads, n, n), first layer first
        mixed = 0.5 * layer.mean(axis=0) + 0.5 * identity
        mixed /= mixed.sum(axis=-1, keepdims=True)
        rollout = mixed @ rollout
    return rollout


def _padded(attentions, lengths):
    """The batch as float64 with every column past a sentence's length set to 0; lengths; (batch, n_max) valid."""
    attentions = np.asarray(attentions, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_max = attentions.shape[-1]
    valid = np.arange(n_max)[None, :] < lengths[:, None]  # (batch, n_max): token j is in sentence b
    if not valid.all():  # padded keys get ~0 attention from the model; make it exactly 0
        attentions = attentions * valid[:, None, None, None, :]
    return attentions, lengths, valid


def _row_mean(rows, valid, lengths):
    """rows: (batch, layers, heads, n_max), one value per attending token -> the mean over each sentence's rows."""
    total = np.einsum("blhi,bi->blh", rows, valid.astype(rows.dtype))
    return total / np.maximum(lengths, 1)[:, None, None]


def _row_entropy(attentions):
    """(..., n, n) -> (..., n): the entropy of each row, in nats (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(attentions > 0, attentions * np.log(attentions), 0.0)
    return -plogp.sum(axis=-1)


def top_heads(scores, count=3):
    """{pattern: [(layer, head, score), ...]} with 1-based numbers, strongest first."""
    best = {}
    for name, grid in scores.items():
        heads = grid.shape[1]
        order = np.argsort(-grid, axis=None, kind="stable")[:count]
        best[name] = [(int(i // heads) + 1, int(i % heads) + 1, float(grid.flat[i])) for i in order]
    return best


def format_top_heads(best, special=("[CLS]", "[SEP]"), title="Heads that most show each pattern (score 0-1):"):
    """
    Lines for the terminal: the title, then one line per pattern. special: the model's
    start and separator tokens as the "cls" and "sep" lines name them (RoBERTa: "<s>",
    "</s>"); a pattern whose token the model does not have (None) gets no line.
    """
    descriptions = dict(PATTERNS)
    for name, default, token in zip(("cls", "sep"), ("[CLS]", "[SEP]"), special, strict=True):
        if token is None:
            del descriptions[name]
        else:
            descriptions[name] = descriptions[name].replace(default, token)
    width = max(len(text) for text in descriptions.values())
    lines = [title]
    for name, description in descriptions.items():
        heads = "   ".join(f"Layer {layer}, Head {head}: {score:.2f}" for layer, head, score in best[name])
        lines.append(f"  {description:<{width}}  {heads}")
    return lines


def is_punctuation(token):
    """True for a token as drawn made only of punctuation characters ("." "," "##!" ...), in every family."""
    return families.is_punctuation(token)


def merge_words(groups, attentions):
    """
    Merge the tokens of each word into one row and column, as Clark et al. (2019)
    do: attention *to* a word = sum over its tokens, attention *from* a word =
    mean over its tokens, so every row still sums to 1.

    groups: the token indices of each word, in order, covering every token once.
    attentions: (..., n, n). Returns (..., w, w) float32 for w = len(groups).
    """
    n = np.asarray(attentions).shape[-1]
    membership = np.zeros((len(groups), n))
    for w, pieces in enumerate(groups):
        membership[w, pieces] = 1.0
    mean_rows = membership / membership.sum(axis=1, keepdims=True)
    merged = mean_rows @ np.asarray(attentions, dtype=np.float64) @ membership.T
    return merged.astype(np.float32)

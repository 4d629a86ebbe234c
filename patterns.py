"""
Head-pattern scores and word-level attention, from plain NumPy arrays.

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

These are the "mean attention mass on the target over the attending tokens" of
Clark et al. (2019), "What Does BERT Look At?".
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
}


def pattern_scores(attentions, tokens, cls_token="[CLS]", sep_token="[SEP]"):
    """
    attentions: (layers, heads, n, n). Returns {pattern: (layers, heads) float array in [0, 1]}.
    cls_token, sep_token: the labels of the model's start and separator tokens (None: it has none).
    """
    attentions = np.asarray(attentions, dtype=np.float64)
    n = attentions.shape[-1]
    rows = np.arange(n)

    def mass_on(columns):
        # Mean over attending tokens of the attention summed over the target columns
        if not np.any(columns):
            return np.zeros(attentions.shape[:2])
        return attentions[..., columns].sum(axis=-1).mean(axis=-1)

    def diagonal(offset):
        if n <= abs(offset):
            return np.zeros(attentions.shape[:2])
        i = rows[max(0, -offset): n - max(0, offset)]
        return attentions[..., i, i + offset].mean(axis=-1)

    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(attentions > 0, attentions * np.log(attentions), 0.0)
    entropy = -plogp.sum(axis=-1).mean(axis=-1)
    broad = entropy / np.log(n) if n > 1 else np.zeros(attentions.shape[:2])

    tokens = list(tokens)
    scores = {
        "previous": diagonal(-1),
        "next": diagonal(1),
        "self": diagonal(0),
        "cls": mass_on(np.array([t == cls_token for t in tokens])),
        "sep": mass_on(np.array([t == sep_token for t in tokens])),
        "punctuation": mass_on(np.array([is_punctuation(t) for t in tokens])),
        "broad": broad,
    }
    return {name: np.clip(value, 0.0, 1.0) for name, value in scores.items()}


def top_heads(scores, count=3):
    """{pattern: [(layer, head, score), ...]} with 1-based numbers, strongest first."""
    best = {}
    for name, grid in scores.items():
        heads = grid.shape[1]
        order = np.argsort(-grid, axis=None, kind="stable")[:count]
        best[name] = [(int(i // heads) + 1, int(i % heads) + 1, float(grid.flat[i])) for i in order]
    return best


def format_top_heads(best, special=("[CLS]", "[SEP]")):
    """
    Lines for the terminal, one per pattern. special: the model's start and separator
    tokens as the "cls" and "sep" lines name them (RoBERTa: "<s>", "</s>"); a pattern
    whose token the model does not have (None) gets no line.
    """
    descriptions = dict(PATTERNS)
    for name, default, token in zip(("cls", "sep"), ("[CLS]", "[SEP]"), special, strict=True):
        if token is None:
            del descriptions[name]
        else:
            descriptions[name] = descriptions[name].replace(default, token)
    width = max(len(text) for text in descriptions.values())
    lines = ["Heads that most show each pattern (score 0-1):"]
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

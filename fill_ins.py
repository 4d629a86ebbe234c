"""
Turning a masked LM's logits into fill-ins: the top-K words for each mask, each
as the full sentence CS50 prints, with its probability. NumPy only.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One fill-in: the word, its vocabulary id, its probability and the sentence it makes."""

    token: str
    token_id: int
    probability: float
    sentence: str


def fill_ins(tokenizer, text, logits, mask_positions, k):
    """
    The top-k predictions for each mask, each predicted on its own with the other
    masks left in place (one forward pass gives them all).

    logits: (seq, vocab); mask_positions: token index of each mask, in order.
    Returns one list of k Candidates per mask, most probable first.
    """
    groups = []
    for nth, position in enumerate(mask_positions):
        row = logits[position].astype(np.float64)
        probabilities = np.exp(row - row.max())
        probabilities /= probabilities.sum()
        # Stable sort: equal logits keep vocabulary order, as tf.math.top_k does
        top = np.argsort(-row, kind="stable")[:k]
        group = []
        for token_id in top:
            word = tokenizer.decode([int(token_id)])
            sentence = replace_nth(text, tokenizer.mask_token, nth, word)
            group.append(Candidate(word, int(token_id), float(probabilities[token_id]), sentence))
        groups.append(group)
    return groups


def replace_nth(text, needle, nth, replacement):
    """`text` with its nth (0-based) occurrence of `needle` replaced."""
    start = -1
    for _ in range(nth + 1):
        start = text.find(needle, start + 1)
    return text[:start] + replacement + text[start + len(needle):]


def mask_positions(mask_token_id, ids):
    """
    Every position of mask_token_id in one sequence of token ids, in order, as
    Python ints; `ids` may be a TensorFlow tensor, a NumPy array or a list.
    """
    if hasattr(ids, "numpy"):  # a TensorFlow tensor
        ids = ids.numpy()
    if hasattr(ids, "tolist"):  # a NumPy array
        ids = ids.tolist()
    return [i for i, token_id in enumerate(ids) if int(token_id) == mask_token_id]

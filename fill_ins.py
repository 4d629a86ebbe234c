"""
Turning a language model's logits into what the tool prints: a masked LM's top-K
words for each mask, each as the full sentence CS50 prints, and a causal LM's top-K
next words, each as the prompt followed by the word; with their probabilities.
How a token is shown and joins the text is the family's (families.py). NumPy only.
"""

from dataclasses import dataclass

import numpy as np

import families


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
        top, probabilities = _top(logits[position], k)
        groups.append([
            Candidate(families.candidate_label(tokenizer, token_id), int(token_id), float(probabilities[token_id]),
                      families.fill_sentence(tokenizer, text, nth, token_id))
            for token_id in top
        ])
    return groups


def next_words(tokenizer, text, logits, k):
    """
    A causal LM's k most likely next tokens after `text`, most probable first, each
    as a Candidate whose sentence is the prompt followed by the token.

    logits: (vocab,), the next-token logits at the last position.
    """
    top, probabilities = _top(logits, k)
    return [Candidate(families.candidate_label(tokenizer, token_id), int(token_id), float(probabilities[token_id]),
                      families.next_sentence(tokenizer, text, token_id))
            for token_id in top]


def _top(row, k):
    """The k highest of one row of logits (vocab,) and the softmax probabilities of the whole row."""
    row = row.astype(np.float64)
    probabilities = np.exp(row - row.max())
    probabilities /= probabilities.sum()
    # Stable sort: equal logits keep vocabulary order, as tf.math.top_k does
    return np.argsort(-row, kind="stable")[:k], probabilities


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

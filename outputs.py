"""
Files a run writes, written safely, and the saved-data format (--save FILE.npz).

Every output goes to a temporary name in its own directory and is renamed into
place only when complete, so an interrupted run or a full disk never leaves a
truncated file under the real name, and an older file survives until the new one
is whole.
"""

import contextlib
import os
import tempfile

import numpy as np


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Open a temporary file next to `path`; on success rename it to `path`, on failure remove it."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".part")
    except OSError as error:  # missing, read-only or full directory: name it, not our temporary name
        if error.errno is not None:
            error.filename = directory
        raise
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"})) as file:
            yield file
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual mode
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and error.errno is not None and error.filename in (None, temporary):
            error.filename, error.filename2 = path, None  # disk full while writing: name the user's file
        raise


def save_npz(path, *, text, model, tokens, attentions, predictions, patterns):
    """
    Save a run for later analysis; numpy.load(path) reads it back without pickle.

    Arrays (n = tokens, m = masks, k = fill-ins per mask, P = patterns):
      text, model               0-d str
      tokens                    (n,) str
      attentions                (layers, heads, n, n) float32
      mask_positions            (m,) int64, token index of each mask
      pred_token_ids            (m, k) int64
      pred_tokens, pred_sentences (m, k) str
      pred_probabilities        (m, k) float32
      pattern_names             (P,) str
      pattern_scores            (P, layers, heads) float32, see patterns.py
    """
    groups = predictions or []
    k = len(groups[0]["candidates"]) if groups else 0
    field = lambda name: [[c[name] for c in g["candidates"]] for g in groups]  # noqa: E731
    names = list(patterns or {})
    layers, heads = attentions.shape[:2]
    arrays = {
        "text": np.array(text, dtype=str),
        "model": np.array(model, dtype=str),
        "tokens": np.array(tokens, dtype=str).reshape(len(tokens)),
        "attentions": np.asarray(attentions, dtype=np.float32),
        "mask_positions": np.array([g["mask_index"] for g in groups], dtype=np.int64),
        "pred_token_ids": np.array(field("token_id"), dtype=np.int64).reshape(len(groups), k),
        "pred_tokens": np.array(field("token"), dtype=str).reshape(len(groups), k),
        "pred_sentences": np.array(field("sentence"), dtype=str).reshape(len(groups), k),
        "pred_probabilities": np.array(field("probability"), dtype=np.float32).reshape(len(groups), k),
        "pattern_names": np.array(names, dtype=str).reshape(len(names)),
        "pattern_scores": np.array([patterns[name] for name in names], dtype=np.float32).reshape(
            len(names), layers, heads
        ),
    }
    with atomic_file(path) as file:
        np.savez_compressed(file, **arrays)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

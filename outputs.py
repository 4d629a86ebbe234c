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

from errors import WriteError


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Open a temporary file next to `path`; on success rename it to `path`, on failure remove it."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = _temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": "\n"})) as file:
            yield file
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; outputs get the usual mode
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError):  # disk full, read-only: name the user's file, not our temporary one
            raise WriteError(path, error.strerror or error) from None
        raise


def check_writable(directory):
    """Create `directory` if needed and make sure files can be created there, before any slow work."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise WriteError(error.filename or directory, error.strerror or error) from None
    handle, probe = _temporary(directory, ".attention-write-test")  # unique: concurrent runs never collide
    os.close(handle)
    os.remove(probe)


def _temporary(directory, name):
    """A new temporary file for `name` in `directory`: (descriptor, path); errors name the directory."""
    try:
        # The name is shortened so a legal long file name never gives an illegal temporary one
        return tempfile.mkstemp(dir=directory, prefix="." + name[:100] + ".", suffix=".part")
    except OSError as error:  # missing, read-only or full directory: name it, not our temporary name
        raise WriteError(directory, error.strerror or error) from None


def save_npz(path, run, rollout=None):
    """
    Save a run (attention_run.AttentionRun) for later analysis; numpy.load(path)
    reads it back without pickle. rollout: the run's (n, n) rollout, saved when given.

    Arrays (n = tokens as drawn, m = masks, k = fill-ins per mask, P = patterns):
      text, model               0-d str
      tokens                    (n,) str
      attentions                (layers, heads, n, n) float32
      mask_positions            (m,) int64, index into tokens of each mask
      pred_token_ids            (m, k) int64
      pred_tokens, pred_sentences (m, k) str
      pred_probabilities        (m, k) float32
      pattern_names             (P,) str
      pattern_scores            (P, layers, heads) float32, see patterns.py
      segments                  (n,) int64, each token's segment: 0 and 1 in a sentence pair, else all 0
      rollout                   (n, n) float32, attention rollout (only when asked for: --rollout)
    """
    groups = run.predictions or []
    k = len(groups[0]) if groups else 0
    field = lambda name: [[getattr(c, name) for c in group] for group in groups]  # noqa: E731
    names = list(run.patterns)
    layers, heads = run.attentions.shape[:2]
    arrays = {
        "text": np.array(run.text, dtype=str),
        "model": np.array(run.model, dtype=str),
        "tokens": np.array(run.tokens, dtype=str).reshape(len(run.tokens)),
        "attentions": np.asarray(run.attentions, dtype=np.float32),
        "mask_positions": np.array(run.mask_positions if groups else [], dtype=np.int64),
        "pred_token_ids": np.array(field("token_id"), dtype=np.int64).reshape(len(groups), k),
        "pred_tokens": np.array(field("token"), dtype=str).reshape(len(groups), k),
        "pred_sentences": np.array(field("sentence"), dtype=str).reshape(len(groups), k),
        "pred_probabilities": np.array(field("probability"), dtype=np.float32).reshape(len(groups), k),
        "pattern_names": np.array(names, dtype=str).reshape(len(names)),
        "pattern_scores": np.array([run.patterns[name] for name in names], dtype=np.float32).reshape(
            len(names), layers, heads
        ),
        "segments": np.array(run.segments if run.segments is not None else [0] * len(run.tokens), dtype=np.int64),
    }
    if rollout is not None:
        arrays["rollout"] = np.asarray(rollout, dtype=np.float32)
    with atomic_file(path) as file:
        np.savez_compressed(file, **arrays)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask

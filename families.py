"""
Model families: what the tool knows about each kind of checkpoint, in one place.

A checkpoint's config.json names its family (model_type). This module says, from
that and from the checkpoint's own tokenizer:

- which TensorFlow class reads it (`model_class`): the family's masked-LM class
  (BERT, RoBERTa, ...: fill in a mask) or causal-LM class (GPT-2, ...: predict the
  next word), as transformers' TF auto mappings give them; anything else is refused
  in one line, and a config is checked before anything slow happens (`check_config`);
- how long a text it reads (`max_tokens`) and whether a checkpoint holds its
  language-model head (`HEAD_WEIGHTS`, `TIED_OUTPUT`);
- how its tokens are shown (`token_labels`, `word_label`, `candidate_label`): BERT's
  WordPiece tokens as they are ("play", "##ing"); every other tokenizer's pieces as
  their text, with "##" in front of a piece that continues a word (so RoBERTa's
  "Ġplay" "ing" read "play" "##ing", never with a raw Ġ or ▁);
- how a predicted token joins the text (`fill_sentence`, `next_sentence`).

Nothing here imports TensorFlow.
"""

import codecs
import os
import re
import unicodedata

import timing
from errors import UserError

MASKED, CAUSAL = "masked", "causal"

# Families the tests check end to end on tiny checkpoints of their own (tests/test_families.py);
# other model types with a TF masked-LM or causal-LM class are read the same way, untested
TESTED_MASKED = ("bert", "distilbert", "roberta", "albert", "electra", "xlm-roberta", "camembert", "deberta-v2",
                 "mpnet", "mobilebert")
TESTED_CAUSAL = ("gpt2", "opt", "xglm", "gptj", "mistral")

# How the weights of a language-model head start: PyTorch names in model.safetensors (BERT's
# "cls.predictions.", RoBERTa's "lm_head.", ALBERT's "predictions.", ELECTRA's generator, DistilBERT's
# "vocab_*", XLM's "pred_layer.", XLNet's "lm_loss.") and top-level layer names in tf_model.h5.
# A checkpoint without them (BertModel, a sentence encoder, a classifier) is drawn without predictions.
HEAD_WEIGHTS = ("cls.predictions.", "lm_head.", "predictions.", "generator_predictions.", "generator_lm_head.",
                "vocab_transform.", "vocab_projector.", "vocab_layer_norm.", "pred_layer.", "lm_loss.")
HEAD_LAYERS = ("mlm___cls", "cls", "predictions___cls", "predictions", "lm_head", "generator_predictions",
               "generator_lm_head", "vocab_transform", "vocab_projector", "vocab_layer_norm", "pred_layer", "lm_loss")

# Causal families whose output layer is the input embedding matrix: a base-only checkpoint
# (GPT2Model) is a whole language model
TIED_OUTPUT = ("gpt2", "gpt-sw3", "opt", "xglm", "openai-gpt")

# TF variables (by PyTorch name) that PyTorch ties to another weight and leaves out of model.safetensors;
# these families' TF classes keep them as variables of their own, so they are read from the weight they
# are tied to (only in these families: Mistral's lm_head, say, is a weight of its own)
TIED_WEIGHTS = {
    "albert": {"predictions.decoder.bias": "predictions.bias"},
    "mobilebert": {"cls.predictions.decoder.weight": "mobilebert.embeddings.word_embeddings.weight"},
    "xglm": {"lm_head.weight": "model.embed_tokens.weight"},
}

# Families whose positions start after the padding index (RoBERTa's layout): 514 rows read 512 tokens
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet", "roberta-prelayernorm", "longformer", "esm")

# Sizes a config.json must give as positive whole numbers, when it gives them (under the family's own
# names: DistilBERT's n_layers, GPT-2's n_head ... via the config class's attribute_map)
CONFIG_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size")

# Config keys that name an activation function: transformers looks a string up in its table (an unknown
# name fails when the model is built), but calls anything else as a function, mid-forward-pass (5 -> traceback)
ACTIVATION_KEYS = ("hidden_act", "activation", "activation_function", "pooler_hidden_act", "conv_act")

# Config keys that are dropout probabilities (hidden_dropout_prob, attn_pdrop, attention_dropout ...):
# Keras refuses a rate over 1 only when the model is built, seconds later
DROPOUT_KEYS = ("dropout", "dropout_prob", "pdrop", "dropout_rate")

# How each family's layer stack is named, in PyTorch names ("bert.encoder.layer.3.", "transformer.h.3.",
# "model.layers.3.") and TF/h5 names ("layer_._3/", "h_._3/", "layers.3/"): group 1 is the layer's index.
# ALBERT shares its layers: its weights hold num_hidden_groups groups ("albert_layer_groups.0.").
LAYER_INDEX = re.compile(r"(?:^|[./])(?:layer|layers|h|albert_layer_groups)(?:_\._|\.)(\d+)[./]")
LAYER_COUNT = {"albert": "num_hidden_groups"}

# The word-embedding matrix, (vocab_size, embedding width), in every tested family: BERT-like
# "word_embeddings", GPT-2/GPT-J "wte", OPT/XGLM/Mistral "embed_tokens"
WORD_EMBEDDINGS = re.compile(r"(?:^|[./])(?:word_embeddings|wte|embed_tokens)[./]")

# Families whose TF class builds a (positions x positions) table at construction, with no weight on disk to
# check the config against: TFGPTJAttention keeps an int8 causal mask of n_positions**2 bytes per layer (and
# makes a float32 one 4x that size first). Real GPT-J checkpoints have 2048; 4096 keeps it at 16 MB a layer.
MAX_BUILT_POSITIONS = {"gptj": 4096}

# Sequence-to-sequence families (no attention matrix of one text over itself to draw)
_SEQ2SEQ = ("t5", "mt5", "umt5", "bart", "mbart", "marian", "pegasus", "led", "blenderbot", "blenderbot-small",
            "encoder-decoder", "prophetnet", "fsmt", "m2m_100", "nllb-moe", "longt5", "switch_transformers")


def transformers_environment():
    """
    Set transformers' and TensorFlow's switches before transformers is first imported
    (anywhere: this module reads its model mappings, model_loading its classes). Where
    torch is installed too (Colab, Kaggle, many laptops) transformers would import it,
    seconds and hundreds of MB for nothing: USE_TF/USE_TORCH make it use TensorFlow only.
    Also: no oneDNN / CUDA / CPU-feature lines, Keras 2 (tf-keras) for transformers' TF
    models, no advisory warnings.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ["USE_TF"], os.environ["USE_TORCH"] = "1", "0"


def model_class(config):
    """
    (TF class name, MASKED or CAUSAL) for a config dict, or a one-line UserError.

    Families that have both (BERT, RoBERTa, XLM-R ...) read a checkpoint with their
    masked-LM class, unless the config says it is a decoder (is_decoder, or its
    architectures name the causal class).
    """
    transformers_environment()
    with timing.phase("imports"):
        from transformers.models.auto import modeling_tf_auto as auto

    model_type = config.get("model_type")
    masked = auto.TF_MODEL_FOR_MASKED_LM_MAPPING_NAMES.get(model_type)
    causal = auto.TF_MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    architectures = config.get("architectures") or []
    decoder = bool(config.get("is_decoder")) or (
        causal is not None and causal != masked and isinstance(architectures, list) and causal[2:] in architectures)
    if causal and (masked is None or decoder):
        return causal, CAUSAL
    if masked:
        return masked, MASKED
    if model_type in _SEQ2SEQ or model_type in auto.TF_MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        what = "an encoder-decoder (sequence-to-sequence) model"
    elif model_type in auto.TF_MODEL_MAPPING_NAMES:
        what = "a model with no TensorFlow masked-LM or causal-LM class in transformers"
    else:
        what = "a model with no TensorFlow class in transformers"
    shown = model_type if isinstance(model_type, str) and model_type.isprintable() else repr(model_type)[:40]
    raise UserError(f"model_type {shown} is {what}; this tool reads masked language models (BERT, RoBERTa ...) "
                    "and causal ones (GPT-2 ...).")  # (a control character or line break is shown escaped)


def check_config(config, path, label):
    """
    Refuse, in one line, a config.json this tool cannot use: not a dict, no model_type,
    a family with no TF masked-LM or causal-LM class, or sizes that are not positive
    whole numbers (a hostile or broken config must fail here, not deep inside TensorFlow).
    Returns (TF class name, kind).
    """
    if not isinstance(config, dict):
        raise UserError(f"{label} is not a model this tool can read: its config.json is not a JSON object.")
    model_type = config.get("model_type")
    if not model_type or not isinstance(model_type, str):
        raise UserError(f"{label} is not a model this tool can read: its config.json has no model_type.")
    try:
        class_name, kind = model_class(config)
    except UserError as error:
        raise UserError(f"{label} can't be used: {error}") from None
    names = _attribute_map(model_type)
    for key in CONFIG_SIZES:
        least = 0 if key == "type_vocab_size" else 1  # DeBERTa-v3 has no token types (type_vocab_size 0)
        key = names.get(key, key)
        value = config.get(key, 1)
        if type(value) is not int or value < least:
            raise UserError(f"{path} is not a usable {model_type} config: {key} is {repr(value)[:40]}, "
                            f"not a {'positive ' if least else ''}whole number.")
    hidden_key, heads_key = names.get("hidden_size", "hidden_size"), names.get("num_attention_heads",
                                                                                "num_attention_heads")
    if hidden_key in config and heads_key in config and "head_dim" not in config:
        if config[hidden_key] % config[heads_key]:
            raise UserError(f"{path} is not a usable {model_type} config: {hidden_key} {config[hidden_key]} is not "
                            f"a multiple of {heads_key} {config[heads_key]}.")
    for key in ACTIVATION_KEYS:
        if key in config and config[key] is not None and not isinstance(config[key], str):
            raise UserError(f"{path} is not a usable {model_type} config: {key} is {repr(config[key])[:40]}, "
                            "not the name of an activation function.")
    for key, value in config.items():
        if key.endswith(DROPOUT_KEYS) and value is not None and not isinstance(value, bool) and (
                type(value) not in (int, float) or not 0 <= value <= 1):  # (ESM's token_dropout is a switch)
            raise UserError(f"{path} is not a usable {model_type} config: {key} is {repr(value)[:40]}, not a "
                            "probability (0 to 1).")
    built = config_object(config, label)  # transformers' own checks (id2label, problem_type ...), no TensorFlow
    positions, most = getattr(built, "max_position_embeddings", None), MAX_BUILT_POSITIONS.get(model_type)
    if most is not None and isinstance(positions, int) and positions > most:
        key = names.get("max_position_embeddings", "max_position_embeddings")
        raise UserError(f"{path} is not a usable {model_type} config: {key} is {positions:,}; this tool reads "
                        f"{model_type} models of at most {most:,} (its TensorFlow class builds a {key} x {key} "
                        "table in every layer).")
    return class_name, kind


def config_object(config, label):
    """
    transformers' config object of the family, built from the config dict (no TensorFlow,
    milliseconds): its attributes read every family's sizes under the standard names
    (GPT-2's n_layer as num_hidden_layers ...). What its constructor rejects (id2label
    that is not a dict, an unknown problem_type ...) is a one-line UserError naming config.json.
    """
    transformers_environment()
    with timing.phase("imports"):
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        from transformers.utils import logging

    logging.set_verbosity_error()  # its warnings would be lines of their own on stderr
    try:
        return CONFIG_MAPPING[config["model_type"]].from_dict(config)
    except Exception as error:  # ValueError, TypeError, KeyError ... from any family's __init__
        text = str(error).strip().splitlines()
        raise UserError(f"config.json of {label} can't be used: {text[0] if text else type(error).__name__}") from None


def check_weights_fit(config, shapes, where, label):
    """
    Refuse, before any model is built, a config whose sizes the weights on disk don't have:
    `shapes` maps each stored weight's name (PyTorch names from safetensors headers, or h5
    dataset paths) to its shape; `where` names the file ("model.safetensors"). Checks the
    number of layers (distinct indices in the layer stack's names) and the word-embedding
    matrix's rows and width against vocab_size and the embedding width. A config with
    100,000 layers over a 2-layer checkpoint would otherwise build 100,000 layers (GBs,
    minutes) before anything compares them. Names this does not recognise are not checked
    (the build still checks every weight's shape before reading it).
    """
    model_type = config["model_type"]
    built = config_object(config, label)
    names = _attribute_map(model_type)
    count_key = LAYER_COUNT.get(model_type, "num_hidden_layers")
    indices = {int(match.group(1)) for name in shapes if (match := LAYER_INDEX.search(name))}
    declared = getattr(built, count_key, None)
    if indices and isinstance(declared, int) and declared != len(indices):
        key = names.get(count_key, count_key)
        raise UserError(f"config.json of {label} says {declared:,} layers ({key}); {where} holds "
                        f"{len(indices):,}.")
    width = getattr(built, "embedding_size", None) or getattr(built, "word_embed_proj_dim", None) or getattr(
        built, "hidden_size", None)
    for name, shape in shapes.items():
        if not WORD_EMBEDDINGS.search(name) or len(shape) != 2:
            continue
        vocab = getattr(built, "vocab_size", None)
        if isinstance(vocab, int) and shape[0] != vocab:
            raise UserError(f"config.json of {label} says vocab_size {vocab:,}; the word embeddings in {where} "
                            f"have {shape[0]:,} rows.")
        if isinstance(width, int) and shape[1] != width:
            raise UserError(f"config.json of {label} says the embeddings are {width:,} wide; those in {where} "
                            f"are {shape[1]:,}.")


def _attribute_map(model_type):
    """The family's names for the standard config keys (GPT-2: n_head for num_attention_heads ...)."""
    transformers_environment()
    with timing.phase("imports"):
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        return dict(CONFIG_MAPPING[model_type].attribute_map)
    except KeyError:
        return {}


def max_tokens(config):
    """
    The longest text (special tokens included) the model reads: its position table,
    less the padding offset of RoBERTa-like families, and no more than Mistral's
    sliding window (TensorFlow's Mistral ignores the window, so past it the attentions
    would not be the model's). DeBERTa-v2 and Mistral would run past their limit
    without an error: this is the tool's own limit for them.
    """
    model_type = config.get("model_type")
    positions = config.get("max_position_embeddings") or config.get("n_positions") or 512
    if model_type in OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) else 1) + 1
    window = config.get("sliding_window")
    if model_type == "mistral" and isinstance(window, int) and window > 0:
        positions = min(positions, window)
    return positions


def has_head(model_type, kind, weight_names):
    """True when a checkpoint's weight names (PyTorch names or h5 layer names) include a language-model head."""
    if kind == CAUSAL and model_type in TIED_OUTPUT:
        return True
    return any(is_head_weight(name) for name in weight_names)


def is_head_weight(name):
    """True for a weight of a language-model head: a PyTorch name ("lm_head.bias") or a TF one ("mlm___cls/...")."""
    return name.startswith(HEAD_WEIGHTS) or name.split("/")[0] in HEAD_LAYERS


# ---------------------------------------------------------------------------------------------------------------
# Masks


def read_mask(text, tokenizer, kind, label):
    """
    The text as the model reads it, and the spelling the user typed for the mask if it
    was changed (else None). A masked LM reads "[mask]" in any case (and "[MASK]"
    when its own mask is "<mask>", as RoBERTa's) as its own mask token; a causal LM
    has no mask, and a mask typed for one is refused with a line that says why.
    """
    typed = re.search(r"\[mask\]|<mask>", text, flags=re.IGNORECASE)
    if kind == CAUSAL:
        if typed:
            raise UserError(f"{label} is a causal language model: it predicts the next word, so give it the "
                            f"beginning of a sentence, without {typed.group(0)}.")
        return text, None
    mask = tokenizer.mask_token
    if mask not in ("[MASK]", "<mask>"):  # a model with a mask of its own ("[MSK]") gets exactly that
        return text, None
    # "[mask]" in any case is the model's mask; for "<mask>" models (RoBERTa, XLM-R) "[MASK]" is too
    read = re.sub(r"\[mask\]", lambda _: mask, text, flags=re.IGNORECASE)
    if read == text:
        return text, None
    first = re.search(r"\[mask\]", text, flags=re.IGNORECASE).group(0)
    return read, "[mask]" if mask == "[MASK]" else first


# ---------------------------------------------------------------------------------------------------------------
# Tokens as shown


def is_wordpiece(tokenizer):
    """BERT-style WordPiece tokens ("##ing") are shown as they are, as CS50's project shows them."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.model).__name__ == "WordPiece"


def word_ids(tokenizer, encoding, text):
    """
    The word index of each token (None for special tokens added around the text), by
    the tokenizer's own word boundaries (word_ids). Llama/Mistral tokenizers have no
    pre-tokenizer, so for them the whole text is "word 0": there a new word starts at
    each token whose characters (offsets) begin with whitespace.
    """
    ids = encoding.word_ids(0)
    if tokenizer.backend_tokenizer.pre_tokenizer is not None or not any(ch.isspace() for ch in text.strip()):
        return ids
    groups, index, previous_blank = [], -1, False
    for word, (start, end) in zip(ids, encoding.encodings[0].offsets, strict=True):
        if word is None:
            groups.append(None)
            continue
        piece = text[start:end]  # Llama's offsets include the space a "▁" stands for
        if index < 0 or (piece[:1].isspace() and not previous_blank):
            index += 1
        groups.append(index)
        previous_blank = piece.strip() == ""
    return groups


def token_labels(tokenizer, encoding, text):
    """
    One label per token of `encoding` (batch of 1), for diagrams, the viewer and --save:
    WordPiece tokens as they are; other tokenizers' pieces as their text, "##" in front of
    a piece that continues a word ("##ingly"), special tokens as they are ("<s>").
    """
    ids = [int(i) for i in encoding["input_ids"][0]]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    if is_wordpiece(tokenizer):
        return tokens
    words = word_ids(tokenizer, encoding, text)
    special = set(tokenizer.all_special_ids)
    labels, previous = [], None  # previous: the text of the token before (None after a special token)
    for i, (token_id, token, word) in enumerate(zip(ids, tokens, words, strict=True)):
        if token_id in special or word is None:
            labels.append(token)
            previous = None
            continue
        text = piece_text(tokenizer, token)
        # a piece continues a word when a piece of the same word with some text comes before it
        # (a lone SentencePiece "▁" before it is the word's space, not its start)
        continues = previous is not None and words[i - 1] == word and previous.strip() != ""
        labels.append(_label(text, continues))
        previous = text
    return labels


def word_label(tokenizer, tokens):
    """One word's label from its tokens ("play", "##ing" -> "playing"; "Ġunknow", "ingly" -> "unknowingly")."""
    if len(tokens) == 1 and (is_wordpiece(tokenizer) or tokens[0] in tokenizer.all_special_tokens):
        return tokens[0]
    text = tokenizer.convert_tokens_to_string(tokens)
    return text.strip() if is_wordpiece(tokenizer) else _label(text, continues=False)


def piece_text(tokenizer, token):
    """
    The text one token stands for: "Ġmat" -> " mat", "▁mat" -> "mat". A byte-level
    piece of a character cut in two reads "<0xF0><0x9F>" (bytes a character cannot be
    made of alone), as byte-fallback tokens (Llama's "<0xF0>") already are.
    """
    text = tokenizer.convert_tokens_to_string([token])
    if "\ufffd" in text and "\ufffd" not in token:
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", token):  # byte fallback: "<0x43>" reads "C", "<0xF0>" stays
            return token
        if all(ch in _BYTE_OF for ch in token):  # byte-level BPE
            return bytes(_BYTE_OF[ch] for ch in token).decode("utf-8", errors=_HEX_BYTES)
    return text


def _label(text, continues):
    """A piece's label from its text: stripped, "##" in front if it continues a word (not for punctuation)."""
    stripped = visible(text.strip())
    if not stripped:  # a piece that is only a space or a line break: shown, not blank
        return "".join("¶" if ch in "\r\n" else "·" for ch in text) or "·"
    return "##" + stripped if continues and not is_punctuation(stripped) else stripped


def is_punctuation(label):
    """True for a label made only of punctuation characters ("." "," "##!" ...)."""
    text = label[2:] if label.startswith("##") else label
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


def special_roles(tokenizer, encoding, labels):
    """
    The labels that the "cls" and "sep" head patterns look for: the special token that
    starts the sequence ([CLS], RoBERTa's <s>, OPT's </s>, Mistral's <s>; None for GPT-2,
    which adds none) and the separator ([SEP], </s>; None for causal LMs).
    """
    first = int(encoding["input_ids"][0][0])
    start = labels[0] if labels and first in set(tokenizer.all_special_ids) else None
    separator = tokenizer.sep_token if tokenizer.sep_token != start else None
    return start, separator


# ---------------------------------------------------------------------------------------------------------------
# Predicted tokens


def token_surface(tokenizer, token_id, anchor="a"):
    """
    How one token reads when it follows a word: " mat" for RoBERTa's "Ġmat", BERT's "mat"
    and SentencePiece's "▁mat"; "s" for BERT's "##s" and a bare SentencePiece "s". Found by
    decoding [anchor, token] and removing what decoding [anchor] alone gives, which works
    for every decoder (ByteLevel, WordPiece, Metaspace, byte fallback).
    """
    token_id = int(token_id)
    token = tokenizer.convert_ids_to_tokens(token_id)
    if token_id in set(tokenizer.all_special_ids):
        return " " + token
    anchor_ids = tokenizer.encode(anchor, add_special_tokens=False)[:1]
    alone = tokenizer.decode(anchor_ids, clean_up_tokenization_spaces=False)
    both = tokenizer.decode(anchor_ids + [token_id], clean_up_tokenization_spaces=False)
    surface = both[len(alone):] if both.startswith(alone) else " " + piece_text(tokenizer, token).strip()
    if "\ufffd" in surface and "\ufffd" not in token:  # a piece of a character: its bytes, not U+FFFD
        surface = piece_text(tokenizer, token)
    return surface


def candidate_label(tokenizer, token_id):
    """A predicted token's label: WordPiece as CS50 shows it (tokenizer.decode), else as token_labels shows pieces."""
    token_id = int(token_id)
    if is_wordpiece(tokenizer):
        return tokenizer.decode([token_id])
    if token_id in set(tokenizer.all_special_ids):
        return tokenizer.convert_ids_to_tokens(token_id)
    surface = token_surface(tokenizer, token_id)
    return _label(surface, continues=not surface[:1].isspace())


def fill_sentence(tokenizer, text, nth, token_id):
    """
    `text` with its nth mask (0-based) replaced by a predicted token. WordPiece: CS50's
    replacement, text.replace(mask, decode([token])). Other tokenizers: a token that
    starts a word (" mat") takes exactly one space before it (none at the start of the
    text); a piece that continues a word ("s") joins the word before it where the mask
    token takes in the space before it (RoBERTa's <mask>), else stays where the mask was.
    """
    mask = tokenizer.mask_token
    start = -1
    for _ in range(nth + 1):
        start = text.find(mask, start + 1)
    before, after = text[:start], text[start + len(mask):]
    if is_wordpiece(tokenizer):
        return before + tokenizer.decode([int(token_id)]) + after
    surface = visible(token_surface(tokenizer, token_id))
    if surface[:1] == " ":
        before = before.rstrip(" ")
        word = surface.lstrip(" ")
        return (before + " " + word if before else word) + after
    added = tokenizer.added_tokens_decoder.get(tokenizer.mask_token_id)
    if added is not None and added.lstrip:
        before = before.rstrip(" ")
    return before + surface + after


def next_sentence(tokenizer, text, token_id):
    """A causal LM's prompt followed by one predicted token, exactly as the token continues it."""
    return text + visible(token_surface(tokenizer, token_id))


def visible(surface):
    """A predicted token's text with line breaks and tabs written as \\n and \\t: one candidate, one line."""
    return "".join(ch if ch == " " or ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in surface)


def _byte_alphabet():
    """GPT-2's byte-level alphabet: the character that stands for each byte in a byte-level BPE token."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


_BYTE_OF = _byte_alphabet()  # character -> byte


def _hex_bytes(error):
    """codecs error handler: undecodable bytes as <0xF0> (the notation of byte-fallback tokens)."""
    return "".join(f"<0x{byte:02X}>" for byte in error.object[error.start:error.end]), error.end


_HEX_BYTES = "attention-hex-bytes"
codecs.register_error(_HEX_BYTES, _hex_bytes)

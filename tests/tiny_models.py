"""
Build tiny checkpoints of every model family the tool reads, on disk, with no network.

`build_model_dir(path, family, ...)` writes what a Hub repository of that family
holds: the family's own fast tokenizer (trained here, in well under a second, on
a few hundred short English sentences this module makes up), a config.json of
the family, and random weights from a fixed seed, as tf_model.h5 (saved by the
family's TF class) or as PyTorch-format model.safetensors (the tensor names and
layouts PyTorch's save_pretrained writes, made with NumPy alone: no torch).

Families: the masked LMs bert, distilbert, roberta, albert, electra, xlm-roberta,
camembert, deberta-v2, mpnet, mobilebert, and the causal LMs gpt2, opt, xglm,
gptj, mistral.
"""

import contextlib
import itertools
import os

import numpy as np

MASKED = ("bert", "distilbert", "roberta", "albert", "electra", "xlm-roberta", "camembert", "deberta-v2", "mpnet",
          "mobilebert")
CAUSAL = ("gpt2", "opt", "xglm", "gptj", "mistral")
FAMILIES = MASKED + CAUSAL

# family: (tokenizer kind, transformers fast tokenizer class)
TOKENIZERS = {
    "bert": ("wordpiece", "BertTokenizerFast"),
    "distilbert": ("wordpiece", "DistilBertTokenizerFast"),
    "electra": ("wordpiece", "ElectraTokenizerFast"),
    "mobilebert": ("wordpiece", "MobileBertTokenizerFast"),
    "mpnet": ("wordpiece", "MPNetTokenizerFast"),
    "roberta": ("bytelevel", "RobertaTokenizerFast"),
    "gpt2": ("bytelevel", "GPT2TokenizerFast"),
    "opt": ("bytelevel", "GPT2TokenizerFast"),
    "gptj": ("bytelevel", "GPT2TokenizerFast"),
    "albert": ("unigram", "AlbertTokenizerFast"),
    "xlm-roberta": ("unigram", "XLMRobertaTokenizerFast"),
    "camembert": ("unigram", "CamembertTokenizerFast"),
    "deberta-v2": ("unigram", "DebertaV2TokenizerFast"),
    "xglm": ("unigram", "XGLMTokenizerFast"),
    "mistral": ("spm_bpe", "LlamaTokenizerFast"),
}

# Tied copies that older PyTorch checkpoints (converted from pytorch_model.bin) also
# store; PyTorch's save_pretrained of transformers 4.57 leaves them out. Three TF
# classes keep a tied weight as a variable of its own (ALBERT's decoder bias,
# MobileBERT's decoder, XGLM's lm_head): the builder gives it its source's values.
TIED_COPIES = {
    "bert": {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
             "cls.predictions.decoder.bias": "cls.predictions.bias"},
    "distilbert": {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"},
    "roberta": {"lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
                "lm_head.decoder.bias": "lm_head.bias"},
    "xlm-roberta": {"lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
                    "lm_head.decoder.bias": "lm_head.bias"},
    "camembert": {"lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
                  "lm_head.decoder.bias": "lm_head.bias"},
    "albert": {"predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
               "predictions.decoder.bias": "predictions.bias"},
    "electra": {"generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"},
    "deberta-v2": {"cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
                   "cls.predictions.decoder.bias": "cls.predictions.bias"},
    "mpnet": {"lm_head.decoder.weight": "mpnet.embeddings.word_embeddings.weight",
              "lm_head.decoder.bias": "lm_head.bias"},
    "mobilebert": {"cls.predictions.decoder.weight": "mobilebert.embeddings.word_embeddings.weight",
                   "cls.predictions.decoder.bias": "cls.predictions.bias"},
    "gpt2": {"lm_head.weight": "transformer.wte.weight"},
    "opt": {"lm_head.weight": "model.decoder.embed_tokens.weight"},
    "xglm": {"lm_head.weight": "model.embed_tokens.weight"},
}

_SUBJECTS = ["the cat", "the dog", "a turtle", "my sister", "the teacher", "our neighbour", "a small boy",
             "the old man", "she", "he", "they", "we", "I", "the students", "a bird", "the farmer"]
_VERBS = ["sat on", "walked to", "looked at", "ran across", "painted", "cleaned", "found", "moved slowly across",
          "picked up", "played near", "waited by", "jumped over"]
_OBJECTS = ["the mat", "the road", "the table", "the house", "a tree", "the river", "the garden", "a book",
            "the car", "the school", "the window", "the field", "a bottle of milk", "the kitchen"]
_TIMES = ["yesterday", "this morning", "at night", "after lunch", "every day", "on sunday", "quickly", "again"]
_FIXED = [
    "The cat sat on the mat.", "Then I picked up a book from the table.", "The turtle moved slowly across the road.",
    "Paris is the capital of France.", "The sun rises in the east.", "I went to the store to buy some milk.",
    "She drinks coffee every morning, and he drinks tea.", "Is it raining? No, it is sunny!",
    "The children were playing happily in the park.", "It was a wonderful, unknown place (or so they said).",
    "Don't open the door - the dog will run out.", "Water is wet; fire is hot.",
]


def sentences():
    """A few hundred short English sentences, always the same ones."""
    out = list(_FIXED)
    for i, (subject, verb, obj) in enumerate(itertools.product(_SUBJECTS, _VERBS, _OBJECTS)):
        if i % 7 == 0:
            time = _TIMES[i % len(_TIMES)]
            text = f"{subject} {verb} {obj} {time}."
            out.append(text[0].upper() + text[1:])
    return out


def build_model_dir(path, family, *, weights="h5", mlm_head=True, layers=2, heads=2, hidden=32, seed=0,
                    tied_copies=False, intermediate=37, positions=128, vocab_size=None):
    """
    Write a tiny `family` checkpoint into `path` (created if needed) and return it.
    (intermediate, positions and vocab_size make a full-size one for benchmarks:
    vocab_size rows beyond the tokenizer's own are never read.)

    weights: "h5" (tf_model.h5) or "safetensors" (PyTorch-format model.safetensors).
    mlm_head=False writes the base model only (an encoder- or decoder-only checkpoint,
    named as the family's base class saves it: no "bert." prefix in safetensors).
    tied_copies=True also stores the tied output weights in safetensors, as older
    checkpoints converted from pytorch_model.bin do.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    if weights not in ("h5", "safetensors"):
        raise ValueError(weights)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.makedirs(path, exist_ok=True)
    tokenizer = build_tokenizer(family)
    tokenizer.save_pretrained(path)
    config = build_config(family, vocab_size or len(tokenizer), tokenizer, layers=layers, heads=heads, hidden=hidden,
                          mlm_head=mlm_head, intermediate=intermediate, positions=positions)

    import tensorflow as tf
    import transformers

    tf.keras.utils.set_random_seed(seed)
    model_class = getattr(transformers, tf_class_name(family, mlm_head))
    with _zero_init():  # _randomize sets every weight: Keras' own random numbers would be wasted time
        model = model_class(config)
        model.build_in_name_scope()
    _randomize(model, seed)
    if mlm_head:
        _tie(model, family)
    if weights == "h5":
        model.save_pretrained(path, saved_model=False)
    else:
        config.save_pretrained(path)
        _save_pytorch_safetensors(model, family, os.path.join(path, "model.safetensors"), mlm_head, tied_copies)
    return path


def tf_class_name(family, mlm_head=True):
    """The family's TF masked-LM / causal-LM class, or its base model class."""
    from transformers.models.auto import modeling_tf_auto as auto

    if not mlm_head:
        return auto.TF_MODEL_MAPPING_NAMES[family]
    if family in CAUSAL:
        return auto.TF_MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[family]
    return auto.TF_MODEL_FOR_MASKED_LM_MAPPING_NAMES[family]


@contextlib.contextmanager
def _zero_init():
    """TF variables created inside start as zeros (no initializer runs), for every family."""
    import tensorflow as tf

    def creator(next_creator, **kwargs):
        shape, dtype = kwargs.get("shape"), kwargs.get("dtype")
        if shape is not None and tf.TensorShape(shape).is_fully_defined() and dtype is not None:
            shape, dtype = tf.TensorShape(shape), tf.as_dtype(dtype)
            kwargs["initial_value"] = lambda: tf.zeros(shape, dtype)
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def _randomize(model, seed):
    """
    Give every weight random values from `seed`: normal(0, 0.2) for matrices, and
    0.1 * normal around 1 (scales) or 0 (biases) for vectors. Keras' own init leaves
    biases at 0 and norms at 1, which would hide weights loaded in the wrong place.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        name = weight.name.lower()
        if len(shape) >= 2:
            value = rng.normal(0.0, 0.2, shape)
        elif any(key in name for key in ("gamma", "layernorm/weight", "layer_norm/weight", "norm/weight")):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.1 * rng.normal(size=shape)
        weight.assign(value.astype(weight.dtype.as_numpy_dtype))


def _pt_names(model):
    """{PyTorch name: (TF variable, transposed?)} for every weight of a TF model."""
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    names = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(
            weight.name, start_prefix_to_remove=model.name + "/", tf_weight_shape=weight.shape
        )
        if transpose not in (TransposeType.NO, TransposeType.SIMPLE):
            raise NotImplementedError(f"{weight.name}: {transpose}")
        names[name] = (weight, transpose is TransposeType.SIMPLE)
    return names


def _tie(model, family):
    """Give the TF variables that PyTorch ties to another weight that weight's values."""
    names = _pt_names(model)
    for copy, source in TIED_COPIES.get(family, {}).items():
        if copy in names and names[copy][0] is not names[source][0]:
            (target, t_transposed), (origin, o_transposed) = names[copy], names[source]
            value = origin.numpy()
            target.assign(value.T if t_transposed != o_transposed else value)


# ---------------------------------------------------------------------------------------------------------------
# Tokenizers


def build_tokenizer(family):
    """The family's transformers fast tokenizer, trained on `sentences()`."""
    import transformers
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    kind, class_name = TOKENIZERS[family]
    fast_class = getattr(transformers, class_name)
    corpus = sentences()

    if kind == "wordpiece":
        mpnet = family == "mpnet"
        # microsoft/mpnet-base: <s> <pad> </s> <unk> first, "[UNK]" as its unknown token, <mask> last
        specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"] if mpnet else ["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                                           "[MASK]"]
        unk, cls, sep = ("[UNK]", "<s>", "</s>") if mpnet else ("[UNK]", "[CLS]", "[SEP]")
        tok = _wordpiece(corpus, specials, unk)
        if mpnet:
            tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
        c, s = tok.token_to_id(cls), tok.token_to_id(sep)
        pair = f"{cls}:0 $A:0 {sep}:0 {sep}:0 $B:1 {sep}:1" if mpnet else f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1"
        tok.post_processor = processors.TemplateProcessing(single=f"{cls}:0 $A:0 {sep}:0", pair=pair,
                                                           special_tokens=[(cls, c), (sep, s)])
        tok.decoder = decoders.WordPiece(prefix="##")
        if mpnet:
            return fast_class(tokenizer_object=tok, do_lower_case=True)
        return fast_class(tokenizer_object=tok, do_lower_case=True, unk_token="[UNK]", sep_token="[SEP]",
                          pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")

    if kind == "bytelevel":
        specials = ["<s>", "<pad>", "</s>", "<unk>"] if family in ("roberta", "opt") else []
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                            show_progress=False))
        if family == "roberta":  # <mask> last, as in roberta-base (50264)
            tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
            tok.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True,
                                                              add_prefix_space=False)
            return fast_class(tokenizer_object=tok)
        if family == "opt":  # facebook/opt-*: "</s>" starts every text (bos = eos = "</s>")
            tok.post_processor = processors.TemplateProcessing(single="</s>:0 $A:0", pair="</s>:0 $A:0 </s>:0 $B:1",
                                                               special_tokens=[("</s>", 2)])
            return fast_class(tokenizer_object=tok, bos_token="</s>", eos_token="</s>", unk_token="</s>",
                              pad_token="<pad>", add_bos_token=True)
        # gpt2, gptj: <|endoftext|> last (50256), nothing added around the text
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        return fast_class(tokenizer_object=tok)

    if kind == "unigram":
        if family == "albert":
            specials, unk = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>"
        elif family == "deberta-v2":
            specials, unk = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]"
        elif family == "camembert":
            specials, unk = ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED", "<s>", "</s>"], "<unk>"
        else:  # xlm-roberta, xglm
            specials, unk = ["<s>", "<pad>", "</s>", "<unk>"], "<unk>"
        tok = Tokenizer(models.Unigram())
        if family == "albert":  # as AlbertConverter (do_lower_case)
            steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.Lowercase()]
        elif family == "deberta-v2":  # as DebertaV2Converter
            steps = [normalizers.Strip()]
        else:  # as SpmConverter
            steps = [normalizers.Strip(left=False, right=True)]
        tok.normalizer = normalizers.Sequence(steps + [normalizers.Replace(Regex(" {2,}"), " ")])
        metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Punctuation(behavior="isolated"), metaspace]) \
            if family == "deberta-v2" else metaspace
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token=unk,
                                                                show_progress=False))
        tok = _with_whole_words(tok, corpus, len(specials), lowercase=family == "albert")
        if family in ("albert", "deberta-v2"):
            c, s = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
            tok.post_processor = processors.TemplateProcessing(
                single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
                special_tokens=[("[CLS]", c), ("[SEP]", s)])
        elif family == "xglm":
            tok.post_processor = processors.TemplateProcessing(
                single="</s> $A", pair="</s> $A </s> </s> $B", special_tokens=[("</s>", tok.token_to_id("</s>"))])
        else:  # xlm-roberta, camembert: <mask> last, as in the real vocabularies
            tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
            b, e = tok.token_to_id("<s>"), tok.token_to_id("</s>")
            tok.post_processor = processors.TemplateProcessing(
                single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", b), ("</s>", e)])
        if family == "albert":
            return fast_class(tokenizer_object=tok, do_lower_case=True)
        if family == "deberta-v2":
            return fast_class(tokenizer_object=tok, do_lower_case=False)
        if family == "camembert":
            return fast_class(tokenizer_object=tok, additional_special_tokens=["<s>NOTUSED", "</s>NOTUSED",
                                                                               "<unk>NOTUSED"])
        return fast_class(tokenizer_object=tok)  # xlm-roberta; xglm adds its 7 <madeupwordN> at the end

    # spm_bpe (mistral): SentencePiece-style BPE with byte fallback, laid out as Mistral-7B's tokenizer.json:
    # <unk> <s> </s>, then <0x00>..<0xFF>, then the merges; a normalizer (prepend "▁", spaces -> "▁"), no
    # pre-tokenizer, so the whole text is one "word" for word_ids()
    import json

    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer_tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens, show_progress=False))
    state = json.loads(trainer_tok.to_str())
    state["added_tokens"] = [t for t in state["added_tokens"] if t["content"] not in byte_tokens]
    state["model"]["byte_fallback"] = True
    state["model"]["fuse_unk"] = True
    state["pre_tokenizer"] = None
    tok = Tokenizer.from_str(json.dumps(state))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1)])
    return fast_class(tokenizer_object=tok, legacy=True, add_bos_token=True, add_eos_token=False, pad_token=None)


def _wordpiece(corpus, specials, unk):
    """
    A WordPiece tokenizer (BERT's normalizer and pre-tokenizer) whose vocabulary
    comes from a BPE model trained on `corpus`: each word's first piece as is, its
    later pieces as "##piece", plus every character both ways. The library's own
    WordPieceTrainer is not deterministic (ties between "##" pieces fall in hash
    order, so the vocabulary changes from run to run); plain BPE training is.
    """
    import collections

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                            lowercase=True)
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizer
    bpe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    counts = collections.Counter()
    chars = set()
    for text in corpus:
        for word, _ in bpe.pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            chars.update(word)
            pieces = [token.value for token in bpe.model.tokenize(word)]
            counts.update([pieces[0]] + ["##" + piece for piece in pieces[1:]])
    vocab = list(specials) + sorted(chars) + sorted("##" + char for char in chars)
    vocab += [piece for piece, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if piece not in vocab]
    tok = Tokenizer(models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token=unk,
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.add_special_tokens(list(specials))
    return tok


def _with_whole_words(tok, corpus, n_special, *, lowercase):
    """
    The trained unigram model plus a "▁word" piece for each word seen 3 times or
    more, scored by its frequency, in a fixed order. On a corpus this small and
    repetitive the tokenizers library's UnigramTrainer keeps only ~150 short pieces
    ("▁ca" "t"), where SentencePiece on real text keeps whole common words. Its
    scores also differ from run to run in the last digits (ties settled in hash
    order), so they are rounded to 2 decimals and the pieces sorted.
    """
    import collections
    import json
    import math
    import re

    from tokenizers import Tokenizer

    state = json.loads(tok.to_str())
    vocab = [tuple(piece) for piece in state["model"]["vocab"]]
    specials, pieces = vocab[:n_special], {piece: score for piece, score in vocab[n_special:]}
    counts = collections.Counter(
        "\u2581" + word for text in corpus for word in re.findall(r"[A-Za-z]+", text.lower() if lowercase else text))
    total = sum(counts.values())
    for piece, count in counts.items():
        if count >= 3 and piece not in pieces:
            pieces[piece] = math.log(count / total)
    ordered = sorted(((piece, round(score, 2)) for piece, score in pieces.items()),
                     key=lambda item: (-item[1], item[0]))
    state["model"]["vocab"] = [list(piece) for piece in specials + ordered]
    return Tokenizer.from_str(json.dumps(state))


# ---------------------------------------------------------------------------------------------------------------
# Configs


def build_config(family, vocab_size, tokenizer, *, layers=2, heads=2, hidden=32, mlm_head=True, intermediate=37,
                 positions=128):
    """A tiny config of the family: positions for 128 tokens, sizes as asked."""
    import transformers
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        MODEL_MAPPING_NAMES,
    )

    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("pad", tokenizer.pad_token), ("bos", tokenizer.bos_token), ("eos", tokenizer.eos_token))
        if token is not None}
    inter = intermediate
    mapping = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES if family in CAUSAL else MODEL_FOR_MASKED_LM_MAPPING_NAMES
    common = dict(vocab_size=vocab_size,
                  architectures=[mapping[family] if mlm_head else MODEL_MAPPING_NAMES[family]],
                  pad_token_id=ids.get("pad"), bos_token_id=ids.get("bos"), eos_token_id=ids.get("eos"))
    bert_like = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter)
    if family == "bert":
        config = transformers.BertConfig(**common, **bert_like, max_position_embeddings=positions)
    elif family == "distilbert":
        config = transformers.DistilBertConfig(**common, dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=inter,
                                               max_position_embeddings=positions)
    elif family in ("roberta", "xlm-roberta", "camembert"):
        cls = {"roberta": "RobertaConfig", "xlm-roberta": "XLMRobertaConfig", "camembert": "CamembertConfig"}[family]
        # positions start at padding_idx + 1: 128 tokens need 128 + pad + 1 rows (roberta-base: 514 for 512)
        config = getattr(transformers, cls)(**common, **bert_like, type_vocab_size=1,
                                            max_position_embeddings=positions + ids["pad"] + 1)
    elif family == "albert":
        config = transformers.AlbertConfig(**common, **bert_like, embedding_size=max(8, hidden // 2),
                                           max_position_embeddings=positions, num_hidden_groups=1, inner_group_num=1)
    elif family == "electra":
        config = transformers.ElectraConfig(**common, **bert_like, embedding_size=max(8, hidden // 2),
                                            max_position_embeddings=positions)
    elif family == "deberta-v2":  # as microsoft/deberta-v3-*: relative attention only, no absolute positions
        config = transformers.DebertaV2Config(**common, **bert_like, max_position_embeddings=positions,
                                              relative_attention=True, position_buckets=32, max_relative_positions=-1,
                                              pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                              norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0)
    elif family == "mpnet":
        config = transformers.MPNetConfig(**common, **bert_like, max_position_embeddings=positions + ids["pad"] + 1,
                                          relative_attention_num_buckets=32)
    elif family == "mobilebert":  # bottlenecks as google/mobilebert-uncased, at a tiny scale
        small = max(8, hidden // 2)
        config = transformers.MobileBertConfig(**common, **bert_like, embedding_size=small,
                                               intra_bottleneck_size=small, true_hidden_size=small,
                                               num_feedforward_networks=2, use_bottleneck=True,
                                               key_query_shared_bottleneck=True, use_bottleneck_attention=False,
                                               normalization_type="no_norm", trigram_input=True,
                                               max_position_embeddings=positions)
    elif family == "gpt2":
        config = transformers.GPT2Config(**common, n_positions=positions, n_embd=hidden, n_layer=layers, n_head=heads)
    elif family == "opt":
        config = transformers.OPTConfig(**common, hidden_size=hidden, num_hidden_layers=layers,
                                        num_attention_heads=heads, ffn_dim=inter, max_position_embeddings=positions,
                                        word_embed_proj_dim=hidden, do_layer_norm_before=True)
    elif family == "xglm":
        config = transformers.XGLMConfig(**common, d_model=hidden, num_layers=layers, attention_heads=heads,
                                         ffn_dim=inter, max_position_embeddings=positions,
                                         decoder_start_token_id=ids["eos"])
    elif family == "gptj":
        config = transformers.GPTJConfig(**common, n_positions=positions, n_embd=hidden, n_layer=layers, n_head=heads,
                                         rotary_dim=max(2, hidden // heads // 2))
    elif family == "mistral":  # grouped-query attention: half as many key/value heads as query heads
        config = transformers.MistralConfig(**common, hidden_size=hidden, intermediate_size=inter,
                                            num_hidden_layers=layers, num_attention_heads=heads,
                                            num_key_value_heads=max(1, heads // 2), head_dim=hidden // heads,
                                            max_position_embeddings=positions, sliding_window=4096,
                                            tie_word_embeddings=False)
    else:
        raise ValueError(family)
    return config


# ---------------------------------------------------------------------------------------------------------------
# PyTorch-format safetensors


def _save_pytorch_safetensors(model, family, filename, mlm_head, tied_copies):
    """
    The weights as PyTorch's save_pretrained writes them: TF names converted with
    transformers' own convert_tf_weight_name_to_pt_weight_name (Dense kernels
    transposed), the base model's prefix dropped for a base-only checkpoint, the
    tied output weights left out unless tied_copies, and no pooler for MPNet's
    masked LM (TFMPNetForMaskedLM has one, MPNetForMaskedLM does not).
    """
    from safetensors.numpy import save_file

    tensors = {}
    for name, (weight, transposed) in _pt_names(model).items():
        value = weight.numpy()
        if name.endswith(".bias") and value.ndim == 2 and value.shape[0] == 1:  # GPT-2's TF Conv1D: (1, n)
            value = value[0]
        tensors[name] = np.ascontiguousarray(value.T if transposed else value)
    if mlm_head:
        for copy, source in TIED_COPIES.get(family, {}).items():
            tensors.pop(copy, None)
            if tied_copies:
                tensors[copy] = tensors[source]
        if family == "mpnet":
            tensors = {name: value for name, value in tensors.items() if not name.startswith("mpnet.pooler.")}
    else:  # PyTorch's base classes (BertModel, GPT2Model...) save without their prefix ("bert.", "transformer.")
        base = model.base_model_prefix + "."
        tensors = {name[len(base):] if name.startswith(base) else name: value for name, value in tensors.items()}
    save_file(tensors, filename, metadata={"format": "pt"})

"""
Every model family the tool reads (families.py), end to end through the command line on
tiny checkpoints of each (tests/tiny_models.py): the printed predictions are the top-k of
the family's own TF class, loaded by transformers' own from_pretrained; the attentions
are that class's; one diagram per layer and head; both weight formats load the same
weights; checkpoints without their head, sharded bfloat16 ones; tokens shown without Ġ
or ▁; refusals in one line.

Each checkpoint is built once per session and each model opens once per process.
"""

import fnmatch
import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import assert_one_line_failure, call_main, diagram_names
from tiny_models import CAUSAL, FAMILIES, MASKED, build_model_dir, tf_class_name

import families
import mask
import model_loading
import model_source

MASKED_TEXT = "The cat sat on the [MASK], unknowingly."
CAUSAL_TEXT = "Then, the cat sat on the"
SEED = 11


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """checkpoint(family, weights="h5", head=True): a tiny checkpoint's folder, built once per session."""
    root, built = tmp_path_factory.mktemp("families"), {}

    def get(family, weights="h5", head=True):
        key = (family, weights, head)
        if key not in built:
            path = str(root / f"{family}-{weights}-{'lm' if head else 'base'}")
            built[key] = build_model_dir(path, family, weights=weights, mlm_head=head, seed=SEED)
        return built[key]

    return get


def text_for(family):
    return CAUSAL_TEXT if family in CAUSAL else MASKED_TEXT


def reference(model_dir, family, text):
    """
    The family's own TF class, loaded by transformers' from_pretrained (tf_model.h5), on
    `text` as the tool read it: (token ids, logits (seq, vocab), attentions (layers, heads, seq, seq)).
    """
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = getattr(transformers, tf_class_name(family)).from_pretrained(model_dir)
    inputs = tokenizer(text, return_tensors="tf")
    result = model(dict(inputs), output_attentions=True, training=False)
    attentions = np.stack([layer.numpy()[0] for layer in result.attentions])
    return inputs["input_ids"].numpy()[0].tolist(), result.logits.numpy()[0], attentions


def softmax(row):
    row = row.astype(np.float64)
    exp = np.exp(row - row.max())
    return exp / exp.sum()


def payload(path):
    html = open(path, encoding="utf-8").read()
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1))


def raw_markers(label):
    """Byte-level BPE's space mark and SentencePiece's, which a label must never show."""
    return "Ġ" in label or "▁" in label


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_end_to_end(family, checkpoint, tmp_path):
    """Predictions = the family's own TF class's top-k; attentions equal; a diagram per head; no raw Ġ/▁."""
    import tensorflow as tf

    model_dir, out = checkpoint(family), tmp_path / "out"
    run = call_main([text_for(family), "--model", model_dir, "--output-dir", str(out), "--scores",
                     "--save", str(tmp_path / "run.npz")])
    assert run.status == 0, run
    saved = np.load(tmp_path / "run.npz", allow_pickle=False)
    ids, logits, attentions = reference(model_dir, family, str(saved["text"]))

    position = len(ids) - 1 if family in CAUSAL else ids.index(model_loading.load_tokenizer(
        model_source.ModelSource(model_dir, model_dir)).mask_token_id)
    top = tf.math.top_k(logits[position], 3).indices.numpy().tolist()
    assert saved["pred_token_ids"].tolist() == [top]
    np.testing.assert_allclose(saved["pred_probabilities"][0], softmax(logits[position])[top], atol=1e-5)
    np.testing.assert_allclose(saved["attentions"], attentions, atol=1e-6)
    assert saved["mask_positions"].tolist() == [position]
    sentences, probabilities = saved["pred_sentences"][0], saved["pred_probabilities"][0]
    printed = [f"{sentence}  ({p:.3f})" for sentence, p in zip(sentences, probabilities, strict=True)]
    assert run.stdout.splitlines() == printed

    layers, heads = attentions.shape[:2]
    assert diagram_names(out) == sorted(f"Attention_Layer{layer}_Head{head}.png"
                                        for layer in range(1, layers + 1) for head in range(1, heads + 1))
    tokens = saved["tokens"].tolist()
    assert len(tokens) == len(ids) and not any(raw_markers(token) for token in tokens), tokens
    page = payload(out / "attention.html")
    assert page["tokens"] == tokens and page["predictions"][0]["mask_index"] == position
    if family in CAUSAL:  # a causal LM: every token sees only itself and those before it
        assert np.all(np.triu(saved["attentions"], k=1) == 0)
        assert page["prediction_kind"] == "next" and page["causal"] is True
        assert all(sentence.startswith(CAUSAL_TEXT) for sentence in saved["pred_sentences"][0])
    else:
        assert page["prediction_kind"] == "mask" and page["causal"] is False
        assert np.any(np.triu(saved["attentions"], k=1) > 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_safetensors_loads_the_weights_tf_model_h5_holds(family, checkpoint):
    """The same seed saved both ways: PyTorch-format safetensors (tied weights left out, as PyTorch writes them)
    gives the predictions and attentions of tf_model.h5 (ALBERT's, MobileBERT's and XGLM's tied weights included)."""
    h5 = mask.explain(text_for(family), model=checkpoint(family, "h5"))
    safetensors = mask.explain(text_for(family), model=checkpoint(family, "safetensors"))
    assert safetensors.predictions == h5.predictions
    np.testing.assert_allclose(safetensors.attentions, h5.attentions, atol=1e-6)


@pytest.mark.parametrize("family, predicts", [("roberta", False), ("gptj", False), ("xglm", True), ("gpt2", True)])
def test_checkpoint_without_its_head(family, predicts, checkpoint, tmp_path):
    """A base-only checkpoint: diagrams only, with one note; GPT-2's and XGLM's output layer is their input
    embedding matrix, so theirs is a whole language model (the same next words as the full checkpoint)."""
    model_dir = checkpoint(family, "safetensors", head=False)
    run = call_main([text_for(family), "--model", model_dir, "--output-dir", str(tmp_path), "--no-html"])
    assert run.status == 0, run
    assert len(diagram_names(tmp_path)) == 4
    notes = [line for line in run.stderr.splitlines() if "head: drawing attention only" in line]
    if predicts:
        full = mask.explain(text_for(family), model=checkpoint(family, "h5"))
        assert run.stdout.splitlines() == [candidate.sentence for candidate in full.predictions[0]]
        assert notes == []
    else:
        assert run.stdout == "" and len(notes) == 1, run


@pytest.mark.parametrize("family, lacks", [("mistral", ["lm_head.weight"]), ("xglm", []), ("albert", None)])
def test_tied_weights_are_read_only_where_the_family_ties_them(family, lacks, checkpoint):
    """A base-only checkpoint: XGLM's lm_head is its embedding matrix, Mistral's a weight of its own (missing)."""
    source = model_source.ModelSource(checkpoint(family, "safetensors", head=family == "albert"), "m")
    weights = model_loading._PyTorchWeights(model_loading._LazyTensors([(source.path("model.safetensors"), "")]))
    model_class = model_loading.tf_class(source.class_name, family)
    with weights:
        model, missing = model_loading.build_with_weights(
            model_class, model_loading._config_class(family).from_dict(source.config), weights)
    if lacks is not None:
        assert missing == lacks
    else:  # ALBERT's decoder bias is not in PyTorch's file: it is read from predictions.bias
        assert missing == [] and "predictions.decoder.bias" not in model_source.safetensors_keys(
            source.path("model.safetensors"))
        [bias] = [w for w in model.weights if w.name.endswith("predictions/decoder/bias:0")]
        [source_bias] = [w for w in model.weights if w.name.endswith("predictions/bias:0")]
        np.testing.assert_array_equal(bias.numpy(), source_bias.numpy())


def _bf16_shards(source_dir, rounded_dir, sharded_dir):
    """
    From a float32 model.safetensors: `rounded_dir` holds the weights rounded to bfloat16
    (stored as float32), `sharded_dir` the same as bfloat16 in two shards with an index,
    as large Hub checkpoints come.
    """
    from safetensors.numpy import load_file, save_file

    tensors = load_file(os.path.join(source_dir, "model.safetensors"))
    bits = {}
    for name, value in tensors.items():
        as_int = value.astype(np.float32).view(np.uint32).astype(np.uint64)
        bits[name] = ((as_int + 0x7FFF + ((as_int >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    for target in (rounded_dir, sharded_dir):
        shutil.copytree(source_dir, target, ignore=shutil.ignore_patterns("*.safetensors"))
    save_file({name: (b.astype(np.uint32) << 16).view(np.float32) for name, b in bits.items()},
              os.path.join(rounded_dir, "model.safetensors"))
    names = sorted(bits)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, members in shards.items():
        header, offset = {}, 0
        for name in members:
            header[name] = {"dtype": "BF16", "shape": list(bits[name].shape),
                            "data_offsets": [offset, offset + bits[name].nbytes]}
            offset += bits[name].nbytes
        encoded = json.dumps(header).encode()
        with open(os.path.join(sharded_dir, shard), "wb") as file:
            file.write(len(encoded).to_bytes(8, "little") + encoded)
            for name in members:
                file.write(bits[name].astype("<u2").tobytes())
    index = {"metadata": {}, "weight_map": {name: shard for shard, members in shards.items() for name in members}}
    with open(os.path.join(sharded_dir, "model.safetensors.index.json"), "w") as file:
        json.dump(index, file)


def test_sharded_bfloat16_checkpoint(checkpoint, tmp_path):
    """Mistral-style shards of bfloat16 tensors with an index read as the same weights in float32."""
    _bf16_shards(checkpoint("mistral", "safetensors"), str(tmp_path / "rounded"), str(tmp_path / "sharded"))
    rounded = mask.explain(CAUSAL_TEXT, model=str(tmp_path / "rounded"))
    sharded = mask.explain(CAUSAL_TEXT, model=str(tmp_path / "sharded"))
    assert sharded.predictions == rounded.predictions
    np.testing.assert_array_equal(sharded.attentions, rounded.attentions)


def test_a_missing_shard_is_one_line(checkpoint, tmp_path):
    _bf16_shards(checkpoint("mistral", "safetensors"), str(tmp_path / "rounded"), str(tmp_path / "sharded"))
    os.remove(tmp_path / "sharded" / "model-00002-of-00002.safetensors")
    run = call_main([CAUSAL_TEXT, "--model", str(tmp_path / "sharded"), "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, f"{tmp_path / 'sharded'} lacks model-00002-of-00002.safetensors, a weight shard "
                                 "its model.safetensors.index.json names.")


# Tokens as shown ----------------------------------------------------------------------------------------------

# "The cat sat on the [MASK], unknowingly." (a causal LM: "Then, the cat sat on the") merged into words by
# each tokenizer's own word boundaries: WordPiece and byte-level BPE split punctuation off, SentencePiece
# keeps it with the word before (DeBERTa-v2's splits it off first), Mistral's tokenizer (no pre-tokenizer)
# splits at spaces
WORDPIECE_WORDS = ["[CLS]", "the", "cat", "sat", "on", "the", "[MASK]", ",", "unknowingly", ".", "[SEP]"]
WORDS = {
    "bert": WORDPIECE_WORDS, "distilbert": WORDPIECE_WORDS, "electra": WORDPIECE_WORDS,
    "mobilebert": WORDPIECE_WORDS,
    "mpnet": ["<s>", "the", "cat", "sat", "on", "the", "<mask>", ",", "unknowingly", ".", "</s>"],
    "roberta": ["<s>", "The", "cat", "sat", "on", "the", "<mask>", ",", "unknowingly", ".", "</s>"],
    "albert": ["[CLS]", "the", "cat", "sat", "on", "the", "[MASK]", ",", "unknowingly.", "[SEP]"],
    "xlm-roberta": ["<s>", "The", "cat", "sat", "on", "the", "<mask>", ",", "unknowingly.", "</s>"],
    "camembert": ["<s>", "The", "cat", "sat", "on", "the", "<mask>", ",", "unknowingly.", "</s>"],
    "deberta-v2": ["[CLS]", "The", "cat", "sat", "on", "the", "[MASK]", ",", "unknowingly", ".", "[SEP]"],
    "gpt2": ["Then", ",", "the", "cat", "sat", "on", "the"],
    "gptj": ["Then", ",", "the", "cat", "sat", "on", "the"],
    "opt": ["</s>", "Then", ",", "the", "cat", "sat", "on", "the"],
    "xglm": ["</s>", "Then,", "the", "cat", "sat", "on", "the"],
    "mistral": ["<s>", "Then,", "the", "cat", "sat", "on", "the"],
}

# The tokens the "cls" and "sep" patterns look for: the special token that starts the text and the separator
SPECIAL = {"bert": ("[CLS]", "[SEP]"), "distilbert": ("[CLS]", "[SEP]"), "electra": ("[CLS]", "[SEP]"),
           "mobilebert": ("[CLS]", "[SEP]"), "albert": ("[CLS]", "[SEP]"), "deberta-v2": ("[CLS]", "[SEP]"),
           "mpnet": ("<s>", "</s>"), "roberta": ("<s>", "</s>"), "xlm-roberta": ("<s>", "</s>"),
           "camembert": ("<s>", "</s>"), "gpt2": (None, None), "gptj": (None, None), "opt": ("</s>", None),
           "xglm": ("</s>", None), "mistral": ("<s>", None)}


@pytest.mark.parametrize("family", FAMILIES)
def test_words_and_special_tokens_of_each_family(family, checkpoint):
    """--words merges by the tokenizer's own word boundaries; the cls/sep/punctuation patterns find their tokens."""
    run = mask.explain(text_for(family), model=checkpoint(family), words=True)
    assert run.tokens == WORDS[family]
    assert run.special == SPECIAL[family]
    start, separator = SPECIAL[family]
    assert np.all(run.patterns["cls"] > 0) == (start is not None)
    assert np.all(run.patterns["sep"] > 0) == (separator is not None)
    tokens = mask.explain(text_for(family), model=checkpoint(family))
    assert "," in tokens.tokens and not any(raw_markers(token) for token in tokens.tokens)
    assert np.all(tokens.patterns["punctuation"] > 0)  # "," is a token of its own in every family


# How "mat" and a piece that continues a word ("s") fill "The cat sat on the [MASK]." in each family
FILLED = {
    "bert": "The cat sat on the ##s.", "distilbert": "The cat sat on the ##s.", "electra": "The cat sat on the ##s.",
    "mobilebert": "The cat sat on the ##s.", "mpnet": "The cat sat on the ##s.",  # CS50's output for WordPiece
    # a mask token that takes in the space before it (lstrip: RoBERTa's <mask>, ALBERT's [MASK]) glues the piece on
    "roberta": "The cat sat on thes.", "xlm-roberta": "The cat sat on thes.", "camembert": "The cat sat on thes.",
    "albert": "The cat sat on thes.",
    "deberta-v2": "The cat sat on the s.",  # its [MASK] leaves the space alone
}


@pytest.mark.parametrize("family", MASKED)
def test_fill_ins_are_spaced_for_each_family(family, checkpoint):
    tokenizer = model_loading.load_tokenizer(model_source.ModelSource(checkpoint(family), "m"))
    text = f"The cat sat on the {tokenizer.mask_token}."
    mat = tokenizer.encode("on the mat", add_special_tokens=False)[-1]  # "mat", "Ġmat", "▁mat"
    assert families.fill_sentence(tokenizer, text, 0, mat) == "The cat sat on the mat."
    assert families.candidate_label(tokenizer, mat) == "mat"
    start = f"{tokenizer.mask_token} sat on the {tokenizer.mask_token}."
    assert families.fill_sentence(tokenizer, start, 1, mat) == f"{tokenizer.mask_token} sat on the mat."
    assert families.fill_sentence(tokenizer, start, 0, mat).startswith(("mat sat", "Mat sat"))
    piece = tokenizer.convert_tokens_to_ids("##s" if families.is_wordpiece(tokenizer) else "s")
    assert families.fill_sentence(tokenizer, text, 0, piece) == FILLED[family]
    assert families.candidate_label(tokenizer, piece) == "##s"


@pytest.mark.parametrize("family", CAUSAL)
def test_next_words_continue_the_prompt(family, checkpoint):
    tokenizer = model_loading.load_tokenizer(model_source.ModelSource(checkpoint(family), "m"))
    mat = tokenizer.encode("on the mat", add_special_tokens=False)[-1]
    assert families.next_sentence(tokenizer, "The cat sat on the", mat) == "The cat sat on the mat"
    assert families.candidate_label(tokenizer, mat) == "mat"
    newline = [i for i in tokenizer.encode("a\nb", add_special_tokens=False) if tokenizer.decode([i]) == "\n"]
    if family != "xglm":  # XGLM's SentencePiece has no line break
        assert families.next_sentence(tokenizer, "The end.", newline[0]) == "The end.\\n"  # one candidate, one line


@pytest.mark.parametrize("family", FAMILIES)
def test_no_label_shows_raw_space_marks(family, checkpoint):
    """Every vocabulary entry as a candidate, and odd text as tokens: no Ġ, no ▁, no U+FFFD."""
    tokenizer = model_loading.load_tokenizer(model_source.ModelSource(checkpoint(family), "m"))
    labels = [families.candidate_label(tokenizer, i) for i in range(len(tokenizer))]
    for text in ["Café 😀 naïve\tend  two  spaces", "It's (or so) they said!\nNew line"]:
        labels += families.token_labels(tokenizer, tokenizer(text, return_tensors="np"), text)
    bad = [label for label in labels if raw_markers(label) or "\ufffd" in label or not label.strip()]
    assert bad == []


# Refusals and limits ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["[MASK]", "<mask>", "[mask]"])
def test_a_mask_typed_for_a_causal_model_is_one_line(typed, checkpoint, tmp_path):
    model_dir = checkpoint("gpt2")
    run = call_main([f"The cat sat on the {typed}.", "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, f"{model_dir} is a causal language model: it predicts the next word, so give it "
                                 f"the beginning of a sentence, without {typed}.")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("typed", ["[MASK]", "[mask]"])
def test_bert_spelling_of_the_mask_is_read_as_robertas(typed, checkpoint, tmp_path):
    run = call_main([f"The cat sat on the {typed}.", "--model", checkpoint("roberta"), "--output-dir", str(tmp_path)])
    assert run.status == 0 and len(run.stdout.splitlines()) == 3, run
    assert run.stderr.splitlines()[0] == f"Note: reading {typed} as <mask>."


@pytest.mark.parametrize("family, limit", [("roberta", 128), ("deberta-v2", 128), ("gpt2", 128), ("mistral", 128)])
def test_text_longer_than_the_family_reads_is_one_line(family, limit, checkpoint, tmp_path):
    """RoBERTa's 130 positions read 128 tokens; DeBERTa-v2 and Mistral would run past their limit silently."""
    import attention_run

    model_dir = checkpoint(family)
    tokenizer = model_loading.load_tokenizer(model_source.ModelSource(model_dir, "m"))

    def text(words):  # "the the ... the [MASK]": one token a word
        return "the " * words + ("" if family in CAUSAL else tokenizer.mask_token)

    words = limit - (len(tokenizer(text(1))["input_ids"]) - 1)
    assert len(tokenizer(text(words))["input_ids"]) == limit
    attention_run.prepare(text(words), model_dir)  # exactly the limit: fine
    run = call_main([text(words + 1), "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, f"Text is too long: {limit + 1} tokens, and {model_dir} reads at most {limit}. "
                                 "Shorten it.")


@pytest.mark.parametrize("family", ["roberta", "gpt2"])
def test_pickled_weights_are_never_opened_in_any_family(family, checkpoint, tmp_path):
    """A folder with only pytorch_model.bin is refused in one line, whatever the family; the pickle never runs."""
    import pickle

    from test_model_folders import _Unpickled

    marker, model_dir = tmp_path / "unpickled.txt", tmp_path / "model"
    shutil.copytree(checkpoint(family), model_dir, ignore=shutil.ignore_patterns("*.h5", "*.safetensors"))
    (model_dir / "pytorch_model.bin").write_bytes(pickle.dumps(_Unpickled(str(marker))))
    run = call_main([text_for(family), "--model", str(model_dir), "--output-dir", str(tmp_path / "out")])
    assert_one_line_failure(run, f"{model_dir} only has pytorch_model.bin, a pickle this tool will not open; "
                                 "convert it to model.safetensors (or tf_model.h5).")
    assert not marker.exists()


def test_length_limits_of_each_family():
    assert families.max_tokens({"model_type": "bert", "max_position_embeddings": 512}) == 512
    assert families.max_tokens({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert families.max_tokens({"model_type": "gpt2", "n_positions": 1024}) == 1024
    assert families.max_tokens({"model_type": "mistral", "max_position_embeddings": 32768,
                                "sliding_window": 4096}) == 4096
    assert families.max_tokens({"model_type": "mistral", "max_position_embeddings": 32768,
                                "sliding_window": None}) == 32768
    assert families.max_tokens({}) == 512


def test_only_the_inputs_a_model_takes_are_passed(checkpoint):
    """DistilBERT's call takes no token_type_ids: a tokenizer that returns them (BERT's) must not break it."""
    source = model_source.ModelSource(checkpoint("distilbert"), "m")
    tokenizer = model_loading.load_tokenizer(source)
    model = model_loading.load_model(source)
    plain = tokenizer("The [MASK] sat.", return_tensors="np")
    with_types = tokenizer("The [MASK] sat.", return_tensors="np", return_token_type_ids=True)
    assert "token_type_ids" in with_types and "token_type_ids" not in plain
    np.testing.assert_array_equal(model_loading.forward(model, with_types)[0], model_loading.forward(model, plain)[0])


@pytest.mark.parametrize("family", FAMILIES)
def test_the_hub_download_fetches_every_tokenizer_file(family, checkpoint):
    """What save_pretrained writes for each family's tokenizer is in the Hub download's allow_patterns."""
    patterns = model_source.TOKENIZER_FILES + model_source.WEIGHT_FILES + [model_source.SHARD_PATTERN]
    files = set(os.listdir(checkpoint(family))) - {"generation_config.json"}  # not needed: the tool never generates
    assert [name for name in files if not any(fnmatch.fnmatch(name, p) for p in patterns)] == []
    assert fnmatch.fnmatch("model-00001-of-00002.safetensors", model_source.SHARD_PATTERN)


# ---- the run object's other features in every family (queries and keys, corpus mode, words, rollout) ----

QUERY_KEY_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "albert")


@pytest.mark.parametrize("family", QUERY_KEY_FAMILIES)
def test_queries_and_keys_give_every_heads_attention(family, checkpoint):
    """softmax(q k^T / sqrt(d)) = the attention the family's own forward pass gave, on every head."""
    import query_key

    run = mask.explain(MASKED_TEXT, model=checkpoint(family))
    layers, heads, n, _ = run.attentions.shape
    for layer in range(1, layers + 1):
        for head in range(1, heads + 1):
            queries, keys = run.query_key(layer, head)
            assert queries.shape == keys.shape and queries.shape[0] == n
            np.testing.assert_allclose(query_key.attention_from(queries, keys), run.attentions[layer - 1, head - 1],
                                       atol=1e-5, rtol=0)
    assert json.loads(re.search(r'id="data">(.*?)</script>', run.viewer_html(), re.S).group(1))["query_key"]


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in QUERY_KEY_FAMILIES])
def test_families_without_plain_queries_and_keys_say_so(family, checkpoint):
    """MPNet, DeBERTa (position terms), MobileBERT (bottlenecks) and causal LMs: one line, and a page without them."""
    from errors import UserError

    run = mask.explain(text_for(family), model=checkpoint(family))
    with pytest.raises(UserError, match=r"^Queries and keys of \S+ models are not available yet"):
        run.query_key(1, 1)
    assert json.loads(re.search(r'id="data">(.*?)</script>', run.viewer_html(), re.S).group(1))["query_key"] is None


CORPUS_LINES = ["the cat sat on the mat .", "a dog ran .", "she picked up some bread and milk from the store .",
                "it was big !", "the turtle slowly moved across the road , then the cat sat on the mat ."]


@pytest.mark.parametrize("family", ["roberta", "distilbert", "deberta-v2", "gpt2", "opt", "mistral"])
def test_corpus_mode_equals_single_runs_in_each_family(family, checkpoint, tmp_path):
    """Padded batches (lengths mixed, batch size 2) give each sentence the scores of its run alone."""
    import attention_run
    import patterns

    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS_LINES) + "\n", encoding="utf-8")
    model_dir = checkpoint(family)
    run = call_main(["--corpus", str(path), "--model", model_dir, "--output-dir", str(tmp_path / "out"),
                     "--batch-size", "2", "--save", str(tmp_path / "c.npz")])
    assert run.status == 0, run
    saved = np.load(tmp_path / "c.npz", allow_pickle=False)
    assert len(set(saved["token_counts"].tolist())) >= 3  # really different lengths, padded together
    for index, text in enumerate(saved["sentences"].tolist()):
        alone = attention_run.prepare(text, model_dir, require_mask=False).run()
        for p, name in enumerate(patterns.PATTERNS):
            np.testing.assert_allclose(saved["pattern_scores"][index, p], alone.patterns[name], atol=2e-5,
                                       err_msg=f"{name}: {text}")


@pytest.mark.parametrize("family", ["roberta", "albert", "gpt2"])
def test_words_and_rollout_in_each_family(family, checkpoint, tmp_path):
    """--words merges the family's own pieces ("unknowingly" is split), --rollout and --save follow the words."""
    out = tmp_path / "out"
    run = call_main([text_for(family) + " unknowingly", "--model", checkpoint(family), "--words", "--rollout",
                     "--output-dir", str(out), "--save", str(tmp_path / "run.npz")])
    assert run.status == 0, run
    saved = np.load(tmp_path / "run.npz", allow_pickle=False)
    tokens = saved["tokens"].tolist()
    assert "unknowingly" in tokens and not any(raw_markers(token) for token in tokens), tokens
    n = len(tokens)
    assert saved["attentions"].shape[-2:] == (n, n) and saved["rollout"].shape == (n, n)
    np.testing.assert_allclose(saved["rollout"].sum(axis=-1), 1, atol=1e-5)
    position = saved["mask_positions"].tolist()[0]
    if family in CAUSAL:
        assert position == n - 1
    else:  # the mask's word position, though pieces before it were merged
        assert tokens[position] in ("[MASK]", "<mask>") and payload(out / "attention.html")["tokens"] == tokens
    assert (out / "Attention_Rollout.png").exists()


def test_a_model_that_fails_to_load_gets_its_one_line_only(checkpoint, tmp_path):
    """The notes a text earns ("reading [MASK] as <mask>") wait until the model has loaded: a failure is one line."""
    model_dir = tmp_path / "roberta"
    shutil.copytree(checkpoint("roberta", "safetensors"), model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["num_hidden_layers"] += 1  # the weights hold one layer fewer than the config says
    (model_dir / "config.json").write_text(json.dumps(config))
    run = call_main(["The cat sat on the [MASK].", "--model", str(model_dir), "--output-dir", str(tmp_path / "out")])
    line = assert_one_line_failure(run)
    assert "layers" in line and not line.startswith("Note:"), line

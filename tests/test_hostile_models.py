"""
Hostile and broken model folders in every kind of family (issue 17, items 3-6): config
values transformers rejects late, tokenizers that don't fit their model, configs too big
or too deep to parse, and sizes in config.json that the weights on disk don't have (memory
bombs). Each is refused in one line, before anything big is allocated. The tiny models are
copied and damaged; nothing here touches the network.
"""

import json
import os
import shutil

import pytest
from conftest import assert_one_line_failure, call_main

MASKED_TEXT = "The cat sat on the [MASK]."
CAUSAL_TEXT = "The cat sat on the"

# family: (weights, the config key of its activation, of its layer count)
FAMILIES = {
    "bert": ("h5", "hidden_act", "num_hidden_layers"),
    "distilbert": ("h5", "activation", "n_layers"),
    "roberta": ("safetensors", "hidden_act", "num_hidden_layers"),
    "albert": ("safetensors", "hidden_act", "num_hidden_groups"),
    "gpt2": ("safetensors", "activation_function", "n_layer"),
    "xglm": ("h5", "activation_function", "num_layers"),
}


@pytest.fixture(scope="session")
def family_models(tmp_path_factory):
    """One tiny checkpoint per family of FAMILIES, built on first use: family -> folder."""
    from tiny_models import build_model_dir

    root, built = tmp_path_factory.mktemp("hostile_families"), {}

    def get(family):
        if family not in built:
            built[family] = build_model_dir(str(root / family), family, weights=FAMILIES[family][0], seed=7)
        return built[family]

    return get


def text_for(family):
    if family in ("gpt2", "xglm"):
        return CAUSAL_TEXT
    return MASKED_TEXT.replace("[MASK]", "<mask>") if family == "roberta" else MASKED_TEXT  # no "reading" note


def edited_copy(source, tmp_path, name, edit):
    """A copy of the model folder `source` whose JSON file `name` is edit(data) (edit changes data in place)."""
    target = str(tmp_path / "model")
    shutil.copytree(source, target)
    path = os.path.join(target, name)
    with open(path) as file:
        data = json.load(file)
    edit(data)
    with open(path, "w") as file:
        json.dump(data, file)
    return target


def damaged(source, tmp_path, **changes):
    """A copy of `source` with config.json changed (a value of None removes the key)."""

    def change(config):
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value

    return edited_copy(source, tmp_path, "config.json", change)


def run(model_dir, text, tmp_path):
    return call_main([text, "--model", model_dir, "--output-dir", str(tmp_path / "out"), "--no-html"])


def refused(model_dir, text, tmp_path):
    result = run(model_dir, text, tmp_path)
    line = assert_one_line_failure(result)
    assert result.stdout == ""
    return line


# ---------------------------------------------------------------------------------------------------------------
# Item 3: config values transformers rejects late


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("value, expected", [
    ("evil", "can't be used: \"function evil not found in ACT2FN mapping"),
    (5, "is 5, not the name of an activation function."),
    ([1], "is [1], not the name of an activation function."),
])
def test_an_unknown_activation_is_refused_in_one_line(family, value, expected, family_models, tmp_path):
    key = FAMILIES[family][1]
    line = refused(damaged(family_models(family), tmp_path, **{key: value}), text_for(family), tmp_path)
    assert expected in line and "config.json" in line, line


@pytest.mark.parametrize("changes, expected", [
    ({"hidden_dropout_prob": 2}, "hidden_dropout_prob is 2, not a probability (0 to 1)."),
    ({"attention_probs_dropout_prob": "x"}, "attention_probs_dropout_prob is 'x', not a probability"),
    ({"id2label": 5}, "can't be used: Argument id2label should be a dictionary."),
    ({"label2id": [1]}, "can't be used: Argument label2id should be a dictionary."),
    ({"problem_type": "x"}, "can't be used: The config parameter `problem_type` was not understood"),
    ({"layer_norm_eps": "x"}, "can't be used:"),  # refused by the TF class when it is built
])
def test_config_values_transformers_rejects_are_one_line(changes, expected, tiny_h5, tmp_path):
    line = refused(damaged(tiny_h5, tmp_path, **changes), MASKED_TEXT, tmp_path)
    assert expected in line and "config.json" in line, line
    assert "weights" not in line  # the config's fault, not the weights'


def test_gpt2_dropout_of_its_own_name(family_models, tmp_path):
    line = refused(damaged(family_models("gpt2"), tmp_path, attn_pdrop=2.5), CAUSAL_TEXT, tmp_path)
    assert "attn_pdrop is 2.5, not a probability" in line, line


# ---------------------------------------------------------------------------------------------------------------
# Item 4: tokenizers that don't fit their model


def vocab_txt_only(source, tmp_path, edit, declared=True):
    """A copy of a BERT folder whose tokenizer is read from vocab.txt (no tokenizer.json), edited."""
    target = str(tmp_path / "model")
    shutil.copytree(source, target)
    os.remove(os.path.join(target, "tokenizer.json"))
    path = os.path.join(target, "vocab.txt")
    with open(path) as file:
        lines = file.read().splitlines()
    lines = edit(lines)
    with open(path, "w") as file:
        file.write("".join(line + "\n" for line in lines))
    if not declared:  # an older checkpoint: tokenizer_config.json places no token
        config_path = os.path.join(target, "tokenizer_config.json")
        with open(config_path) as file:
            config = json.load(file)
        config.pop("added_tokens_decoder", None)
        with open(config_path, "w") as file:
            json.dump(config, file)
    return target


VOCAB_EDITS = [
    ("extra-lines", lambda lines: lines + ["zebra", "giraffe"], "it has 96 tokens, but config.json says the model "
                                                                "knows 94 (vocab_size)."),
    ("empty", lambda lines: [], "can't be used: its vocabulary is empty."),
    ("no-unk", lambda lines: [line for line in lines if line != "[UNK]"],
     "can't be used: its vocabulary has no [UNK] token, which every unknown word becomes."),
    ("no-mask", lambda lines: [line for line in lines if line != "[MASK]"],
     "tokenizer_config.json gives [MASK] the id 4, its vocabulary 93"),
]


@pytest.mark.parametrize("edit, expected", [case[1:] for case in VOCAB_EDITS], ids=[case[0] for case in VOCAB_EDITS])
def test_a_damaged_vocab_txt_is_refused_before_the_model_runs(edit, expected, tiny_h5, tmp_path):
    line = refused(vocab_txt_only(tiny_h5, tmp_path, edit), MASKED_TEXT, tmp_path)
    assert line.startswith(f"The tokenizer of {tmp_path / 'model'}") and expected in line, line


def test_a_vocab_txt_without_its_mask_is_refused_even_with_no_ids_declared(tiny_h5, tmp_path):
    """Without the line, every id after [MASK] moves down one: the fill-ins would be wrong, silently."""
    model_dir = vocab_txt_only(tiny_h5, tmp_path, lambda lines: [line for line in lines if line != "[MASK]"],
                               declared=False)
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    assert "its mask token [MASK] is not in its vocabulary (vocab.txt)" in line, line


def test_an_intact_vocab_txt_still_reads(tiny_h5, tmp_path):
    for declared in (True, False):
        model_dir = vocab_txt_only(tiny_h5, tmp_path / str(declared), lambda lines: lines, declared=declared)
        result = run(model_dir, MASKED_TEXT, tmp_path / str(declared))
        assert result.status == 0 and len(result.stdout.splitlines()) == 3, result


def test_a_mask_token_missing_from_tokenizer_json_is_refused(tiny_h5, tmp_path):
    """[MASK] taken out of tokenizer.json: re-added, it gets the id of another token."""

    def drop_mask(data):
        data["added_tokens"] = [token for token in data["added_tokens"] if token["content"] != "[MASK]"]
        del data["model"]["vocab"]["[MASK]"]

    model_dir = edited_copy(tiny_h5, tmp_path, "tokenizer.json", drop_mask)
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    assert "[MASK]" in line and ("its vocabulary also gives" in line or "tokenizer_config.json gives" in line), line


@pytest.mark.parametrize("family", ["bert", "roberta", "albert", "gpt2"])
def test_added_tokens_past_vocab_size_are_refused_when_the_text_uses_them(family, family_models, tiny_h5, tmp_path):
    """WordPiece, byte-level BPE and SentencePiece tokenizers with tokens the embedding matrix lacks."""
    from transformers import AutoTokenizer

    source = tiny_h5 if family == "bert" else family_models(family)
    model_dir = str(tmp_path / "model")
    shutil.copytree(source, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.add_tokens(["zebra", "giraffe"])
    tokenizer.save_pretrained(model_dir)
    with open(os.path.join(model_dir, "config.json")) as file:
        vocab_size = json.load(file)["vocab_size"]
    text = text_for(family).replace("cat", "zebra")
    line = refused(model_dir, text, tmp_path)
    assert line == (f"The tokenizer of {model_dir} doesn't fit the model: it reads 'zebra' as the id {vocab_size:,}, "
                    f"past the {vocab_size:,} tokens config.json says the model knows (vocab_size)."), line
    result = run(model_dir, text_for(family), tmp_path)  # a text without them runs: the tokens are never used
    assert result.status == 0, result


def test_a_larger_tokenizer_json_is_refused(family_models, tmp_path):
    """A byte-level BPE vocabulary with more tokens than the model has rows."""
    vocab = {}

    def add_tokens(data):
        vocab.update(data["model"]["vocab"])
        for n in range(3):
            data["model"]["vocab"][f"Ġzebra{n}"] = vocab[f"Ġzebra{n}"] = len(vocab)

    model_dir = edited_copy(family_models("gpt2"), tmp_path, "tokenizer.json", add_tokens)
    line = refused(model_dir, CAUSAL_TEXT, tmp_path)
    assert f"doesn't fit the model: it has {len(vocab)} tokens, but config.json says the model knows 501" in line, line


def test_a_tokenizer_smaller_than_vocab_size_is_fine(tmp_path):
    """Real models pad their embedding matrix past the tokenizer (vocab_size 30522 for ~30,000 tokens ...)."""
    from tiny_models import build_model_dir

    model_dir = build_model_dir(str(tmp_path / "padded"), "roberta", weights="safetensors", vocab_size=600, seed=3)
    result = run(model_dir, MASKED_TEXT, tmp_path)
    assert result.status == 0 and len(result.stdout.splitlines()) == 3, result


# ---------------------------------------------------------------------------------------------------------------
# Item 5: configs too big or too deep to parse


def test_a_config_json_over_the_limit_is_refused_before_parsing(tiny_h5, tmp_path):
    import model_source

    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_h5, model_dir)
    path = os.path.join(model_dir, "config.json")
    with open(path) as file:
        config = json.load(file)
    with open(path, "w") as file:  # valid JSON: only its size is wrong
        file.write(json.dumps(config) + " " * model_source.MAX_CONFIG_BYTES)
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    size = os.path.getsize(path)
    assert line == (f"Cannot read {path}: it is {size:,} bytes; a model's is far smaller (this tool reads at most "
                    f"{model_source.MAX_CONFIG_BYTES:,})"), line


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_json_nested_100000_levels_is_one_line(name, tiny_safetensors, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_safetensors, model_dir)
    if name != "config.json":  # the index is read only when there is no model.safetensors
        os.remove(os.path.join(model_dir, "model.safetensors"))
    with open(os.path.join(model_dir, name), "w") as file:
        file.write("[" * 100_000 + "]" * 100_000)
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    assert line == f"Cannot read {os.path.join(model_dir, name)}: it is nested too deeply to be a model's", line


def test_nesting_in_tokenizer_config_json_is_one_line(tiny_h5, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_h5, model_dir)
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as file:
        file.write('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert refused(model_dir, MASKED_TEXT, tmp_path).startswith(f"Cannot load the tokenizer of {model_dir}")


def test_a_tokenizer_file_over_the_limit_is_refused_before_reading(tiny_h5, tmp_path, monkeypatch):
    import model_source

    monkeypatch.setattr(model_source, "MAX_TOKENIZER_BYTES", 1000)  # a real-size bomb would take 128 MiB of disk
    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_h5, model_dir)
    path = os.path.join(model_dir, "tokenizer.json")
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    assert line == (f"Cannot read {path}: it is {os.path.getsize(path):,} bytes; this tool reads tokenizer files of "
                    "at most 1,000."), line


# ---------------------------------------------------------------------------------------------------------------
# Item 6: sizes the weights on disk don't have (memory bombs in small folders)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_config_with_100000_layers_is_refused_before_building(family, family_models, tmp_path):
    """Before: bert grew past 1.2 GB in 45 s with no output, building 100,000 layers."""
    key = FAMILIES[family][2]
    model_dir = damaged(family_models(family), tmp_path, **{key: 100_000})
    where = "tf_model.h5" if FAMILIES[family][0] == "h5" else "model.safetensors"
    held = 1 if family == "albert" else 2  # ALBERT's layers share one group of weights
    assert refused(model_dir, text_for(family), tmp_path) == (
        f"config.json of {model_dir} says 100,000 layers ({key}); {where} holds {held}.")


@pytest.mark.parametrize("family", FAMILIES)
def test_a_vocab_size_of_40_million_is_refused_before_building(family, family_models, tmp_path):
    model_dir = damaged(family_models(family), tmp_path, vocab_size=40_000_000)
    line = refused(model_dir, text_for(family), tmp_path)
    # the tokenizer is checked first only when it is bigger: here the config's vocab_size is the wrong one
    assert line.startswith(f"config.json of {model_dir} says vocab_size 40,000,000; the word embeddings in "), line


def test_a_hidden_size_the_embeddings_lack_is_refused(family_models, tmp_path):
    model_dir = damaged(family_models("gpt2"), tmp_path, n_embd=4096, n_head=2)
    assert refused(model_dir, CAUSAL_TEXT, tmp_path) == (
        f"config.json of {model_dir} says the embeddings are 4,096 wide; those in model.safetensors are 32.")


def test_an_h5_dataset_claiming_more_than_it_stores_is_refused(tiny_h5, tmp_path):
    """
    A 200 KB tf_model.h5 whose datasets claim (3e7, 32) took 11.6 GB and then ran on zeros;
    here a claim of (300000, 32) (38 MB) keeps the test cheap even where the check is missing.
    """
    import h5py

    rows = 300_000
    model_dir = damaged(tiny_h5, tmp_path, vocab_size=rows)
    path = os.path.join(model_dir, "tf_model.h5")
    with h5py.File(path, "r+") as file:
        names = []
        file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) and (
            "word_embeddings" in name or name.endswith("predictions/bias:0")) else None)
        for name in names:
            shape = (rows, 32) if "word_embeddings" in name else (rows,)
            del file[name]
            file.create_dataset(name, shape=shape, dtype="f4")  # no data written: nothing allocated on disk
    assert os.path.getsize(path) < 1_000_000
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    assert line.startswith(f"Cannot read {path}: ") and "claims (300000, 32) (38,400,000 bytes) but stores 0" in line


def test_a_safetensors_header_claiming_huge_shapes_is_refused(tiny_safetensors, tmp_path):
    model_dir = damaged(tiny_safetensors, tmp_path, vocab_size=30_000_000)
    path = os.path.join(model_dir, "model.safetensors")
    with open(path, "rb") as file:
        data = file.read()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["bert.embeddings.word_embeddings.weight"]["shape"] = [30_000_000, 32]
    encoded = json.dumps(header).encode()
    with open(path, "wb") as file:
        file.write(len(encoded).to_bytes(8, "little") + encoded + data[8 + size:])
    assert refused(model_dir, MASKED_TEXT, tmp_path).startswith(f"Cannot read {path}: ")


def test_a_stored_tensor_of_another_size_is_refused_before_it_is_read(tiny_safetensors, tmp_path):
    model_dir = damaged(tiny_safetensors, tmp_path, intermediate_size=1_000_000)
    assert refused(model_dir, MASKED_TEXT, tmp_path).endswith(
        "model.safetensors holds bert.encoder.layer.0.intermediate.dense.weight as (37, 32); the config asks for "
        "(32, 1000000).")


def test_missing_weights_past_the_checkpoint_size_are_refused_while_building(tiny_safetensors, tmp_path,
                                                                               monkeypatch):
    """A config that asks for weights the file lacks stops before they are all made (as zeros)."""
    from safetensors.numpy import load_file, save_file

    import model_loading

    monkeypatch.setattr(model_loading, "MISSING_BYTES_MARGIN", 0)  # a tiny model's weights are well under 64 MiB
    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_safetensors, model_dir)
    path = os.path.join(model_dir, "model.safetensors")
    save_file({key: value for key, value in load_file(path).items() if "embeddings" in key}, path)
    line = refused(model_dir, MASKED_TEXT, tmp_path)
    assert line.startswith("The config asks for weights the checkpoint doesn't hold (bert.encoder.layer."), line


def test_gptj_positions_are_refused_past_what_its_class_builds(tmp_path):
    """TFGPTJAttention builds an n_positions x n_positions table per layer (100,000: 40 GB per layer)."""
    from tiny_models import build_model_dir

    source = build_model_dir(str(tmp_path / "gptj"), "gptj", weights="safetensors", seed=4)
    model_dir = damaged(source, tmp_path, n_positions=5000)
    assert "n_positions is 5,000; this tool reads gptj models of at most 4,096" in refused(
        model_dir, CAUSAL_TEXT, tmp_path)


def test_checkpoints_without_a_head_and_sharded_ones_still_pass_the_size_checks(tiny_encoder, tiny_safetensors,
                                                                                tmp_path):
    from safetensors.numpy import load_file, save_file

    result = run(tiny_encoder, MASKED_TEXT, tmp_path / "encoder")
    assert result.status == 0 and "no masked-LM head" in result.stderr, result
    model_dir = str(tmp_path / "sharded")
    shutil.copytree(tiny_safetensors, model_dir)
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    os.remove(os.path.join(model_dir, "model.safetensors"))
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for shard, names in shards.items():
        save_file({name: tensors[name] for name in names}, os.path.join(model_dir, shard))
    with open(os.path.join(model_dir, "model.safetensors.index.json"), "w") as file:
        json.dump({"weight_map": {name: shard for shard, names in shards.items() for name in names}}, file)
    result = run(model_dir, MASKED_TEXT, tmp_path / "sharded")
    assert result.status == 0 and len(result.stdout.splitlines()) == 3, result

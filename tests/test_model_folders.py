"""
Untrusted model folders: broken, foreign or hostile checkpoints are refused in one
line, pickles are never opened, and a model's own code never runs.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_failure, call_main, diagram_names

TEXT = "The turtle slowly moved across the [MASK]."


def copy_model(source, target, weights=True):
    shutil.copytree(source, target, ignore=None if weights else shutil.ignore_patterns("*.h5", "*.safetensors"))
    return target


def edit_config(directory, **changes):
    path = os.path.join(directory, "config.json")
    with open(path) as file:
        config = json.load(file)
    with open(path, "w") as file:
        json.dump({**config, **changes}, file)


def write(directory, name, data):
    with open(os.path.join(directory, name), "wb" if isinstance(data, bytes) else "w") as file:
        file.write(data)


class _Unpickled:
    """Unpickling this runs code (it writes a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('unpickled')",)


def make_safetensors_dir(model, d, tensors):
    from safetensors.numpy import save_file

    copy_model(model, d, weights=False)
    save_file(tensors, os.path.join(d, "model.safetensors"))


def _truncated_safetensors(model, d):
    make_safetensors_dir(model, d, {"bert.embeddings.word_embeddings.weight": np.ones((100, 32), np.float32)})
    path = os.path.join(d, "model.safetensors")
    with open(path, "rb") as file:
        data = file.read()
    write(d, "model.safetensors", data[: len(data) // 2])


def _empty_hdf5(model, d):
    import h5py

    copy_model(model, d, weights=False)
    h5py.File(os.path.join(d, "tf_model.h5"), "w").close()


def _drop_mask_token(model, d):
    copy_model(model, d)
    for name in ["tokenizer_config.json", "special_tokens_map.json"]:
        with open(os.path.join(d, name)) as file:
            data = json.load(file)
        data["mask_token"] = None
        write(d, name, json.dumps(data))


BAD_MODELS = [
    ("t5-config", lambda m, d: (copy_model(m, d), edit_config(d, model_type="t5")),
     "can't be used: model_type t5 is an encoder-decoder (sequence-to-sequence) model; this tool reads masked "
     "language models (BERT, RoBERTa ...) and causal ones (GPT-2 ...)."),
    ("bart-config", lambda m, d: (copy_model(m, d), edit_config(d, model_type="bart")),
     "model_type bart is an encoder-decoder (sequence-to-sequence) model"),
    ("clip-config", lambda m, d: (copy_model(m, d), edit_config(d, model_type="clip")),
     "model_type clip is a model with no TensorFlow masked-LM or causal-LM class in transformers"),
    ("llama-config", lambda m, d: (copy_model(m, d), edit_config(d, model_type="llama")),
     "model_type llama is a model with no TensorFlow class in transformers"),
    ("no-model-type", lambda m, d: (copy_model(m, d), edit_config(d, model_type=None)),
     "is not a model this tool can read: its config.json has no model_type."),
    ("config-not-json", lambda m, d: (copy_model(m, d), write(d, "config.json", "{model_type: bert")),
     "config.json: Expecting property name"),
    ("config-is-a-list", lambda m, d: (copy_model(m, d), write(d, "config.json", '["bert"]')),
     "is not a model this tool can read: its config.json is not a JSON object."),
    ("config-not-utf8", lambda m, d: (copy_model(m, d), write(d, "config.json", b'{"model_type": "\xff"}')),
     "Cannot read"),
    ("heads-do-not-divide", lambda m, d: (copy_model(m, d), edit_config(d, num_attention_heads=3)),
     "hidden_size 32 is not a multiple of num_attention_heads 3."),
    ("length-not-a-number", lambda m, d: (copy_model(m, d), edit_config(d, max_position_embeddings="abc")),
     "max_position_embeddings is 'abc', not a positive whole number."),
    ("zero-layers", lambda m, d: (copy_model(m, d), edit_config(d, num_hidden_layers=0)),
     "num_hidden_layers is 0, not a positive whole number."),
    ("more-layers-than-weights", lambda m, d: (copy_model(m, d), edit_config(d, num_hidden_layers=3)),
     "says 3 layers (num_hidden_layers); tf_model.h5 holds 2."),
    ("vocab-size-mismatch", lambda m, d: (copy_model(m, d), edit_config(d, vocab_size=7)),
     "doesn't fit the model: it has 94 tokens, but config.json says the model knows 7 (vocab_size)."),
    ("h5-garbage", lambda m, d: (copy_model(m, d, weights=False), write(d, "tf_model.h5", os.urandom(4096))),
     "tf_model.h5: Unable to synchronously open file (file signature not found)"),
    ("h5-empty", _empty_hdf5, "don't fit its config: tf_model.h5 lacks"),
    ("safetensors-garbage",
     lambda m, d: (copy_model(m, d, weights=False), write(d, "model.safetensors", os.urandom(4096))),
     "model.safetensors: Error while deserializing header"),
    ("safetensors-truncated", _truncated_safetensors, "model.safetensors: Error while deserializing header"),
    ("safetensors-missing-weights",
     lambda m, d: make_safetensors_dir(m, d, {"unrelated": np.zeros(3, np.float32)}),
     "don't fit its config: the safetensors weights lack"),
    ("safetensors-wrong-shape",
     lambda m, d: make_safetensors_dir(m, d, {"bert.embeddings.word_embeddings.weight": np.zeros((5, 32), np.float32),
                                              "cls.predictions.bias": np.zeros(5, np.float32)}),
     "says vocab_size 94; the word embeddings in model.safetensors have 5 rows."),
    ("no-weights", lambda m, d: copy_model(m, d, weights=False), "has no weights (tf_model.h5 or model.safetensors)."),
    ("no-tokenizer", lambda m, d: (copy_model(m, d), *[os.remove(os.path.join(d, f)) for f in
                                                       ["vocab.txt", "tokenizer.json"]]),
     "Cannot load the tokenizer of"),
    ("tokenizer-json-garbage", lambda m, d: (copy_model(m, d), write(d, "tokenizer.json", "{1: 2")),
     "Cannot load the tokenizer of"),
    ("no-mask-token", _drop_mask_token, "has no mask token."),
]


@pytest.mark.parametrize("build, expected", [case[1:] for case in BAD_MODELS], ids=[case[0] for case in BAD_MODELS])
def test_broken_or_foreign_model_is_refused_in_one_line(build, expected, tiny_h5, tmp_path):
    model_dir = str(tmp_path / "model")
    build(tiny_h5, model_dir)
    run = call_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    line = assert_one_line_failure(run)
    assert expected in line, line
    assert run.stdout == ""
    assert not (tmp_path / "out").exists() or diagram_names(tmp_path / "out") == []


def test_pickled_weights_are_never_opened(tiny_h5, tmp_path):
    marker = tmp_path / "unpickled.txt"
    model_dir = copy_model(tiny_h5, str(tmp_path / "model"), weights=False)
    write(model_dir, "pytorch_model.bin", pickle.dumps(_Unpickled(str(marker))))
    run = call_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out")])
    assert assert_one_line_failure(run) == (
        f"{model_dir} only has pytorch_model.bin, a pickle this tool will not open; "
        "convert it to model.safetensors (or tf_model.h5)."
    )
    assert not marker.exists()
    # and the marker mechanism works: loading the file for real would have run it
    with open(os.path.join(model_dir, "pytorch_model.bin"), "rb") as file:
        pickle.load(file)
    assert marker.exists()


# A model's own Python file: importing it writes a marker
REMOTE_CODE = (
    "open({marker!r}, 'a').write(__name__ + '\\n')\n"
    "from transformers import BertTokenizerFast as EvilTokenizer\n"
)


@pytest.mark.parametrize("tokenizer_class", ["EvilTokenizer", "BertTokenizer"])
def test_auto_map_never_runs_the_models_code(tokenizer_class, tiny_h5, tmp_path, monkeypatch):
    marker = tmp_path / "remote-code-ran.txt"
    model_dir = copy_model(tiny_h5, str(tmp_path / "model"))
    for module in ["tokenization_evil", "configuration_evil", "modeling_evil"]:
        write(model_dir, module + ".py", REMOTE_CODE.format(marker=str(marker)))
    auto_map = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", "tokenization_evil.EvilTokenizer"]}
    edit_config(model_dir, auto_map={**auto_map, "AutoConfig": "configuration_evil.EvilConfig",
                                     "AutoModelForMaskedLM": "modeling_evil.EvilModel"})
    with open(os.path.join(model_dir, "tokenizer_config.json")) as file:
        tokenizer_config = json.load(file)
    write(model_dir, "tokenizer_config.json",
          json.dumps({**tokenizer_config, "tokenizer_class": tokenizer_class, "auto_map": auto_map}))

    import transformers

    real, seen = transformers.AutoTokenizer.from_pretrained, []

    def from_pretrained(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    run = call_main([TEXT, "--model", model_dir, "--output-dir", str(tmp_path / "out"), "--no-html"])
    assert seen == [False]
    assert not marker.exists(), marker.read_text()
    if tokenizer_class == "EvilTokenizer":  # only the model's own code could build it: refused
        assert "contains custom code" in assert_one_line_failure(run)
    else:  # the standard tokenizer: the auto_map is ignored and the run works
        assert run.status == 0 and len(run.stdout.splitlines()) == 3, run




@pytest.mark.parametrize("name", ["config.json", "tf_model.h5", "model.safetensors", "tokenizer_config.json"])
def test_a_fifo_among_the_model_files_is_refused_not_waited_on(name, tiny_h5, tmp_path):
    """Opening a FIFO waits for a writer forever: a model folder's files must be regular files."""
    model_dir = copy_model(tiny_h5, str(tmp_path / "model"))
    if os.path.exists(os.path.join(model_dir, name)):
        os.remove(os.path.join(model_dir, name))
    os.mkfifo(os.path.join(model_dir, name))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "mask.py"), TEXT, "--model", model_dir,
                             "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, ""), result
    assert result.stderr == f"Cannot read {os.path.join(model_dir, name)}: not a regular file.\n"

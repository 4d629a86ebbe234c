"""
Shared fixtures: tiny BERT checkpoints built on disk once per session, and a way
to run the command line in-process. Nothing here touches the network.
"""

import io
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

# Never reach the Hub from a test, even on a machine that could
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tiny_bert import build_bert_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory):
    """A 2-layer, 2-head BERT masked LM saved as tf_model.h5."""
    return build_bert_dir(str(tmp_path_factory.mktemp("tiny_h5")), weights="h5", seed=1)


@pytest.fixture(scope="session")
def tiny_safetensors(tmp_path_factory):
    """The same architecture, saved only as PyTorch-format model.safetensors (3 layers x 4 heads)."""
    return build_bert_dir(str(tmp_path_factory.mktemp("tiny_st")), weights="safetensors", layers=3, heads=4, seed=2)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """An encoder-only checkpoint (no masked-LM head), safetensors."""
    return build_bert_dir(str(tmp_path_factory.mktemp("tiny_enc")), weights="safetensors", mlm_head=False, seed=3)


class Run:
    def __init__(self, status, stdout, stderr):
        self.status, self.stdout, self.stderr = status, stdout, stderr

    def __repr__(self):
        return f"Run(status={self.status!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def run_main():
    """Call mask.main(argv) in-process; returns its exit status, stdout and stderr."""
    import mask

    def run(argv, stdin=""):
        stdout, stderr = io.StringIO(), io.StringIO()
        status = 0
        # A patch context of its own: undoing it must not undo the test's chdir or environment
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "stdin", io.StringIO(stdin))
            patch.setattr(sys, "stdout", stdout)
            patch.setattr(sys, "stderr", stderr)
            try:
                mask.main(argv)
            except SystemExit as exit:
                status = exit.code
        return Run(status, stdout.getvalue(), stderr.getvalue())

    return run


def model_outputs(model_dir, text):
    """What the model itself says for `text`: (tokens, logits (seq, vocab), attentions (L, H, seq, seq))."""
    import numpy as np
    import tensorflow as tf
    from transformers import AutoTokenizer, TFBertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if os.path.exists(os.path.join(model_dir, "tf_model.h5")):
        model = TFBertForMaskedLM.from_pretrained(model_dir)
    else:  # transformers' own safetensors path needs torch: load the tensors with NumPy here
        from safetensors.numpy import load_file
        from transformers import BertConfig
        from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

        model = TFBertForMaskedLM(BertConfig.from_pretrained(model_dir))
        load_pytorch_state_dict_in_tf2_model(model, load_file(os.path.join(model_dir, "model.safetensors")))
    inputs = tokenizer(text, return_tensors="tf")
    result = model(inputs, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    attentions = np.stack([a.numpy()[0] for a in result.attentions])
    return tokenizer, tokens, result.logits.numpy()[0], attentions, tf

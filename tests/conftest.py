"""
Shared fixtures and helpers: tiny BERT checkpoints built on disk once per session,
one way to run the command line in-process (`call_main`, or the `run_main`
fixture), and one assertion for the tool's promise about failures
(`assert_one_line_failure`). Nothing here touches the network.
"""

import io
import os
import sys

import pytest
from PIL import Image

# Never reach the Hub from a test, even on a machine that could
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tiny_bert import build_bert_dir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Re-executes Python with SIGINT, SIGTERM and SIGHUP at their defaults, as a terminal starts
# it: the test runner may run as a background job (SIGINT ignored) or under nohup (SIGHUP
# ignored), an ignored signal stays ignored across exec, and mask.py keeps it ignored.
_DEFAULT_SIGNALS = ("import os, signal, sys\n"
                    "for name in ('SIGINT', 'SIGTERM', 'SIGHUP'):\n"
                    "    signal.signal(getattr(signal, name), signal.SIG_DFL)\n"
                    "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")


def with_default_signals(*args):
    """`python *args` as a command line whose signals are a terminal's: for tests that send it one."""
    return [sys.executable, "-c", _DEFAULT_SIGNALS, *args]


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


@pytest.fixture(scope="session")
def many_heads(tmp_path_factory):
    """6 layers x 12 heads: a run writes 72 diagrams, long enough to interrupt."""
    return build_bert_dir(str(tmp_path_factory.mktemp("many_heads")), layers=6, heads=12, hidden=48, seed=5)


class Run:
    """What one command-line run gave: exit status, stdout and stderr."""

    def __init__(self, status, stdout, stderr):
        self.status, self.stdout, self.stderr = status, stdout, stderr

    def __repr__(self):
        return f"Run(status={self.status!r}, stdout={self.stdout!r}, stderr={self.stderr!r})"


def call_main(argv, stdin=""):
    """
    mask.main(argv) in-process, with its own stdin (a string or a file object),
    stdout and stderr; any exception but SystemExit propagates (a traceback fails the test).
    """
    import mask

    stdout, stderr = io.StringIO(), io.StringIO()
    status = 0
    # A patch context of its own: undoing it must not undo the test's chdir or environment
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdin", io.StringIO(stdin) if isinstance(stdin, str) else stdin)
        patch.setattr(sys, "stdout", stdout)
        patch.setattr(sys, "stderr", stderr)
        try:
            mask.main(argv)
        except SystemExit as exit:
            status = exit.code
    return Run(status, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def run_main():
    return call_main


def assert_one_line_failure(run, message=None, status=1):
    """
    The tool's promise for bad input: exit `status`, exactly one line on stderr
    (`message`, when given) and no traceback. Returns the line.
    """
    assert run.status == status, run
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run
    if message is not None:
        assert lines[0] == message, run
    return lines[0]


def diagram_names(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("Attention_Layer"))


def leftovers(directory):
    """Temporary files an interrupted or failed write could leave (they are named .NAME.XXXX.part)."""
    return [name for name in os.listdir(directory) if name.endswith(".part") or ".attention-write-test" in name]


def assert_complete_png(path, size=None):
    with Image.open(path) as image:
        image.load()  # decodes every byte: a truncated file raises here
        if size is not None:
            assert image.size == size, path


def side(n_tokens):
    """The side in pixels of a diagram of n tokens."""
    import mask

    return mask.GRID_SIZE * n_tokens + mask.PIXELS_PER_WORD


def fill_ins_parse(stdout, groups, words):
    """True if stdout is exactly the K sentences of each group (prefix + word + suffix), with headers."""
    rest = stdout
    for nth, (prefix, suffix) in enumerate(groups):
        if len(groups) > 1:
            header = f"Mask {nth + 1} of {len(groups)}:\n"
            if not rest.startswith(header):
                return False
            rest = rest[len(header):]
        for _ in range(3):  # mask.K fill-ins
            sentence = next((prefix + w + suffix + "\n" for w in words if rest.startswith(prefix + w + suffix + "\n")),
                            None)
            if sentence is None:
                return False
            rest = rest[len(sentence):]
    return rest == ""


@pytest.fixture(scope="session")
def tiny_h5_words(tiny_h5):
    """The tiny model's tokenizer, and every word it can fill in (longest first)."""
    import model_loading
    import model_source

    tokenizer = model_loading.load_tokenizer(model_source.ModelSource(tiny_h5, tiny_h5))
    words = sorted({tokenizer.decode([i]) for i in range(tokenizer.vocab_size)}, key=len, reverse=True)
    return tokenizer, words


def model_outputs(model_dir, text, text_pair=None):
    """
    What the model itself says for `text` (and `text_pair`: the sentence pair tokenizer(text, text_pair),
    with its segment ids), through transformers' own classes:
    (tokenizer, tokens, logits (seq, vocab), attentions (layers, heads, seq, seq), tf).
    """
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
    inputs = tokenizer(text, text_pair, return_tensors="tf")
    result = model(inputs, output_attentions=True)
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
    attentions = np.stack([a.numpy()[0] for a in result.attentions])
    return tokenizer, tokens, result.logits.numpy()[0], attentions, tf

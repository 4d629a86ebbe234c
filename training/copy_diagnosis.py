#!/usr/bin/env python3
"""Where a copied first guess comes from: the hidden state or the embeddings.

For every cloze sentence whose first fill-in is a word of the sentence itself, print
the copied word's score and the best acceptable answer's, each split into the dot
product of the head's output vector t with the word's (tied) embedding and the output
bias, plus the answer's rank and the cosine of the two words' embeddings.

A copy with nearby embeddings (high cosine) would point at the output layer; a copy
whose embeddings are far apart while t still scores the copied word highest means the
encoder carries that word's identity into the [MASK] position (section 7, V10).

Uses the development set by default, so that the everyday set stays for judging.

Example (from the repository root):
  /tmp/trainenv/bin/python training/copy_diagnosis.py /tmp/runs/v9
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import evaluate_model  # noqa: E402
import train_bundled_model as t  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir", help="folder with weights.safetensors (e.g. bundled_model)")
    ap.add_argument("--cloze", default=str(HERE / "dev_cloze.txt"), help="sentence<TAB>answers file")
    ap.add_argument("--base", default=None, help="MiniLM safetensors (default: the installed package's)")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    model, _ = evaluate_model.load_model(Path(args.export_dir), Path(args.base) if args.base else None)
    tok, vocab = t.make_tokenizer(t.VOCAB, 64)
    inv_vocab = {i: w for w, i in vocab.items()}
    words, bias = model.word_weight().detach(), model.out_bias.detach()       # [V, H], [V]
    items = t.read_cloze(args.cloze)
    print("sentence | copy: t.e + bias | best answer (rank): t.e + bias | cos(e_copy, e_answer)")
    dots = {"copy": [], "answer": [], "cos": []}
    with torch.no_grad():
        for sentence, answers in items:
            ids = torch.tensor([tok.encode(sentence).ids])
            position = ids[0].tolist().index(vocab["[MASK]"])
            hidden = model.encode(ids, torch.ones_like(ids))[0, position]        # [H]
            out = model.head_vector(hidden)                                     # t: [H]
            logits = out @ words.t() + bias
            logits[t.NEVER_FILL] = float("-inf")                                # as fill_mask
            order = logits.argsort(descending=True).tolist()
            first = inv_vocab[order[0]]
            known = [vocab[a] for a in answers if a in vocab]
            if not t.is_copy(first, sentence) or not known:
                continue
            best = min(known, key=order.index)
            c, a = order[0], best
            cos = F.cosine_similarity(words[c], words[a], dim=0).item()
            dots["copy"].append((out @ words[c]).item())
            dots["answer"].append((out @ words[a]).item())
            dots["cos"].append(cos)
            print(f"{sentence} | {first}: {out @ words[c]:.2f} + {bias[c]:.2f} | {inv_vocab[a]} "
                  f"({order.index(a) + 1}): {out @ words[a]:.2f} + {bias[a]:.2f} | {cos:.2f}")
    n = len(dots["cos"])
    if n:
        mean = {k: sum(v) / n for k, v in dots.items()}
        print(f"{n} copies of {len(items)}: mean t.e copy {mean['copy']:.2f}, answer {mean['answer']:.2f}; "
              f"mean cosine of their embeddings {mean['cos']:.2f}")
    else:
        print(f"no copies among {len(items)} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main())

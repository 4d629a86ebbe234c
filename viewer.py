"""Offline interactive attention viewer: one self-contained HTML file.

``write_viewer`` turns a BERT run (tokens, attention weights, optional top-K
mask fill-ins and optional per-pattern head scores) into a single HTML file,
``attention.html`` by convention, that opens from ``file://`` with no network
access at all: the data, CSS and JavaScript are all inline and a
Content-Security-Policy meta tag forbids every fetch.

This module deliberately imports only the standard library and NumPy (no
TensorFlow), so it can be used and tested without loading a model.

Data layout embedded in the page (``<script type="application/json" id="data">``)::

    {
      "version": 1,
      "model": str, "text": str, "tokens": [str, ...],   # n tokens
      "layers": L, "heads": H, "n": n,
      "scale": 1000,                    # stored value = round(attention * 1000)
      "encoding": "base64-uint16le",
      "attention": "<base64>",          # L*H*n*n little-endian uint16, C order
                                        # [layer][head][from][to]
      "predictions": [{"mask_index": int,
                       "candidates": [{"token", "sentence", "probability"}]}],
      "patterns": {name: [[layer, head, score], ...]} | null,  # 1-based

      # Optional fields (added later; a page without them, or with their
      # defaults, looks and behaves exactly as before):
      "prediction_kind": "mask" | "next",
                                        # "mask" (default): fill-ins of each
                                        # [MASK]; "next": a causal model's
                                        # next-token candidates after the
                                        # prompt (one group, mask_index = n-1,
                                        # the highlighted last token)
      "special_tokens": [int, ...],     # 0-based token indices the "hide
                                        # [CLS]/[SEP]" switch hides (sorted,
                                        # unique; [] = switch disabled).
                                        # Hidden columns are dropped and each
                                        # row renormalized to sum to 1.
      "attention_without_special": "<base64>" | null,
                                        # with special_tokens: L*H*m*m uint16le
                                        # (same scale), m = n - len(special),
                                        # the attentions without those rows and
                                        # columns, rows renormalized at full
                                        # precision before rounding
      "segments": [0|1, ...] | null,    # segment id per token (n entries),
                                        # for sentence pairs "A [SEP] B"
      "rollout": "<base64>" | null,     # attention rollout over all layers,
                                        # n*n uint16le like "attention"
                                        # (same scale), [from][to]
      "rollout_without_special": "<base64>" | null,   # m*m, likewise
      "causal": bool,                   # keys after the query are masked in
                                        # the query/key view (default: true
                                        # iff prediction_kind == "next")
      "query_key": null | {             # for the query/key view
        "encoding": "base64-float32le" | "base64-float16le",
        "d": d,                         # size of one head's vectors
        "data": "<base64>"              # L*H*2*n*d floats, C order
      }                                 # [layer][head][0=query,1=key][token][dim]
    }

Rounding to 3 decimals and packing as uint16 keeps 12 layers x 12 heads x
40 x 40 tokens at ~615 kB of base64, well under the 2 MB budget.

``query_key`` is big: 12 x 12 x 2 x 40 x 64 values are 3,932,160 bytes of
base64 as float32 (the default) and 1,966,080 as float16, so the page no
longer fits the 2 MB budget at that size; leave it out for big models.
``attention_without_special`` adds about as much as ``attention`` (553 kB
of base64 at 12 x 12 x 38 x 38), so a BERT page with [CLS]/[SEP] marked is
~1.2 MB at 40 tokens, still within budget.  It is needed: on the bundled
model about a quarter of the values renormalized from 3-decimal values
would show a wrong third decimal (up to 0.99 off where [CLS]/[SEP] take nearly
all the weight).

float32 is the default because float16 is measurably too lossy: on the
bundled model (scores up to ~55) float16 queries and keys move the softmax
by up to 8e-4, i.e. up to 1.2e-3 away from the stored 3-decimal attention,
while float32 stays within the 5e-4 of that rounding.

Safety: text and tokens are data, never markup.  The JSON is embedded with
``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\uXXXX`` escapes, so no
token can close the ``<script>`` element, and the page's JavaScript only ever
puts user strings into the DOM via ``textContent`` / ``setAttribute``.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import outputs

__all__ = [
    "PREDICTION_KINDS",
    "QUERY_KEY_DTYPES",
    "SIZE_BUDGET_BYTES",
    "TEMPLATE_PATH",
    "build_payload",
    "embed_json",
    "render_viewer_html",
    "write_viewer",
]

# The HTML/CSS/JS template; read relative to this file so the module works
# from any working directory.
TEMPLATE_PATH = Path(__file__).resolve().parent / "assets" / "viewer_template.html"

# The only placeholder in the template; it sits inside
# <script type="application/json" id="data">...</script>.
_PLACEHOLDER = "__ATTENTION_DATA_JSON__"

# Stored attention values are integers 0..SCALE (i.e. 3 decimals).
_SCALE = 1000

# Largest page for 12 layers x 12 heads x 40 tokens without query/key vectors (unit-tested): a size a
# course page or an e-mail carries easily
SIZE_BUDGET_BYTES = 2_000_000

# Characters that must not appear raw inside an inline <script> element:
# "<" and ">" (so "</script>" or "<!--" cannot occur), "&" (belt and braces
# for XHTML-ish parsers), and the JS line terminators U+2028/U+2029.
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def embed_json(obj: Any) -> str:
    """Serialise ``obj`` as JSON that is safe to place inside a <script> element.

    ``json.dumps`` never emits ``<``, ``>`` or ``&`` outside string literals,
    so replacing them everywhere only touches string contents, where the
    ``\\u003c`` escape decodes back to the same character.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def _encode_attentions(attentions: Any) -> tuple[tuple[int, int, int], str]:
    """Validate attentions and pack them as base64 of little-endian uint16.

    Input shape: (layers, heads, n, n), row i = attending token i, column j =
    attended-to token j.  Values are clipped to [0, 1] (NaN -> 0) and rounded
    to 3 decimals, i.e. stored as round(value * 1000) in 0..1000.
    """
    array = np.asarray(attentions, dtype=np.float64)
    if array.ndim != 4:
        raise ValueError(
            f"attentions must have shape (layers, heads, n, n); got {array.shape}"
        )
    layers, heads, n_from, n_to = array.shape
    if n_from != n_to:
        raise ValueError(f"attention matrices must be square; got {n_from}x{n_to}")
    if layers == 0 or heads == 0 or n_from == 0:
        raise ValueError(f"attentions must not be empty; got shape {array.shape}")
    array = np.clip(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return (layers, heads, n_from), _pack_uint16(array)


def _pack_uint16(array: np.ndarray) -> str:
    """Values in [0, 1] -> base64 of little-endian uint16 round(value * 1000)."""
    # np.rint rounds half to even, like Python's round(); "<u2" fixes the byte
    # order so the JavaScript DataView can read it on any machine.
    packed = np.rint(array * _SCALE).astype("<u2", order="C")
    return base64.b64encode(packed.tobytes()).decode("ascii")


def _clean_attentions(attentions: Any) -> np.ndarray:
    """The attentions as _encode_attentions stores them, before rounding."""
    array = np.asarray(attentions, dtype=np.float64)
    return np.clip(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _without_special(array: np.ndarray, special: Sequence[int]) -> np.ndarray:
    """Drop the special tokens' rows and columns; renormalize each row to sum 1.

    A row with nothing left (all its weight on special tokens) stays 0.
    """
    hidden = set(special)
    keep = [i for i in range(array.shape[-1]) if i not in hidden]
    sub = array[..., keep, :][..., keep]
    sums = sub.sum(axis=-1, keepdims=True)
    return np.divide(sub, sums, out=np.zeros_like(sub), where=sums > 0)


def _normalize_predictions(
    predictions: Iterable[Mapping[str, Any]] | None, n: int
) -> list[dict[str, Any]]:
    """Check and copy the per-mask top-K groups into plain JSON types."""
    if predictions is None:
        return []
    groups = []
    for group in predictions:
        mask_index = int(group["mask_index"])
        if not 0 <= mask_index < n:
            raise ValueError(f"mask_index {mask_index} out of range for {n} tokens")
        candidates = []
        for candidate in group.get("candidates", []):
            probability = float(candidate["probability"])
            if not math.isfinite(probability):
                probability = 0.0
            candidates.append(
                {
                    "token": str(candidate["token"]),
                    "sentence": str(candidate["sentence"]),
                    # 4 decimals is plenty for a "41.23%" display.
                    "probability": round(probability, 4),
                }
            )
        groups.append({"mask_index": mask_index, "candidates": candidates})
    return groups


def _normalize_patterns(
    patterns: Mapping[str, Sequence[Sequence[Any]]] | None, layers: int, heads: int
) -> dict[str, list[list[float]]] | None:
    """Check and copy ``{name: [[layer, head, score], ...]}`` (1-based)."""
    if patterns is None:
        return None
    result: dict[str, list[list[float]]] = {}
    for name, entries in patterns.items():
        rows = []
        for entry in entries:
            layer, head, score = entry[0], entry[1], entry[2]
            layer, head = int(layer), int(head)
            if not (1 <= layer <= layers and 1 <= head <= heads):
                raise ValueError(
                    f"pattern {name!r}: layer {layer}, head {head} out of range "
                    f"for {layers} layers x {heads} heads"
                )
            score = float(score)
            rows.append([layer, head, round(score, 3) if math.isfinite(score) else 0.0])
        result[str(name)] = rows
    return result


# Accepted values of the optional payload fields.
PREDICTION_KINDS = ("mask", "next")
QUERY_KEY_DTYPES = {"float32": ("<f4", "base64-float32le"), "float16": ("<f2", "base64-float16le")}

# Rollout values may overshoot [0, 1] by rounding error only.
_ROLLOUT_TOLERANCE = 1e-3


def _finite_array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain finite numbers only (found NaN or infinity)")
    return array


def _normalize_special_tokens(special_tokens: Iterable[Any] | None, n: int) -> list[int]:
    """Check 0-based token indices; return them sorted and unique."""
    if special_tokens is None:
        return []
    indices = set()
    for index in special_tokens:
        if isinstance(index, (bool, np.bool_)) or int(index) != index:
            raise ValueError(f"special_tokens must be token indices (integers); got {index!r}")
        index = int(index)
        if not 0 <= index < n:
            raise ValueError(f"special_tokens index {index} out of range for {n} tokens")
        indices.add(index)
    if len(indices) == n:
        raise ValueError("special_tokens must leave at least one token visible")
    return sorted(indices)


def _normalize_segments(segments: Iterable[Any] | None, n: int) -> list[int] | None:
    """Check one segment id (0 or 1) per token."""
    if segments is None:
        return None
    result = []
    for segment in segments:
        if segment not in (0, 1):
            raise ValueError(f"segments must be 0 or 1 for each token; got {segment!r}")
        result.append(int(segment))
    if len(result) != n:
        raise ValueError(f"segments has {len(result)} entries for {n} tokens")
    return result


def _check_rollout(rollout: Any, n: int) -> np.ndarray | None:
    """Validate an (n, n) rollout matrix; return it clipped to [0, 1]."""
    if rollout is None:
        return None
    array = _finite_array(rollout, "rollout")
    if array.shape != (n, n):
        raise ValueError(f"rollout must have shape ({n}, {n}); got {array.shape}")
    if array.min() < -_ROLLOUT_TOLERANCE or array.max() > 1 + _ROLLOUT_TOLERANCE:
        raise ValueError(
            f"rollout values must lie in [0, 1]; got {array.min():.4g} to {array.max():.4g}"
        )
    return np.clip(array, 0.0, 1.0)


def _encode_query_key(
    query_key: Any, layers: int, heads: int, n: int, dtype: str
) -> dict[str, Any] | None:
    """Validate (layers, heads, 2, n, d) queries/keys and pack them as base64 floats."""
    if query_key is None:
        return None
    if dtype not in QUERY_KEY_DTYPES:
        raise ValueError(f"query_key_dtype must be one of {sorted(QUERY_KEY_DTYPES)}; got {dtype!r}")
    array = _finite_array(query_key, "query_key")
    if array.ndim != 5 or array.shape[:4] != (layers, heads, 2, n) or array.shape[4] == 0:
        raise ValueError(
            f"query_key must have shape ({layers}, {heads}, 2, {n}, d) "
            f"(index 0 = queries, 1 = keys); got {array.shape}"
        )
    code, encoding = QUERY_KEY_DTYPES[dtype]
    limit = float(np.finfo(code).max)
    if np.abs(array).max() > limit:
        raise ValueError(f"query_key values exceed the {dtype} range (|x| <= {limit:g})")
    packed = array.astype(code, order="C")
    return {
        "encoding": encoding,
        "d": int(array.shape[4]),
        "data": base64.b64encode(packed.tobytes()).decode("ascii"),
    }


def _check_prediction_kind(
    kind: str, predictions: list[dict[str, Any]], n: int
) -> str:
    if kind not in PREDICTION_KINDS:
        raise ValueError(f"prediction_kind must be one of {PREDICTION_KINDS}; got {kind!r}")
    if kind == "next":
        if len(predictions) > 1:
            raise ValueError('prediction_kind "next" takes one group of candidates')
        for group in predictions:
            if group["mask_index"] != n - 1:
                raise ValueError(
                    f'prediction_kind "next": mask_index must be the last token ({n - 1}); '
                    f"got {group['mask_index']}"
                )
    return kind


def build_payload(
    *,
    text: str,
    tokens: Sequence[str],
    attentions: Any,
    predictions: Iterable[Mapping[str, Any]] | None = None,
    patterns: Mapping[str, Sequence[Sequence[Any]]] | None = None,
    model_name: str = "",
    prediction_kind: str = "mask",
    special_tokens: Iterable[int] | None = None,
    segments: Iterable[int] | None = None,
    rollout: Any = None,
    query_key: Any = None,
    query_key_dtype: str = "float32",
    causal: bool | None = None,
) -> dict[str, Any]:
    """Return the JSON-ready dict that the page reads (see module docstring).

    Optional fields: ``prediction_kind`` ("mask" or "next"; with "next" a
    group's ``mask_index`` may be left out and means the last token),
    ``special_tokens`` (0-based indices the page can hide), ``segments``
    (0/1 per token), ``rollout`` ((n, n) floats in [0, 1]), ``query_key``
    ((layers, heads, 2, n, d) floats: the queries and keys as they enter the
    dot product, i.e. after the bias and any rotary embedding), packed as
    ``query_key_dtype`` ("float32" or "float16"), and ``causal`` (default:
    ``prediction_kind == "next"``).
    """
    (layers, heads, n), encoded = _encode_attentions(attentions)
    tokens = [str(token) for token in tokens]
    if len(tokens) != n:
        raise ValueError(f"got {len(tokens)} tokens for {n}x{n} attention matrices")
    if prediction_kind == "next" and predictions is not None:
        predictions = [
            group if "mask_index" in group else {**group, "mask_index": n - 1}
            for group in predictions
        ]
    normalized_predictions = _normalize_predictions(predictions, n)
    kind = _check_prediction_kind(prediction_kind, normalized_predictions, n)
    special = _normalize_special_tokens(special_tokens, n)
    rollout_array = _check_rollout(rollout, n)
    # Renormalized here at full precision: renormalizing the page's 3-decimal
    # values instead would magnify their rounding error by 1 / (weight left),
    # which for BERT rows that mostly attend to [CLS]/[SEP] is large.
    without_special = without_special_rollout = None
    if special:
        without_special = _pack_uint16(_without_special(_clean_attentions(attentions), special))
        if rollout_array is not None:
            without_special_rollout = _pack_uint16(_without_special(rollout_array, special))
    return {
        "version": 1,
        "model": str(model_name),
        "text": str(text),
        "tokens": tokens,
        "layers": layers,
        "heads": heads,
        "n": n,
        "scale": _SCALE,
        "encoding": "base64-uint16le",
        "attention": encoded,
        "predictions": normalized_predictions,
        "patterns": _normalize_patterns(patterns, layers, heads),
        "prediction_kind": kind,
        "special_tokens": special,
        "attention_without_special": without_special,
        "segments": _normalize_segments(segments, n),
        "rollout": None if rollout_array is None else _pack_uint16(rollout_array),
        "rollout_without_special": without_special_rollout,
        "causal": bool(kind == "next" if causal is None else causal),
        "query_key": _encode_query_key(query_key, layers, heads, n, query_key_dtype),
    }


def _read_template() -> str:
    template = TEMPLATE_PATH.read_text(encoding="utf-8")
    if template.count(_PLACEHOLDER) != 1:
        raise RuntimeError(f"{TEMPLATE_PATH} must contain {_PLACEHOLDER} exactly once")
    return template


def render_viewer_html(**fields: Any) -> str:
    """Return the complete self-contained viewer page as a string (fields as for build_payload)."""
    payload = build_payload(**fields)
    # str.replace with count=1 does not rescan the inserted text, so data that
    # happens to contain the placeholder string is harmless.
    return _read_template().replace(_PLACEHOLDER, embed_json(payload), 1)


def write_viewer(path: str | os.PathLike[str], **fields: Any) -> Path:
    """Write the viewer page to ``path`` atomically and return the path.

    The page is written to a temporary file in the same directory and then
    renamed over ``path`` (outputs.atomic_file), so a reader never sees a half
    written file; the temporary file is removed if anything fails.
    """
    html = render_viewer_html(**fields)
    target = Path(path)
    with outputs.atomic_file(target, "w") as file:
        file.write(html)
    return target

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
      "patterns": {name: [[layer, head, score], ...]} | null   # 1-based
    }

Rounding to 3 decimals and packing as uint16 keeps 12 layers x 12 heads x
40 x 40 tokens at ~615 kB of base64, well under the 2 MB budget.

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
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

import outputs

__all__ = [
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

# The size budget for 12 layers x 12 heads x 40 tokens (unit-tested).
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
    # np.rint rounds half to even, like Python's round(); "<u2" fixes the byte
    # order so the JavaScript DataView can read it on any machine.
    packed = np.rint(array * _SCALE).astype("<u2", order="C")
    return (layers, heads, n_from), base64.b64encode(packed.tobytes()).decode("ascii")


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


def build_payload(
    *,
    text: str,
    tokens: Sequence[str],
    attentions: Any,
    predictions: Iterable[Mapping[str, Any]] | None = None,
    patterns: Mapping[str, Sequence[Sequence[Any]]] | None = None,
    model_name: str = "",
) -> dict[str, Any]:
    """Return the JSON-ready dict that the page reads (see module docstring)."""
    (layers, heads, n), encoded = _encode_attentions(attentions)
    tokens = [str(token) for token in tokens]
    if len(tokens) != n:
        raise ValueError(f"got {len(tokens)} tokens for {n}x{n} attention matrices")
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
        "predictions": _normalize_predictions(predictions, n),
        "patterns": _normalize_patterns(patterns, layers, heads),
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

"""Tests for viewer.py and the offline HTML attention viewer.

Unit tests (no browser) check the embedded data, the escaping of user text,
the size budget and the atomic write.  Browser tests open the generated page
from file:// in headless Chromium through Selenium and Debian's chromedriver
(apt-get install chromium chromium-driver; pip install selenium).  They skip
when /usr/bin/chromedriver is missing, except under CI=true, where they fail
so a broken CI image cannot silently skip them.

A screenshot of the viewer is saved as viewer_screenshot.png in
$ATTENTION_ARTIFACTS if set, else in the test's tmp_path.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import chromium
import numpy as np
import pytest

import viewer

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# Synthetic test data: 2 layers x 3 heads x 7 tokens, each head a distinct
# known pattern (self, previous, next, [CLS], [SEP], mirror) on top of a
# small ramp, so every value is non-zero and differs between heads.
# ---------------------------------------------------------------------------

TEXT = "The cat sat [MASK]."
TOKENS = ["[CLS]", "the", "cat", "sat", "[MASK]", ".", "[SEP]"]
N = len(TOKENS)
LAYERS, HEADS = 2, 3
MODEL = "bert-test-model"

PREDICTIONS = [
    {
        "mask_index": 4,
        "candidates": [
            {"token": "down", "sentence": "The cat sat down.", "probability": 0.412},
            {"token": "there", "sentence": "The cat sat there.", "probability": 0.1234},
            {"token": "up", "sentence": "The cat sat up.", "probability": 0.05},
        ],
    }
]
PATTERNS = {
    "previous token": [[1, 3, 0.91], [2, 1, 0.12]],
    "[CLS]": [[2, 2, 0.88]],
}


def make_attentions() -> np.ndarray:
    """(LAYERS, HEADS, N, N) float array; rows sum to 1."""
    targets = [
        lambda i: i,                  # L1 H1: self
        lambda i: max(i - 1, 0),      # L1 H2: previous token
        lambda i: min(i + 1, N - 1),  # L1 H3: next token
        lambda i: 0,                  # L2 H1: [CLS]
        lambda i: N - 1,              # L2 H2: [SEP]
        lambda i: N - 1 - i,          # L2 H3: mirror
    ]
    att = np.empty((LAYERS, HEADS, N, N))
    for k, target in enumerate(targets):
        layer, head = divmod(k, HEADS)
        weights = np.tile(0.1 + 0.013 * (k + 1) * np.arange(N), (N, 1))
        for i in range(N):
            weights[i, target(i)] += 1.0 + 0.25 * k + 0.1 * i
        att[layer, head] = weights / weights.sum(axis=1, keepdims=True)
    return att


ATT = make_attentions()


def shown(value: float) -> str:
    """The number the page should display: the value rounded to 3 decimals."""
    return f"{round(float(value), 3):.3f}"


def extract_payload(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S)
    assert match, "data block not found"
    return json.loads(match.group(1))


def decode_attention(payload: dict) -> np.ndarray:
    raw = base64.b64decode(payload["attention"])
    values = np.frombuffer(raw, dtype="<u2")
    return values.reshape(payload["layers"], payload["heads"], payload["n"], payload["n"])


def render(**overrides) -> str:
    kwargs = dict(
        text=TEXT, tokens=TOKENS, attentions=ATT, predictions=PREDICTIONS,
        patterns=PATTERNS, model_name=MODEL,
    )
    kwargs.update(overrides)
    return viewer.render_viewer_html(**kwargs)


HOSTILE_TEXT = "</script><script>document.title='pwned'</script> [MASK] <img src=x onerror=alert(1)>"
HOSTILE_TOKENS = [
    "[CLS]", "</script>", "<script>", "document.title='pwned'", "</script>",
    "[MASK]", "<img src=x onerror=alert(1)>", "&amp;\u2028\u2029", "[SEP]",
]


def hostile_attentions() -> np.ndarray:
    n = len(HOSTILE_TOKENS)
    rng = np.random.default_rng(0)
    att = rng.random((1, 2, n, n))
    return att / att.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------
# Unit tests
# ---------------------------------------------------------------------------


def test_payload_round_trips_all_data():
    payload = extract_payload(render())
    assert payload["text"] == TEXT
    assert payload["tokens"] == TOKENS
    assert payload["model"] == MODEL
    assert (payload["layers"], payload["heads"], payload["n"]) == (LAYERS, HEADS, N)
    assert payload["scale"] == 1000
    np.testing.assert_array_equal(decode_attention(payload), np.rint(ATT * 1000))
    assert payload["predictions"][0]["mask_index"] == 4
    assert payload["predictions"][0]["candidates"][0] == PREDICTIONS[0]["candidates"][0]
    assert payload["patterns"] == {"previous token": [[1, 3, 0.91], [2, 1, 0.12]], "[CLS]": [[2, 2, 0.88]]}


def test_optional_parts_default_to_empty():
    payload = extract_payload(render(predictions=None, patterns=None, model_name=""))
    assert payload["predictions"] == []
    assert payload["patterns"] is None
    assert payload["model"] == ""


def test_values_are_clipped_and_rounded_to_three_decimals():
    att = np.zeros((1, 1, 2, 2))
    att[0, 0] = [[0.12345, np.nan], [1.7, -0.2]]
    payload = extract_payload(render(tokens=["a", "b"], attentions=att, predictions=None, patterns=None))
    np.testing.assert_array_equal(decode_attention(payload)[0, 0], [[123, 0], [1000, 0]])


def test_hostile_strings_are_escaped_in_the_data_block():
    html = render(
        text=HOSTILE_TEXT, tokens=HOSTILE_TOKENS, attentions=hostile_attentions(),
        model_name="<b>model</b>",
        predictions=[{"mask_index": 5, "candidates": [
            {"token": "</script>", "sentence": "<script>alert(2)</script>", "probability": 0.5}]}],
        patterns={"<i>x</i>": [[1, 2, 0.5]]},
    )
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.S).group(1)
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        assert char not in block, f"raw {char!r} in the data block"
    assert "\\u003c/script\\u003e" in block
    # Only the template's own two <script> elements exist and close.
    assert html.count("</script>") == 2
    assert html.count("<script") == 2
    assert "<img" not in html
    payload = extract_payload(html)
    assert payload["text"] == HOSTILE_TEXT
    assert payload["tokens"] == HOSTILE_TOKENS
    assert payload["model"] == "<b>model</b>"
    assert payload["predictions"][0]["candidates"][0]["sentence"] == "<script>alert(2)</script>"
    assert list(payload["patterns"]) == ["<i>x</i>"]


def test_embed_json_escapes():
    text = viewer.embed_json({"a": "</script>&\u2028\u2029"})
    assert text == '{"a":"\\u003c/script\\u003e\\u0026\\u2028\\u2029"}'
    assert json.loads(text) == {"a": "</script>&\u2028\u2029"}


def test_page_is_self_contained_with_csp():
    html = render()
    assert (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"
        in html
    )
    # No external resources: the only URLs are the SVG and XLink namespace
    # identifiers (names, never fetched).
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!data:)", html)
    assert "@import" not in html and "url(" not in html


def test_template_documents_stable_ids():
    template = viewer.TEMPLATE_PATH.read_text(encoding="utf-8")
    header = template.split("<html", 1)[0]
    for element_id in ("layer", "head", "matrix", "cell-value", "head-view", "model-view",
                       "predictions", "patterns", "sentence", "model-name", "color-scale",
                       "scale-legend", "hide-special", "threshold", "segment-legend", "hv-origin",
                       "matrix-origin", "qk-card", "qk-token", "qk-query"):
        assert f"#{element_id}" in header
        assert f'id="{element_id}"' in template


def test_size_budget_for_bert_base_and_40_tokens(tmp_path):
    rng = np.random.default_rng(1)
    att = rng.random((12, 12, 40, 40))
    att /= att.sum(axis=-1, keepdims=True)
    tokens = [f"token{i}" for i in range(40)]
    predictions = [{"mask_index": 5, "candidates": [
        {"token": f"w{k}", "sentence": " ".join(tokens[1:-1]), "probability": 0.1} for k in range(10)]}]
    patterns = {f"pattern {k}": [[1 + k, 1 + k, 0.5]] for k in range(12)}
    path = viewer.write_viewer(tmp_path / "attention.html", text=" ".join(tokens), tokens=tokens,
                               attentions=att, predictions=predictions, patterns=patterns,
                               model_name="bert-base-uncased")
    size = path.stat().st_size
    assert size < 2 * 1024 * 1024
    assert size < viewer.SIZE_BUDGET_BYTES
    np.testing.assert_array_equal(decode_attention(extract_payload(path.read_text("utf-8"))), np.rint(att * 1000))


def test_write_viewer_is_atomic(tmp_path):
    target = tmp_path / "attention.html"
    target.write_text("old", encoding="utf-8")
    result = viewer.write_viewer(target, text=TEXT, tokens=TOKENS, attentions=ATT)
    assert result == target
    assert target.read_text(encoding="utf-8") == render(predictions=None, patterns=None, model_name="")
    assert [p.name for p in tmp_path.iterdir()] == ["attention.html"]


def test_write_viewer_removes_temp_file_on_error(tmp_path, monkeypatch):
    target = tmp_path / "attention.html"
    target.write_text("old", encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(viewer.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        viewer.write_viewer(target, text=TEXT, tokens=TOKENS, attentions=ATT)
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["attention.html"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(attentions=np.zeros((2, 7, 7))), "shape"),
        (dict(attentions=np.zeros((1, 1, 7, 6))), "square"),
        (dict(tokens=TOKENS[:-1]), "tokens"),
        (dict(predictions=[{"mask_index": 7, "candidates": []}]), "mask_index"),
        (dict(patterns={"x": [[3, 1, 0.5]]}), "out of range"),
    ],
)
def test_invalid_input_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render(**kwargs)


def test_viewer_module_does_not_import_tensorflow():
    code = "import sys, viewer; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ---------------------------------------------------------------------------
# Browser tests (headless Chromium)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    chromium.require()
    drv = chromium.start("1400,1000", profile=tmp_path_factory.mktemp("chromium-profile"), logs=True)
    drv.get("about:blank")
    try:
        yield drv
    finally:
        drv.quit()


def open_viewer(drv, path: Path):
    """Load the page, wait for the script to finish, return the file:// URL."""
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get_log("browser")      # drain logs of earlier pages
    drv.get_log("performance")
    url = path.resolve().as_uri()
    drv.get(url)
    WebDriverWait(drv, 10).until(
        lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')") == "true"
    )
    return url


def assert_no_console_errors(drv):
    severe = [entry for entry in drv.get_log("browser") if entry.get("level") == "SEVERE"]
    assert not severe, severe


def assert_no_network_requests(drv, page_url: str):
    urls = []
    for entry in drv.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        params = message["params"]
        # Chromium's own start-up pages (chrome://new-tab-page...) may still
        # be loading in the background; they are not requests of our page.
        if params.get("documentURL", "").startswith("chrome://"):
            continue
        urls.append(params["request"]["url"])
    assert page_url in urls, urls
    bad = [u for u in urls if u != page_url and not u.startswith(("data:", "blob:"))]
    assert not bad, f"unexpected requests: {bad}"


@pytest.fixture
def page(tmp_path):
    path = viewer.write_viewer(tmp_path / "attention.html", text=TEXT, tokens=TOKENS, attentions=ATT,
                               predictions=PREDICTIONS, patterns=PATTERNS, model_name=MODEL)
    return path


def css(drv, selector):
    from selenium.webdriver.common.by import By

    return drv.find_element(By.CSS_SELECTOR, selector)


def hover(drv, element):
    from selenium.webdriver.common.action_chains import ActionChains

    # Scroll to the middle first, so the sticky controls bar cannot cover it.
    drv.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", element)
    ActionChains(drv, duration=0).move_to_element(element).perform()  # no 250 ms glide per move


def hover_cell(drv, row, col):
    """Hover a matrix cell and return the status text."""
    # Move off the grid first so a fresh mouseover always fires.
    hover(drv, css(drv, "#sentence"))
    hover(drv, css(drv, f'#matrix rect.cell[data-row="{row}"][data-col="{col}"]'))
    return css(drv, "#cell-value").text


def press(drv, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(drv, duration=0).send_keys(key).perform()


def selected(drv):
    return (int(css(drv, "#layer").get_attribute("value")), int(css(drv, "#head").get_attribute("value")))


def test_page_loads_offline_without_errors(driver, page):
    url = open_viewer(driver, page)
    assert driver.title == f"Attention \u2014 {MODEL}"
    assert css(driver, "#model-name").text == MODEL
    assert css(driver, "#sentence").text == TEXT
    assert selected(driver) == (1, 1)
    assert css(driver, "#selection").text == "Layer 1 / 2 \u00b7 Head 1 / 3"
    # Exercise the views before collecting logs, then check both logs.
    hover_cell(driver, 1, 2)
    hover(driver, css(driver, '#head-view .hv-token.left[data-index="2"]'))
    css(driver, "#thumb-2-3").click()
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_selectors_and_arrow_keys_switch_the_matrix(driver, page):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    open_viewer(driver, page)
    row, col = 3, 2   # from 'sat' to 'cat'
    assert hover_cell(driver, row, col) == f"from 'sat' to 'cat': {shown(ATT[0, 0, row, col])}"

    Select(css(driver, "#layer")).select_by_value("2")
    Select(css(driver, "#head")).select_by_value("3")
    assert selected(driver) == (2, 3)
    assert hover_cell(driver, row, col) == f"from 'sat' to 'cat': {shown(ATT[1, 2, row, col])}"
    # The cell colour uses the PNGs' gray scale.
    gray = round(round(ATT[1, 2, 0, 6], 3) * 255)
    fill = css(driver, '#matrix rect.cell[data-row="0"][data-col="6"]').get_attribute("fill")
    assert fill == f"rgb({gray},{gray},{gray})"

    # Arrow keys, first while the <select> still has focus, then from the page.
    press(driver, Keys.ARROW_LEFT)
    assert selected(driver) == (2, 2)
    css(driver, "#sentence").click()
    press(driver, Keys.ARROW_UP)
    assert selected(driver) == (1, 2)
    assert hover_cell(driver, row, col) == f"from 'sat' to 'cat': {shown(ATT[0, 1, row, col])}"
    press(driver, Keys.ARROW_RIGHT)
    press(driver, Keys.ARROW_RIGHT)   # clamps at the last head
    press(driver, Keys.ARROW_DOWN)
    assert selected(driver) == (2, 3)
    assert css(driver, "#cell-value").get_attribute("data-value") == shown(ATT[1, 2, row, col])
    for r, c in [(0, 0), (6, 6), (4, 1)]:
        value = shown(ATT[1, 2, r, c])
        assert hover_cell(driver, r, c) == f"from '{TOKENS[r]}' to '{TOKENS[c]}': {value}"
    hover(driver, css(driver, "#sentence"))
    assert css(driver, "#cell-value").text == "Point at a cell to read its value."


def test_head_view_hover_shows_only_that_tokens_lines(driver, page):
    from selenium.webdriver.common.by import By

    open_viewer(driver, page)
    css(driver, "#thumb-1-2").click()   # layer 1, head 2: previous-token pattern
    lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")
    assert len(lines) == N * N          # every weight is non-zero
    assert all(v.text == "" for v in driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-value"))

    i = 3
    hover(driver, css(driver, f'#head-view .hv-token.left[data-index="{i}"]'))
    lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")
    assert len(lines) == N
    assert {line.get_attribute("data-from") for line in lines} == {str(i)}
    for line in lines:
        j = int(line.get_attribute("data-to"))
        assert float(line.get_attribute("stroke-opacity")) == pytest.approx(round(ATT[0, 1, i, j], 3))
    shown_right = [css(driver, f'#head-view .hv-value.right[data-index="{j}"]').text for j in range(N)]
    assert shown_right == [shown(ATT[0, 1, i, j]) for j in range(N)]
    assert all(v.text == "" for v in driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-value.left"))

    # Leaving the token restores all lines; clicking pins the focus.
    hover(driver, css(driver, "#sentence"))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")) == N * N
    css(driver, f'#head-view .hv-token.left[data-index="{i}"]').click()
    hover(driver, css(driver, "#sentence"))
    assert len(driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")) == N

    # Pinned focus follows a head change.
    css(driver, "#thumb-2-1").click()   # layer 2, head 1: [CLS]
    assert [css(driver, f'#head-view .hv-value.right[data-index="{j}"]').text for j in range(N)] == \
        [shown(ATT[1, 0, i, j]) for j in range(N)]
    css(driver, f'#head-view .hv-token.left[data-index="{i}"]').click()   # unpin

    # A right-hand token shows who attends to it, numbers on the left.
    j = 0
    hover(driver, css(driver, f'#head-view .hv-token.right[data-index="{j}"]'))
    lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")
    assert {line.get_attribute("data-to") for line in lines} == {str(j)}
    shown_left = [css(driver, f'#head-view .hv-value.left[data-index="{k}"]').text for k in range(N)]
    assert shown_left == [shown(ATT[1, 0, k, j]) for k in range(N)]


def test_model_view_click_selects_head(driver, page):
    from selenium.webdriver.common.by import By

    open_viewer(driver, page)
    thumbs = driver.find_elements(By.CSS_SELECTOR, "#model-view button.thumb")
    assert len(thumbs) == LAYERS * HEADS
    assert "selected" in css(driver, "#thumb-1-1").get_attribute("class")
    css(driver, "#thumb-2-3").click()
    assert selected(driver) == (2, 3)
    assert "selected" in css(driver, "#thumb-2-3").get_attribute("class")
    assert "selected" not in css(driver, "#thumb-1-1").get_attribute("class")
    assert css(driver, "#selection").text == "Layer 2 / 2 \u00b7 Head 3 / 3"
    assert hover_cell(driver, 5, 1) == f"from '.' to 'the': {shown(ATT[1, 2, 5, 1])}"


def test_predictions_and_patterns_are_shown(driver, tmp_path):
    from selenium.webdriver.common.by import By

    predictions = PREDICTIONS + [{"mask_index": 5, "candidates": [
        {"token": "!", "sentence": "The cat sat down!", "probability": 0.75}]}]
    path = viewer.write_viewer(tmp_path / "attention.html", text=TEXT, tokens=TOKENS, attentions=ATT,
                               predictions=predictions, patterns=PATTERNS, model_name=MODEL)
    open_viewer(driver, path)
    groups = driver.find_elements(By.CSS_SELECTOR, "#predictions .pred-group")
    assert [g.get_attribute("data-mask-index") for g in groups] == ["4", "5"]
    first = groups[0].find_elements(By.CSS_SELECTOR, ".pred-candidate")
    assert len(first) == 3
    assert first[0].find_element(By.CSS_SELECTOR, ".pred-token").text == "down"
    assert "The cat sat down." in first[0].find_element(By.CSS_SELECTOR, ".pred-sentence").text
    assert [c.find_element(By.CSS_SELECTOR, ".pred-prob").text for c in first] == ["41.2%", "12.3%", "5.0%"]
    assert "75.0%" in groups[1].text and "Mask 2 of 2" in groups[1].text

    rows = driver.find_elements(By.CSS_SELECTOR, "#patterns tr.pattern-row")
    assert len(rows) == 3
    assert "previous token" in rows[0].text and "0.910" in rows[0].text
    rows[2].click()   # [CLS]: layer 2, head 2
    assert selected(driver) == (2, 2)
    assert "current" in rows[2].get_attribute("class")
    assert_no_console_errors(driver)


def test_bert_base_sized_page_renders(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    rng = np.random.default_rng(3)
    att = rng.random((12, 12, 40, 40))
    att /= att.sum(axis=-1, keepdims=True)
    tokens = ["[CLS]"] + [f"w{i}" for i in range(38)] + ["[SEP]"]
    path = viewer.write_viewer(tmp_path / "attention.html", text=" ".join(tokens[1:-1]), tokens=tokens,
                               attentions=att, model_name="bert-base-uncased")
    url = open_viewer(driver, path)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#model-view button.thumb")) == 144
    assert len(driver.find_elements(By.CSS_SELECTOR, "#matrix rect.cell")) == 1600
    Select(css(driver, "#layer")).select_by_value("12")
    Select(css(driver, "#head")).select_by_value("12")
    assert hover_cell(driver, 39, 38) == f"from '[SEP]' to 'w37': {shown(att[11, 11, 39, 38])}"
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_without_predictions_or_patterns(driver, tmp_path):
    path = viewer.write_viewer(tmp_path / "attention.html", text=TEXT, tokens=TOKENS, attentions=ATT)
    open_viewer(driver, path)
    assert not css(driver, "#predictions").is_displayed()
    assert not css(driver, "#patterns").is_displayed()
    assert driver.title == "Attention"
    assert_no_console_errors(driver)


def test_hostile_text_is_shown_as_text_and_runs_nothing(driver, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    path = viewer.write_viewer(
        tmp_path / "attention.html", text=HOSTILE_TEXT, tokens=HOSTILE_TOKENS,
        attentions=hostile_attentions(), model_name="<b>model</b>",
        predictions=[{"mask_index": 5, "candidates": [
            {"token": "<i>x</i>", "sentence": "<script>alert(2)</script>", "probability": 0.5}]}],
        patterns={"<img src=y onerror=alert(3)>": [[1, 2, 0.5]]},
    )
    url = open_viewer(driver, path)
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text
    assert driver.title == "Attention \u2014 <b>model</b>"
    assert driver.execute_script("return document.title") != "pwned"
    body = css(driver, "body").text
    assert HOSTILE_TEXT in body
    assert "<script>alert(2)</script>" in body
    assert "<img src=y onerror=alert(3)>" in body
    assert css(driver, "#sentence").text == HOSTILE_TEXT
    assert css(driver, "#model-name").text == "<b>model</b>"
    left_tokens = driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-token.left")
    assert [t.get_attribute("textContent") for t in left_tokens] == HOSTILE_TOKENS
    # No markup from the data became elements.
    assert driver.find_elements(By.TAG_NAME, "img") == []
    assert driver.find_elements(By.CSS_SELECTOR, "b, i") == []
    assert len(driver.find_elements(By.TAG_NAME, "script")) == 2
    # Interacting with the hostile tokens runs nothing either.
    hover(driver, left_tokens[6])
    status = hover_cell(driver, 6, 1)
    assert status.startswith("from '<img src=x onerror=alert(1)>' to '</script>': ")
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text
    assert driver.execute_script("return document.title") != "pwned"
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def screenshot_attentions(layers: int, heads: int, n: int) -> np.ndarray:
    """Plausible-looking synthetic heads: each mixes a few BERT-like patterns."""
    rng = np.random.default_rng(2)
    eye = np.eye(n)
    patterns = [eye, np.eye(n, k=-1), np.eye(n, k=1), np.zeros((n, n)), np.zeros((n, n))]
    patterns[3][:, 0] = 1.0          # [CLS]
    patterns[4][:, -1] = 1.0         # [SEP]
    att = np.empty((layers, heads, n, n))
    for layer in range(layers):
        for head in range(heads):
            mix = rng.dirichlet(np.full(len(patterns), 0.3))
            weights = sum(w * p for w, p in zip(mix, patterns, strict=False)) + 0.05 * rng.random((n, n)) ** 3
            att[layer, head] = weights / weights.sum(axis=1, keepdims=True)
    return att


def test_screenshot_artifact(driver, tmp_path):
    from selenium.webdriver.support.ui import Select

    tokens = ["[CLS]", "the", "quick", "brown", "fox", "jumps", "over", "the", "[MASK]", "dog", ".", "[SEP]"]
    att = screenshot_attentions(12, 12, len(tokens))
    predictions = [{"mask_index": 8, "candidates": [
        {"token": w, "sentence": f"the quick brown fox jumps over the {w} dog.", "probability": p}
        for w, p in [("lazy", 0.62), ("big", 0.11), ("old", 0.07), ("little", 0.05), ("other", 0.03)]]}]
    patterns = {"previous token": [[4, 7, 0.83], [5, 2, 0.64]], "[CLS]": [[1, 1, 0.91]]}
    path = viewer.write_viewer(tmp_path / "attention.html", text="The quick brown fox jumps over the [MASK] dog.",
                               tokens=tokens, attentions=att, predictions=predictions, patterns=patterns,
                               model_name="bert-base-uncased")
    open_viewer(driver, path)
    # Capture the whole page: make the window as tall as the document.
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], min(height + 140, 4000))
    try:
        Select(css(driver, "#layer")).select_by_value("3")
        Select(css(driver, "#head")).select_by_value("5")
        css(driver, '#head-view .hv-token.left[data-index="4"]').click()   # pin "fox"
        hover_cell(driver, 4, 3)
        artifacts = Path(os.environ.get("ATTENTION_ARTIFACTS") or tmp_path)
        artifacts.mkdir(parents=True, exist_ok=True)
        shot = artifacts / "viewer_screenshot.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert_no_console_errors(driver)
    finally:
        driver.set_window_size(size["width"], size["height"])


# ---------------------------------------------------------------------------
# Optional payload fields: colour scale, origin highlight, hiding special
# tokens, line threshold, export, query/key view, rollout, segments and
# next-token predictions.  Pages are written with render_viewer_html, so these
# tests do not depend on write_viewer's signature.
# ---------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"
NEW_KEYS = ("prediction_kind", "special_tokens", "attention_without_special", "segments", "rollout",
            "rollout_without_special", "causal", "query_key")
HEAT_STOPS = [(49, 54, 149), (116, 173, 209), (255, 255, 191), (244, 109, 67), (165, 0, 38)]
QK_D = 8


def js_round(x: float) -> int:
    """JavaScript's Math.round for non-negative numbers (halves round up)."""
    return int(math.floor(x + 0.5))


def gray_rgb(x: float) -> tuple[int, int, int]:
    g = js_round(x * 255)
    return (g, g, g)


def heat_rgb(x: float) -> tuple[int, int, int]:
    """The page's heat scale: piecewise linear through HEAT_STOPS, blue (0) to red (1)."""
    t = min(max(x, 0.0), 1.0) * (len(HEAT_STOPS) - 1)
    k = min(int(math.floor(t)), len(HEAT_STOPS) - 2)
    f = t - k
    return tuple(js_round(a + (b - a) * f) for a, b in zip(HEAT_STOPS[k], HEAT_STOPS[k + 1], strict=False))


def diverging_rgb(t: float) -> tuple[int, int, int]:
    """The query/key strips: blue < 0 < red, white = 0."""
    t = min(max(t, -1.0), 1.0)
    a = js_round(255 * (1 - abs(t)))
    return (a, a, 255) if t < 0 else (255, a, a)


def css_rgb(color: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*color)


def softmax_of_scores(query_key: np.ndarray, causal: bool = False) -> np.ndarray:
    """Attention = softmax(q k^T / sqrt(d)) for (layers, heads, 2, n, d) queries/keys."""
    q, k = query_key[:, :, 0], query_key[:, :, 1]
    scores = np.einsum("lhid,lhjd->lhij", q, k) / np.sqrt(q.shape[-1])
    if causal:
        n = scores.shape[-1]
        scores = np.where(np.triu(np.ones((n, n), bool), k=1), -np.inf, scores)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def make_rollout(att: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): heads averaged, residual added."""
    n = att.shape[-1]
    result = np.eye(n)
    for layer in att:
        step = 0.5 * layer.mean(axis=0) + 0.5 * np.eye(n)
        result = (step / step.sum(axis=-1, keepdims=True)) @ result
    return result


QK = np.random.default_rng(5).normal(size=(LAYERS, HEADS, 2, N, QK_D)) * 1.5
QK_ATT = softmax_of_scores(QK)
ROLLOUT = make_rollout(ATT)


def stored_values(html: str) -> np.ndarray:
    """The attention values as the page has them: round(x * 1000) / 1000."""
    return decode_attention(extract_payload(html)) / 1000.0


def write_page(directory: Path, name: str = "attention.html", **overrides) -> Path:
    path = directory / name
    path.write_text(render(**overrides), encoding="utf-8")
    return path


def canvas_pixel(drv, canvas, x: int, y: int) -> tuple[int, int, int]:
    return tuple(drv.execute_script(
        "var d = arguments[0].getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data;"
        "return [d[0], d[1], d[2]];", canvas, x, y))


def set_threshold(drv, steps: int):
    """Move the threshold slider with the keyboard, one 0.01 step per key press."""
    from selenium.webdriver.common.keys import Keys

    slider = css(drv, "#threshold")
    drv.execute_script("arguments[0].focus()", slider)
    key = Keys.ARROW_RIGHT if steps > 0 else Keys.ARROW_LEFT
    for _ in range(abs(steps)):
        press(drv, key)


def click(drv, element):
    """Click after scrolling the element to the middle, clear of the sticky controls bar."""
    drv.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})", element)
    element.click()


def without_special(att: np.ndarray, keep: list[int]) -> np.ndarray:
    """exBERT's renormalization: keep these rows and columns, rows sum to 1."""
    sub = att[..., keep, :][..., keep]
    return sub / sub.sum(axis=-1, keepdims=True)


def cell_fill(drv, row: int, col: int) -> str:
    return css(drv, f'#matrix rect.cell[data-row="{row}"][data-col="{col}"]').get_attribute("fill")


def classes(element) -> set[str]:
    return set((element.get_attribute("class") or "").split())


# ---- unit tests of the new fields ----------------------------------------------


def test_new_fields_default_to_off():
    payload = extract_payload(render())
    assert payload["prediction_kind"] == "mask"
    assert payload["special_tokens"] == []
    assert payload["attention_without_special"] is None
    assert payload["segments"] is None
    assert payload["rollout"] is None
    assert payload["rollout_without_special"] is None
    assert payload["causal"] is False
    assert payload["query_key"] is None


def test_new_fields_round_trip():
    payload = extract_payload(render(special_tokens=[6, 0, 0], segments=[0, 0, 0, 0, 1, 1, True],
                                     rollout=ROLLOUT, query_key=QK))
    assert payload["special_tokens"] == [0, 6]
    assert payload["segments"] == [0, 0, 0, 0, 1, 1, 1]
    rollout = np.frombuffer(base64.b64decode(payload["rollout"]), dtype="<u2").reshape(N, N)
    np.testing.assert_array_equal(rollout, np.rint(ROLLOUT * 1000))
    # Rows without [CLS]/[SEP], renormalized before rounding.
    keep = list(range(1, N - 1))
    hidden = np.frombuffer(base64.b64decode(payload["attention_without_special"]), dtype="<u2")
    np.testing.assert_array_equal(hidden.reshape(LAYERS, HEADS, N - 2, N - 2),
                                  np.rint(without_special(ATT, keep) * 1000))
    hidden = np.frombuffer(base64.b64decode(payload["rollout_without_special"]), dtype="<u2")
    np.testing.assert_array_equal(hidden.reshape(N - 2, N - 2), np.rint(without_special(ROLLOUT, keep) * 1000))
    packed = payload["query_key"]
    assert (packed["encoding"], packed["d"]) == ("base64-float32le", QK_D)
    values = np.frombuffer(base64.b64decode(packed["data"]), dtype="<f4").reshape(QK.shape)
    np.testing.assert_array_equal(values, QK.astype(np.float32))

    half = extract_payload(render(query_key=QK, query_key_dtype="float16"))["query_key"]
    assert half["encoding"] == "base64-float16le"
    values = np.frombuffer(base64.b64decode(half["data"]), dtype="<f2").reshape(QK.shape)
    np.testing.assert_array_equal(values, QK.astype(np.float16))


def test_next_token_payload_defaults_to_the_last_token_and_causal():
    tokens = ["The", "cat", "sat", "on", "the"]
    att = softmax_of_scores(QK[:, :, :, :5], causal=True)
    payload = extract_payload(render(
        text="The cat sat on the", tokens=tokens, attentions=att, patterns=None, prediction_kind="next",
        predictions=[{"candidates": [{"token": " mat", "sentence": "The cat sat on the mat", "probability": 0.3}]}]))
    assert payload["prediction_kind"] == "next"
    assert payload["predictions"][0]["mask_index"] == 4
    assert payload["causal"] is True
    assert extract_payload(render(prediction_kind="mask", causal=True))["causal"] is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(special_tokens=[7]), "out of range"),
        (dict(special_tokens=[-1]), "out of range"),
        (dict(special_tokens=[1.5]), "integers"),
        (dict(special_tokens=range(N)), "at least one"),
        (dict(segments=[0] * (N - 1)), "entries"),
        (dict(segments=[0, 0, 0, 0, 1, 1, 2]), "0 or 1"),
        (dict(rollout=np.eye(N - 1)), "shape"),
        (dict(rollout=np.full((N, N), np.nan)), "finite"),
        (dict(rollout=np.full((N, N), 1.5)), r"\[0, 1\]"),
        (dict(query_key=np.zeros((LAYERS, HEADS, 2, N))), "shape"),
        (dict(query_key=np.zeros((LAYERS, HEADS, 1, N, QK_D))), "shape"),
        (dict(query_key=np.zeros((LAYERS, HEADS, 2, N, 0))), "shape"),
        (dict(query_key=np.full((LAYERS, HEADS, 2, N, QK_D), np.inf)), "finite"),
        (dict(query_key=np.full((LAYERS, HEADS, 2, N, QK_D), 1e5), query_key_dtype="float16"), "float16 range"),
        (dict(query_key=QK, query_key_dtype="int8"), "query_key_dtype"),
        (dict(prediction_kind="fill"), "prediction_kind"),
        (dict(prediction_kind="next"), "last token"),
        (dict(prediction_kind="next", predictions=[{"mask_index": N - 1, "candidates": []}] * 2), "one group"),
    ],
)
def test_invalid_new_fields_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render(**kwargs)


def test_query_key_size_for_bert_base_and_40_tokens():
    """What query_key costs at 12 layers x 12 heads x 40 tokens x d = 64.

    2 x 12 x 12 x 40 x 64 = 737,280 numbers: 3,932,160 bytes of base64 as
    float32 (the default), 1,966,080 as float16.  Even float16 takes the page
    (about 0.6 MB without it) past the 2 MB budget, so a writer should leave
    query_key out for inputs this big.
    """
    rng = np.random.default_rng(4)
    att = rng.random((12, 12, 40, 40))
    att /= att.sum(axis=-1, keepdims=True)
    tokens = [f"token{i}" for i in range(40)]
    query_key = rng.normal(size=(12, 12, 2, 40, 64))
    base = len(viewer.render_viewer_html(text=" ".join(tokens), tokens=tokens, attentions=att).encode("utf-8"))
    assert base < viewer.SIZE_BUDGET_BYTES
    expected = {"float32": 3_932_160, "float16": 1_966_080}
    for dtype, size in expected.items():
        html = viewer.render_viewer_html(text=" ".join(tokens), tokens=tokens, attentions=att,
                                         query_key=query_key, query_key_dtype=dtype)
        assert len(extract_payload(html)["query_key"]["data"]) == size
        extra = len(html.encode("utf-8")) - base
        assert size <= extra < size + 100   # the rest is the JSON keys
    assert base + expected["float16"] > viewer.SIZE_BUDGET_BYTES


def test_special_tokens_page_stays_within_budget_for_bert_base_and_40_tokens():
    """attention_without_special roughly doubles the attention data (~1.2 MB in all)."""
    rng = np.random.default_rng(6)
    att = rng.random((12, 12, 40, 40))
    att /= att.sum(axis=-1, keepdims=True)
    tokens = ["[CLS]"] + [f"w{i}" for i in range(38)] + ["[SEP]"]
    html = viewer.render_viewer_html(text=" ".join(tokens[1:-1]), tokens=tokens, attentions=att,
                                     special_tokens=[0, 39], rollout=make_rollout(att))
    assert len(extract_payload(html)["attention_without_special"]) == 4 * math.ceil(12 * 12 * 38 * 38 * 2 / 3)
    assert len(html.encode("utf-8")) < viewer.SIZE_BUDGET_BYTES


# ---- browser tests of the new features ----------------------------------------------


def test_page_without_the_new_fields_renders_as_before(driver, tmp_path):
    from selenium.webdriver.common.by import By

    html = render()
    payload = extract_payload(html)
    legacy = {key: value for key, value in payload.items() if key not in NEW_KEYS}
    assert len(legacy) == len(payload) - len(NEW_KEYS)
    block = '<script type="application/json" id="data">'
    start = html.index(block) + len(block)
    end = html.index("</script>", start)
    legacy_path = tmp_path / "legacy.html"
    legacy_path.write_text(html[:start] + viewer.embed_json(legacy) + html[end:], encoding="utf-8")
    values = stored_values(html)

    seen = []
    for path in (write_page(tmp_path), legacy_path):
        url = open_viewer(driver, path)
        click(driver, css(driver, "#thumb-2-3"))
        fills = [[cell_fill(driver, i, j) for j in range(N)] for i in range(N)]
        assert fills == [[css_rgb(gray_rgb(values[1, 2, i, j])) for j in range(N)] for i in range(N)]
        assert len(driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")) == N * N
        assert [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#layer option")] == ["1", "2"]
        assert css(driver, ".pred-group h3").text == "Top fill-ins for the mask (token 4)"
        masked = driver.find_elements(By.CSS_SELECTOR, ".hv-token.left.mask")
        assert [t.get_attribute("data-index") for t in masked] == ["4"]
        assert not css(driver, "#hide-special").is_enabled()
        assert css(driver, "#color-scale").get_attribute("value") == "gray"
        assert not css(driver, "#segment-legend").is_displayed()
        assert not css(driver, "#qk-card").is_displayed()
        assert driver.find_elements(By.CSS_SELECTOR, "#matrix rect.seg-bar, .hv-token.seg-a, .hv-token.seg-b") == []
        seen.append((fills, hover_cell(driver, 3, 2)))
        assert_no_console_errors(driver)
        assert_no_network_requests(driver, url)
    assert seen[0] == seen[1]


def test_heat_colour_scale_and_legend(driver, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url = open_viewer(driver, page)
    values = stored_values(page.read_text("utf-8"))
    legend = css(driver, "#scale-legend")
    assert legend.get_attribute("data-scale") == "gray"
    assert cell_fill(driver, 0, 6) == css_rgb(gray_rgb(values[0, 0, 0, 6]))

    Select(css(driver, "#color-scale")).select_by_value("heat")
    assert legend.get_attribute("data-scale") == "heat"
    for row, col in [(0, 6), (3, 3), (2, 5), (6, 0)]:
        assert cell_fill(driver, row, col) == css_rgb(heat_rgb(values[0, 0, row, col]))
    assert cell_fill(driver, 3, 3) != cell_fill(driver, 0, 6)
    swatches = legend.find_elements(By.CSS_SELECTOR, "rect[fill^='rgb']")
    assert swatches[0].get_attribute("fill") == css_rgb(HEAT_STOPS[0])    # blue = 0
    assert swatches[-1].get_attribute("fill") == css_rgb(HEAT_STOPS[-1])  # red = 1
    # The thumbnails follow the scale: one pixel per cell (x = column, y = row).
    thumb = css(driver, "#thumb-2-3 canvas")
    assert canvas_pixel(driver, thumb, 6, 0) == heat_rgb(values[1, 2, 0, 6])
    assert canvas_pixel(driver, thumb, 0, 6) == heat_rgb(values[1, 2, 6, 0])
    click(driver, css(driver, "#thumb-2-3"))
    assert cell_fill(driver, 0, 6) == css_rgb(heat_rgb(values[1, 2, 0, 6]))

    Select(css(driver, "#color-scale")).select_by_value("gray")
    assert legend.get_attribute("data-scale") == "gray"
    assert cell_fill(driver, 0, 6) == css_rgb(gray_rgb(values[1, 2, 0, 6]))
    assert canvas_pixel(driver, thumb, 6, 0) == gray_rgb(values[1, 2, 0, 6])
    assert legend.find_elements(By.CSS_SELECTOR, "rect[fill^='rgb']")[0].get_attribute("fill") == "rgb(0,0,0)"
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_origin_and_its_most_attended_token_are_highlighted(driver, page):
    from selenium.webdriver.common.by import By

    url = open_viewer(driver, page)
    values = stored_values(page.read_text("utf-8"))
    click(driver, css(driver, "#thumb-1-2"))            # layer 1, head 2: previous token
    i = 4
    j = int(np.argmax(values[0, 1, i]))
    assert j == 3
    origin = css(driver, f'#head-view .hv-token.left[data-index="{i}"]')
    hover(driver, origin)
    assert "origin" in classes(origin)
    origins = driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-token.origin")
    assert [t.get_attribute("data-index") for t in origins] == [str(i)]
    tops = driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-token.top")
    assert [(t.get_attribute("data-index"), "right" in classes(t)) for t in tops] == [(str(j), True)]
    assert origin.value_of_css_property("background-color") == "rgba(35, 88, 214, 1)"    # blue
    assert tops[0].value_of_css_property("outline-color") == "rgba(214, 39, 40, 1)"       # red
    top_value = css(driver, "#head-view .hv-value.right.top")
    assert (top_value.get_attribute("data-index"), top_value.text) == (str(j), shown(values[0, 1, i, j]))
    top_lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line.top")
    top_ends = [(line.get_attribute("data-from"), line.get_attribute("data-to")) for line in top_lines]
    assert top_ends == [(str(i), str(j))]
    assert driver.execute_script("return getComputedStyle(arguments[0]).stroke", top_lines[0]) == "rgb(214, 39, 40)"
    readout = css(driver, "#hv-origin")
    assert readout.text == f"'[MASK]' attends most to 'sat': {shown(values[0, 1, i, j])}"
    assert readout.get_attribute("data-value") == shown(values[0, 1, i, j])

    # The matrix outlines the origin's row (blue) and the most-attended column (red).
    cell = int(css(driver, '#matrix rect.cell[data-row="0"][data-col="0"]').get_attribute("height"))
    row_box, col_box = css(driver, "#matrix rect.origin-row"), css(driver, "#matrix rect.top-col")
    assert (row_box.get_attribute("visibility"), int(float(row_box.get_attribute("y")))) == ("visible", i * cell)
    assert (col_box.get_attribute("visibility"), int(float(col_box.get_attribute("x")))) == ("visible", j * cell)
    assert (row_box.get_attribute("stroke"), col_box.get_attribute("stroke")) == ("#2358d6", "#d62728")
    assert css(driver, "#matrix-origin").get_attribute("data-value") == shown(values[0, 1, i, j])

    hover(driver, css(driver, "#sentence"))
    assert driver.find_elements(By.CSS_SELECTOR, ".hv-token.origin, .hv-token.top, line.top") == []
    assert row_box.get_attribute("visibility") == "hidden"
    # Without a focused token, the row under the pointer is the origin.
    hover_cell(driver, 6, 0)
    assert int(float(row_box.get_attribute("y"))) == 6 * cell
    assert int(float(col_box.get_attribute("x"))) == int(np.argmax(values[0, 1, 6])) * cell
    readout = css(driver, "#matrix-origin")
    assert (readout.get_attribute("data-from"), readout.get_attribute("data-to")) == ("6", "5")

    # A pinned origin keeps its highlight across heads: the [CLS] head's top is token 0.
    click(driver, css(driver, '#head-view .hv-token.left[data-index="2"]'))
    click(driver, css(driver, "#thumb-2-1"))
    tops = driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-token.top")
    assert [t.get_attribute("data-index") for t in tops] == ["0"]
    assert css(driver, "#hv-origin").get_attribute("data-value") == shown(values[1, 0, 2, 0])
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def _check_hidden_values(driver, expected: np.ndarray, keep: list[int]):
    """With the switch on: the page shows `expected` (layer 2, head 2, rows renormalized over keep)."""
    from selenium.webdriver.common.by import By

    assert len(driver.find_elements(By.CSS_SELECTOR, "#matrix rect.cell")) == len(keep) ** 2
    left = driver.find_elements(By.CSS_SELECTOR, "#head-view .hv-token.left")
    assert [int(t.get_attribute("data-index")) for t in left] == keep
    assert driver.find_elements(
        By.CSS_SELECTOR, '#matrix rect.cell[data-col="0"], #matrix rect.cell[data-row="6"]') == []
    for a, b in [(0, 0), (2, 1), (4, 3), (1, 4)]:
        text = hover_cell(driver, keep[a], keep[b])
        assert text.startswith(f"from '{TOKENS[keep[a]]}' to '{TOKENS[keep[b]]}': ")
        assert float(text.rsplit(": ", 1)[1]) == pytest.approx(expected[a, b], abs=5e-4 + 1e-9)

    # The head view's numbers are the renormalized row, which sums to 1.
    click(driver, css(driver, '#head-view .hv-token.left[data-index="3"]'))
    shown_row = [float(css(driver, f'#head-view .hv-value.right[data-index="{j}"]').text) for j in keep]
    np.testing.assert_allclose(shown_row, expected[2], atol=5e-4 + 1e-9)
    assert sum(shown_row) == pytest.approx(1.0, abs=3e-3)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")) == len(keep)
    assert css(driver, "#hv-origin").get_attribute("data-value") == f"{max(shown_row):.3f}"
    click(driver, css(driver, '#head-view .hv-token.left[data-index="3"]'))   # unpin

    # The thumbnails shrink to the visible tokens and show renormalized values.
    thumb = css(driver, "#thumb-2-2 canvas")
    assert thumb.get_attribute("width") == str(len(keep))
    assert canvas_pixel(driver, thumb, 1, 2) == gray_rgb(shown_row[1])


def test_hiding_special_tokens_renormalizes_rows(driver, tmp_path):
    from selenium.webdriver.common.by import By

    path = write_page(tmp_path, special_tokens=[0, N - 1])
    url = open_viewer(driver, path)
    keep = list(range(1, N - 1))
    switch = css(driver, "#hide-special")
    assert switch.is_enabled() and not switch.is_selected()
    assert css(driver, "#hide-special-label").text == "Hide [CLS]/[SEP]"

    click(driver, css(driver, "#thumb-2-2"))     # layer 2, head 2: mostly [SEP]
    click(driver, switch)
    assert switch.is_selected()
    expected = without_special(ATT[1, 1], keep)
    assert abs(expected[2, 1] - ATT[1, 1, 3, 2]) > 0.05   # hiding changes the numbers
    _check_hidden_values(driver, expected, keep)

    click(driver, switch)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#matrix rect.cell")) == N * N
    assert hover_cell(driver, 3, 2) == f"from 'sat' to 'cat': {shown(ATT[1, 1, 3, 2])}"
    assert css(driver, "#thumb-2-2 canvas").get_attribute("width") == str(N)
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)

    # Data without viewer.py's renormalized rows: the page renormalizes the
    # stored 3-decimal values itself.
    html = path.read_text("utf-8")
    payload = extract_payload(html)
    raw = decode_attention(payload).astype(np.float64)
    del payload["attention_without_special"]
    block = '<script type="application/json" id="data">'
    start = html.index(block) + len(block)
    fallback = tmp_path / "fallback.html"
    fallback.write_text(html[:start] + viewer.embed_json(payload) + html[html.index("</script>", start):],
                        encoding="utf-8")
    url = open_viewer(driver, fallback)
    click(driver, css(driver, "#thumb-2-2"))
    click(driver, css(driver, "#hide-special"))
    _check_hidden_values(driver, without_special(raw[1, 1], keep), keep)
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_threshold_hides_weak_lines(driver, page):
    from selenium.webdriver.common.by import By

    url = open_viewer(driver, page)
    raw = decode_attention(extract_payload(page.read_text("utf-8")))
    click(driver, css(driver, "#thumb-2-3"))            # layer 2, head 3: mirror
    assert len(driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")) == N * N

    set_threshold(driver, 20)                    # 0.20, by keyboard
    assert css(driver, "#threshold-value").text == "0.20"
    assert selected(driver) == (2, 3)            # the arrows moved the slider, not the head
    lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")
    drawn = {(int(line.get_attribute("data-from")), int(line.get_attribute("data-to"))) for line in lines}
    expected = {(i, j) for i in range(N) for j in range(N) if raw[1, 2, i, j] >= 200}
    assert drawn == expected and 0 < len(expected) < N * N
    assert min(float(line.get_attribute("stroke-opacity")) for line in lines) >= 0.2

    hover(driver, css(driver, '#head-view .hv-token.left[data-index="0"]'))
    lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")
    drawn = {int(line.get_attribute("data-to")) for line in lines}
    assert drawn == {j for j in range(N) if raw[1, 2, 0, j] >= 200}
    # The numbers are still all shown.
    assert all(css(driver, f'#head-view .hv-value.right[data-index="{j}"]').text for j in range(N))
    hover(driver, css(driver, "#sentence"))

    set_threshold(driver, -20)
    assert css(driver, "#threshold-value").text == "0.00"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")) == N * N
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def _view_size(drv, view: str) -> tuple[int, int]:
    selector = {"head": "#head-view .hv", "matrix": "#matrix svg", "model": "#model-view"}[view]
    return tuple(drv.execute_script(
        "var r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [Math.ceil(r.width), Math.ceil(r.height)];", selector))


def _png_from_data_url(url: str):
    from io import BytesIO

    from PIL import Image

    assert url.startswith("data:image/png;base64,"), url[:80]
    image = Image.open(BytesIO(base64.b64decode(url.split(",", 1)[1])))
    image.load()
    return image.convert("RGB")


def test_export_views_as_svg_and_png(driver, page, tmp_path):
    import xml.etree.ElementTree as ET

    from selenium.webdriver.support.ui import Select, WebDriverWait

    url = open_viewer(driver, page)
    values = stored_values(page.read_text("utf-8"))
    Select(css(driver, "#color-scale")).select_by_value("heat")
    click(driver, css(driver, '#head-view .hv-token.left[data-index="3"]'))   # pin 'sat': origin + top

    exports = {}
    for view in ("head", "matrix", "model"):
        text = driver.execute_script("return window.attentionViewer.exportSVG(arguments[0])", view)
        root = ET.fromstring(text)
        assert root.tag == f"{SVG}svg"
        size = _view_size(driver, view)
        assert (int(float(root.get("width"))), int(float(root.get("height")))) == size
        png = driver.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "window.attentionViewer.exportPNG(arguments[0]).then(done, function (e) { done('error: ' + e); });", view)
        image = _png_from_data_url(png)
        assert image.size == size
        exports[view] = (root, image)

    # Head view: the pinned token's lines (one red), and every token as text.
    root, image = exports["head"]
    lines = root.findall(f".//{SVG}line")
    assert len(lines) == N and {line.get("data-from") for line in lines} == {"3"}
    assert [line.get("stroke") for line in lines].count("rgb(214, 39, 40)") == 1
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts.count("sat") == 2 and shown(values[0, 0, 3, 3]) in texts
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    assert np.any((pixels[:, 0] > 190) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80))   # the red outline

    # Matrix: the cells with the page's colours; the PNG shows them in place.
    root, image = exports["matrix"]
    cells = {(c.get("data-row"), c.get("data-col")): c.get("fill")
             for c in root.iter(f"{SVG}rect") if c.get("class") == "cell"}
    assert len(cells) == N * N
    assert cells[("0", "6")] == css_rgb(heat_rgb(values[0, 0, 0, 6]))
    for row, col in [(0, 6), (3, 3)]:
        x, y = driver.execute_script(
            "var c = document.querySelector("
            "'#matrix rect.cell[data-row=\"' + arguments[0] + '\"][data-col=\"' + arguments[1] + '\"]');"
            "var r = c.getBoundingClientRect(), s = document.querySelector('#matrix svg').getBoundingClientRect();"
            "return [Math.floor(r.left - s.left + r.width / 2), Math.floor(r.top - s.top + r.height / 2)];", row, col)
        pixel = image.getpixel((x, y))
        expected = heat_rgb(values[0, 0, row, col])
        assert max(abs(p - e) for p, e in zip(pixel, expected, strict=False)) <= 2, (pixel, row, col)

    # Model view: one embedded PNG per head.
    root, image = exports["model"]
    images = root.findall(f".//{SVG}image")
    assert len(images) == LAYERS * HEADS
    assert all(i.get("href").startswith("data:image/png;base64,") for i in images)

    # The buttons download the same files (Blob + object URL + <a download>).
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        for view, fmt in [("matrix", "svg"), ("head", "png")]:
            click(driver, css(driver, f'button.export-btn[data-view="{view}"][data-format="{fmt}"]'))
        wanted = {"attention-matrix-L1-H1.svg", "attention-head-view-L1-H1.png"}
        WebDriverWait(driver, 15).until(lambda d: {p.name for p in downloads.iterdir()} >= wanted)
        svg_root = ET.parse(downloads / "attention-matrix-L1-H1.svg").getroot()
        assert svg_root.tag == f"{SVG}svg"
        assert len([c for c in svg_root.iter(f"{SVG}rect") if c.get("class") == "cell"]) == N * N
        from PIL import Image

        with Image.open(downloads / "attention-head-view-L1-H1.png") as png:
            assert png.size == _view_size(driver, "head")
    finally:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "default"})
    assert css(driver, "#export-status").text == ""
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_query_key_view_reproduces_the_attention_row(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path = write_page(tmp_path, attentions=QK_ATT, query_key=QK)
    url = open_viewer(driver, path)
    values = stored_values(path.read_text("utf-8"))
    assert css(driver, "#qk-card").is_displayed()
    assert css(driver, "#qk-token").get_attribute("value") == "4"   # the mask
    click(driver, css(driver, "#thumb-2-3"))
    Select(css(driver, "#qk-token")).select_by_value("3")
    rows = driver.find_elements(By.CSS_SELECTOR, "#qk-table tr.qk-row")
    assert [int(r.get_attribute("data-index")) for r in rows] == list(range(N))

    def column(name):
        return np.array([float(r.find_element(By.CSS_SELECTOR, f"td.{name}").get_attribute("data-value"))
                         for r in rows])

    q32 = QK.astype(np.float32).astype(np.float64)
    q, keys = q32[1, 2, 0, 3], q32[1, 2, 1]
    np.testing.assert_allclose(column("qk-score"), keys @ q / np.sqrt(QK_D), atol=1e-5)
    softmax = column("qk-softmax")
    np.testing.assert_allclose(softmax, values[1, 2, 3], atol=1e-3)      # = the attention row
    np.testing.assert_allclose(softmax, QK_ATT[1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(column("qk-attention"), values[1, 2, 3], atol=1e-9)

    # Colour strips: q and k share one scale, the products another.
    scale = max(np.abs(q).max(), np.abs(keys).max())
    strip = css(driver, "#qk-query")
    assert strip.get_attribute("width") == str(QK_D)
    assert [canvas_pixel(driver, strip, c, 0) for c in range(QK_D)] == [diverging_rgb(v / scale) for v in q]
    assert {diverging_rgb(v / scale)[2] for v in q if v < 0} == {255}     # negatives are blue
    products = q * keys
    product_strip = rows[5].find_element(By.CSS_SELECTOR, "canvas.qk-prod")
    assert [canvas_pixel(driver, product_strip, c, 0) for c in range(QK_D)] == \
        [diverging_rgb(v / np.abs(products).max()) for v in products[5]]

    # Pinning an attending token in the head view makes it the query.
    click(driver, css(driver, '#head-view .hv-token.left[data-index="5"]'))
    assert css(driver, "#qk-token").get_attribute("value") == "5"
    rows = driver.find_elements(By.CSS_SELECTOR, "#qk-table tr.qk-row")
    np.testing.assert_allclose(column("qk-softmax"), values[1, 2, 5], atol=1e-3)
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_query_key_view_float16_causal_and_hidden_tokens(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # A causal model, float16 queries and keys: keys after the query are masked.
    tokens = ["The", "cat", "sat", "on", "the"]
    query_key = QK[:, :, :, :5]
    att = softmax_of_scores(query_key, causal=True)
    path = write_page(tmp_path, "causal.html", text="The cat sat on the", tokens=tokens, attentions=att,
                      patterns=None, prediction_kind="next", query_key=query_key, query_key_dtype="float16",
                      predictions=[{"candidates": [{"token": " mat", "sentence": "The cat sat on the mat",
                                                    "probability": 0.3}]}])
    url = open_viewer(driver, path)
    values = stored_values(path.read_text("utf-8"))
    assert css(driver, "#qk-token").get_attribute("value") == "4"   # the last token
    Select(css(driver, "#qk-token")).select_by_value("2")
    rows = driver.find_elements(By.CSS_SELECTOR, "#qk-table tr.qk-row")
    assert ["masked" in classes(r) for r in rows] == [False, False, False, True, True]
    assert [r.find_element(By.CSS_SELECTOR, "td.qk-score").text for r in rows[3:]] == ["masked", "masked"]
    softmax = [float(r.find_element(By.CSS_SELECTOR, "td.qk-softmax").get_attribute("data-value")) for r in rows]
    np.testing.assert_allclose(softmax, values[0, 0, 2, :5], atol=1e-3)
    assert softmax[3:] == [0.0, 0.0]
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)

    # Hidden special tokens: the softmax over the visible keys is the renormalized row.
    path = write_page(tmp_path, "hidden.html", attentions=QK_ATT, query_key=QK, special_tokens=[0, N - 1])
    url = open_viewer(driver, path)
    click(driver, css(driver, "#hide-special"))
    click(driver, css(driver, "#thumb-1-3"))
    Select(css(driver, "#qk-token")).select_by_value("2")
    rows = driver.find_elements(By.CSS_SELECTOR, "#qk-table tr.qk-row")
    assert [int(r.get_attribute("data-index")) for r in rows] == list(range(1, N - 1))
    softmax = np.array([float(r.find_element(By.CSS_SELECTOR, "td.qk-softmax").get_attribute("data-value"))
                        for r in rows])
    shown_attention = np.array([float(r.find_element(By.CSS_SELECTOR, "td.qk-attention").get_attribute("data-value"))
                                for r in rows])
    exact = without_special(QK_ATT[0, 2], list(range(1, N - 1)))[1]
    np.testing.assert_allclose(shown_attention, exact, atol=5e-4 + 1e-9)
    np.testing.assert_allclose(softmax, exact, atol=1e-5)
    np.testing.assert_allclose(softmax, shown_attention, atol=1e-3)
    assert softmax.sum() == pytest.approx(1.0, abs=1e-5)
    assert [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#qk-token option")] == \
        [str(i) for i in range(1, N - 1)]
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_rollout_is_a_layer_entry(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    rollout = make_rollout(QK_ATT)
    path = write_page(tmp_path, attentions=QK_ATT, query_key=QK, rollout=rollout)
    url = open_viewer(driver, path)
    options = driver.find_elements(By.CSS_SELECTOR, "#layer option")
    assert [(o.get_attribute("value"), o.text) for o in options] == [("1", "1"), ("2", "2"), ("rollout", "Rollout")]
    assert css(driver, "#head").is_enabled()

    Select(css(driver, "#layer")).select_by_value("rollout")
    assert not css(driver, "#head").is_enabled()
    assert css(driver, "#selection").text == "Rollout (all layers)"
    assert driver.find_elements(By.CSS_SELECTOR, "#model-view .thumb.selected") == []
    expected = np.rint(rollout * 1000) / 1000
    assert hover_cell(driver, 3, 1) == f"from 'sat' to 'the': {shown(rollout[3, 1])}"
    assert cell_fill(driver, 5, 2) == css_rgb(gray_rgb(expected[5, 2]))
    hover(driver, css(driver, '#head-view .hv-token.left[data-index="3"]'))
    lines = driver.find_elements(By.CSS_SELECTOR, "#head-view line.attn-line")
    opacities = {int(line.get_attribute("data-to")): float(line.get_attribute("stroke-opacity")) for line in lines}
    assert opacities == {j: pytest.approx(expected[3, j]) for j in range(N) if expected[3, j] > 0}
    assert css(driver, '#head-view .hv-value.right[data-index="1"]').text == shown(rollout[3, 1])
    assert css(driver, "#qk-note").is_displayed() and not css(driver, "#qk-table").is_displayed()

    click(driver, css(driver, "#sentence"))
    press(driver, Keys.ARROW_UP)
    assert selected(driver) == (2, 1) and css(driver, "#head").is_enabled()
    assert hover_cell(driver, 3, 1) == f"from 'sat' to 'the': {shown(QK_ATT[1, 0, 3, 1])}"
    press(driver, Keys.ARROW_DOWN)
    assert css(driver, "#layer").get_attribute("value") == "rollout"
    click(driver, css(driver, "#thumb-1-2"))
    assert selected(driver) == (1, 2) and css(driver, "#head").is_enabled()
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_segments_are_marked_with_a_legend(driver, tmp_path):
    from selenium.webdriver.common.by import By

    tokens = ["[CLS]", "the", "cat", "[SEP]", "it", "sat", "[SEP]"]
    segments = [0, 0, 0, 0, 1, 1, 1]
    path = write_page(tmp_path, text="the cat [SEP] it sat", tokens=tokens, predictions=None, segments=segments)
    url = open_viewer(driver, path)
    legend = css(driver, "#segment-legend")
    assert legend.is_displayed() and "Segment A" in legend.text and "Segment B" in legend.text
    for side in ("left", "right"):
        marks = [("seg-b" in classes(t), "seg-a" in classes(t))
                 for t in driver.find_elements(By.CSS_SELECTOR, f"#head-view .hv-token.{side}")]
        assert marks == [(bool(s), not s) for s in segments]
    teal, gray = "rgb(42, 157, 143)", "rgb(170, 178, 189)"
    assert teal in css(driver, '#head-view .hv-token.left[data-index="5"]').value_of_css_property("box-shadow")
    assert gray in css(driver, '#head-view .hv-token.right[data-index="1"]').value_of_css_property("box-shadow")
    bars = driver.find_elements(By.CSS_SELECTOR, "#matrix rect.seg-bar")
    assert len(bars) == 2 * N
    for bar in bars:
        segment = segments[int(bar.get_attribute("data-index"))]
        assert bar.get_attribute("data-segment") == str(segment)
        assert bar.get_attribute("fill") == ("#2a9d8f" if segment else "#aab2bd")
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_next_token_predictions_are_titled_and_mark_the_last_token(driver, tmp_path):
    from selenium.webdriver.common.by import By

    tokens = ["The", "cat", "sat", "on", "the"]
    att = softmax_of_scores(QK[:, :, :, :5], causal=True)
    candidates = [{"token": w, "sentence": f"The cat sat on the{w}", "probability": p}
                  for w, p in [(" mat", 0.31), (" floor", 0.12)]]
    path = write_page(tmp_path, text="The cat sat on the", tokens=tokens, attentions=att, patterns=None,
                      predictions=[{"candidates": candidates}], prediction_kind="next")
    url = open_viewer(driver, path)
    box = css(driver, "#predictions")
    assert box.is_displayed() and box.get_attribute("aria-label") == "Next token"
    group = css(driver, "#predictions .pred-group")
    assert group.get_attribute("data-mask-index") == "4"
    assert group.find_element(By.CSS_SELECTOR, "h3").text.startswith("Next token")
    assert "fill-in" not in box.text.lower()
    assert [c.text for c in group.find_elements(By.CSS_SELECTOR, ".pred-prob")] == ["31.0%", "12.0%"]
    for side in ("left", "right"):
        marked = driver.find_elements(By.CSS_SELECTOR, f"#head-view .hv-token.{side}.mask")
        assert [t.get_attribute("data-index") for t in marked] == ["4"]
    assert len(driver.find_elements(By.CSS_SELECTOR, "#matrix text.label.mask")) == 2
    assert_no_console_errors(driver)
    assert_no_network_requests(driver, url)


def test_feature_screenshot_artifact(driver, tmp_path):
    from selenium.webdriver.support.ui import Select

    tokens = ["[CLS]", "the", "cat", "sat", "on", "the", "[MASK]", ".", "[SEP]", "it", "was", "tired", ".", "[SEP]"]
    n = len(tokens)
    rng = np.random.default_rng(7)
    query_key = rng.normal(size=(4, 6, 2, n, 16)) * 1.6
    att = softmax_of_scores(query_key)
    predictions = [{"mask_index": 6, "candidates": [
        {"token": w, "sentence": f"the cat sat on the {w}. it was tired.", "probability": p}
        for w, p in [("mat", 0.41), ("floor", 0.17), ("bed", 0.09)]]}]
    path = tmp_path / "attention.html"
    path.write_text(viewer.render_viewer_html(
        text="The cat sat on the [MASK]. [SEP] It was tired.", tokens=tokens, attentions=att,
        predictions=predictions, model_name="bert-base-uncased", special_tokens=[0, 8, 13],
        segments=[0] * 9 + [1] * 5, rollout=make_rollout(att), query_key=query_key), encoding="utf-8")
    url = open_viewer(driver, path)
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], min(height + 400, 4000))
    artifacts = Path(os.environ.get("ATTENTION_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        Select(css(driver, "#color-scale")).select_by_value("heat")
        click(driver, css(driver, "#hide-special"))
        click(driver, css(driver, "#thumb-2-4"))
        set_threshold(driver, 5)
        click(driver, css(driver, '#head-view .hv-token.left[data-index="3"]'))   # pin "sat"
        hover_cell(driver, 3, 2)
        shot = artifacts / "viewer_features_screenshot.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        Select(css(driver, "#layer")).select_by_value("rollout")
        shot = artifacts / "viewer_rollout_screenshot.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        assert_no_console_errors(driver)
        assert_no_network_requests(driver, url)
    finally:
        driver.set_window_size(size["width"], size["height"])

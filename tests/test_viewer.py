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
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import viewer  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"

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
    # No external resources: the only URL is the SVG namespace identifier.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!data:)", html)
    assert "@import" not in html and "url(" not in html


def test_template_documents_stable_ids():
    template = viewer.TEMPLATE_PATH.read_text(encoding="utf-8")
    header = template.split("<html", 1)[0]
    for element_id in ("layer", "head", "matrix", "cell-value", "head-view", "model-view",
                       "predictions", "patterns", "sentence", "model-name"):
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


def _browser_unavailable() -> str | None:
    if not os.path.exists(CHROMEDRIVER):
        return f"{CHROMEDRIVER} not found (apt-get install chromium chromium-driver)"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    reason = _browser_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path means Selenium Manager is never run (no downloads).
    service = Service(executable_path=CHROMEDRIVER)
    drv = webdriver.Chrome(service=service, options=options)
    drv.set_page_load_timeout(30)
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

    ActionChains(drv).move_to_element(element).perform()


def hover_cell(drv, row, col):
    """Hover a matrix cell and return the status text."""
    # Move off the grid first so a fresh mouseover always fires.
    hover(drv, css(drv, "#sentence"))
    hover(drv, css(drv, f'#matrix rect.cell[data-row="{row}"][data-col="{col}"]'))
    return css(drv, "#cell-value").text


def press(drv, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(drv).send_keys(key).perform()


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
        driver.switch_to.alert.text
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
        driver.switch_to.alert.text
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
            weights = sum(w * p for w, p in zip(mix, patterns)) + 0.05 * rng.random((n, n)) ** 3
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

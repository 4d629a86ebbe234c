"""
The notebook API (mask.explain -> AttentionRun) beyond what tests/test_run.py checks
against the command line: queries and keys (the identity softmax(q k^T / sqrt(d)) =
attention on real heads, and the vectors against the checkpoint's own weights), what
the viewer page carries (special tokens, queries and keys within the size budget), the
inline viewer (_repr_html_: an escaped, self-contained <iframe srcdoc> that renders in
headless Chromium inside a host page with no console errors and no requests), the
readable repr and the one-line errors.
"""

import base64
import html
import json
import os
import re
import time

import chromium
import numpy as np
import pytest
from conftest import ROOT, assert_one_line_failure, call_main
from safetensors.numpy import load_file
from test_viewer import assert_no_console_errors, assert_no_network_requests

import attention_run
import mask
import query_key
import viewer
from errors import UserError

TEXT = "The cat sat on the [MASK]."


def payload_of(page):
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1)
    return json.loads(data)


def decoded_query_key(payload):
    """The page's query_key field as (layers, heads, 2, n, d) float32."""
    field = payload["query_key"]
    assert field["encoding"] == "base64-float32le"
    values = np.frombuffer(base64.b64decode(field["data"]), dtype="<f4")
    return values.reshape(payload["layers"], payload["heads"], 2, payload["n"], field["d"])


# ---- queries and keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["tiny_safetensors", "bundled"])
def test_softmax_of_queries_and_keys_is_the_attention_of_every_head(model, request):
    """The identity the notebooks teach, on every head: no padding in one sentence, so no mask term."""
    name = "bundled" if model == "bundled" else request.getfixturevalue(model)
    run = mask.explain("The turtle slowly moved across the [MASK].", model=name)
    layers, heads, n, _ = run.attentions.shape
    for layer in range(1, layers + 1):
        for head in range(1, heads + 1):
            queries, keys = run.query_key(layer, head)
            assert queries.dtype == keys.dtype == np.float32 and queries.shape == keys.shape
            assert queries.shape[0] == n and queries.shape[1] * heads == run.query_key_source.network.config.hidden_size
            np.testing.assert_allclose(query_key.attention_from(queries, keys), run.attentions[layer - 1, head - 1],
                                       atol=1e-5, rtol=0)


def test_queries_and_keys_are_the_checkpoints_projections_of_the_hidden_states(tiny_safetensors):
    """q = h W_q^T + b_q with the file's own tensors (PyTorch layout) and the layer's input h, split per head."""
    run = mask.explain(TEXT, model=tiny_safetensors)
    tensors = load_file(os.path.join(tiny_safetensors, "model.safetensors"))
    hidden = run.query_key_source.hidden_states  # (layers + 1, n, hidden): entry l = input of layer l + 1
    layers, heads = run.attentions.shape[:2]
    assert hidden.shape[0] == layers + 1
    d = hidden.shape[-1] // heads
    for layer in range(layers):
        prefix = f"bert.encoder.layer.{layer}.attention.self."
        for index, kind in enumerate(["query", "key"]):
            projected = hidden[layer] @ tensors[prefix + kind + ".weight"].T + tensors[prefix + kind + ".bias"]
            for head in range(heads):
                np.testing.assert_allclose(run.query_key(layer + 1, head + 1)[index],
                                           projected[:, head * d:(head + 1) * d], atol=1e-5)


def test_queries_and_keys_are_computed_only_when_asked(tiny_h5, monkeypatch):
    calls = []
    original = query_key.queries_and_keys
    monkeypatch.setattr(query_key, "queries_and_keys", lambda *args: calls.append(1) or original(*args))
    run = mask.explain(TEXT, model=tiny_h5)
    assert calls == []
    run.query_key(1, 1)
    run.query_key(2, 2)
    run.viewer_html()
    assert calls == [1]  # once per run, then kept


def test_word_level_runs_have_no_queries_and_keys(tiny_h5):
    run = mask.explain("The wonderful cat was playing with a [MASK].", model=tiny_h5, words=True)
    assert "wonderful" in run.tokens
    with pytest.raises(UserError, match=r"^Queries and keys belong to tokens, not merged words: run without "
                                        r"words=True\.$"):
        run.query_key(1, 1)
    payload = payload_of(run.viewer_html())
    assert payload["query_key"] is None
    assert [run.tokens[i] for i in payload["special_tokens"]] == ["[CLS]", "[SEP]"]


def test_a_family_without_projections_says_so_and_the_page_has_no_vectors(tiny_h5, monkeypatch):
    run = mask.explain(TEXT, model=tiny_h5)
    monkeypatch.setattr(query_key, "PROJECTIONS", {})  # as for a family query_key.py doesn't know yet
    with pytest.raises(UserError, match=r"^Queries and keys of bert models are not available yet "):
        run.query_key(1, 1)
    assert payload_of(run.viewer_html())["query_key"] is None
    assert "<iframe srcdoc=" in run._repr_html_()


@pytest.mark.parametrize("layer, head", [(0, 1), (3, 1), (1, 0), (1, 3), (1.0, 1), (True, 1), ("1", 1)])
def test_layers_and_heads_count_from_one_without_wrapping(layer, head, tiny_h5):
    run = mask.explain(TEXT, model=tiny_h5)  # 2 layers x 2 heads
    for method in (run.diagram, run.query_key):
        with pytest.raises(ValueError, match=r"must be a whole number from 1 to 2"):
            method(layer, head)


# ---- what the viewer page carries ---------------------------------------------------------------------


def test_command_line_page_carries_special_tokens_and_the_runs_queries_and_keys(tiny_h5, tmp_path):
    text = "The cat sat. [SEP] The dog [MASK]."  # a typed [SEP] is hidden too; [MASK] never is
    cli = call_main([text, "--model", tiny_h5, "--output-dir", str(tmp_path)])
    assert cli.status == 0, cli
    payload = payload_of((tmp_path / "attention.html").read_text("utf-8"))
    tokens = payload["tokens"]
    assert [tokens[i] for i in payload["special_tokens"]] == ["[CLS]", "[SEP]", "[SEP]"]
    assert "[MASK]" in tokens and payload["attention_without_special"]
    run = mask.explain(text, model=tiny_h5)
    assert run.special_tokens == payload["special_tokens"]
    stored = decoded_query_key(payload)
    assert stored.shape == (2, 2, 2, len(tokens), 16)
    for layer, head in [(1, 1), (2, 2)]:
        queries, keys = run.query_key(layer, head)
        np.testing.assert_array_equal(stored[layer - 1, head - 1, 0], queries)
        np.testing.assert_array_equal(stored[layer - 1, head - 1, 1], keys)


def test_queries_and_keys_are_left_out_of_a_page_past_the_size_budget(tiny_h5, monkeypatch):
    run = mask.explain(TEXT, model=tiny_h5)
    with_vectors = run.viewer_html()
    without = viewer.render_viewer_html(**run._viewer_fields())
    assert payload_of(with_vectors)["query_key"] is not None
    assert len(with_vectors.encode()) <= viewer.SIZE_BUDGET_BYTES
    # a budget that holds the page but not the vectors: the page without them, never a bigger one
    monkeypatch.setattr(viewer, "SIZE_BUDGET_BYTES", len(with_vectors.encode()) - 1)
    assert run.viewer_html() == without
    monkeypatch.setattr(viewer, "SIZE_BUDGET_BYTES", len(with_vectors.encode()) + 100)
    assert run.viewer_html() == with_vectors


def test_the_bundled_model_keeps_queries_and_keys_on_a_40_token_page():
    """The figure README quotes: the bundled model's page with its vectors stays within the budget at 40 tokens."""
    text = " ".join(["the cat sat on the mat and"] * 5) + " the [MASK] ."
    run = mask.explain(text, model="bundled")
    assert len(run.tokens) >= 40
    page = run.viewer_html()
    assert payload_of(page)["query_key"] is not None and len(page.encode()) <= viewer.SIZE_BUDGET_BYTES


# ---- in a notebook ------------------------------------------------------------------------------------


def srcdoc_of(inline):
    match = re.fullmatch(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts allow-downloads" title="[^"]*" '
                         r'style="[^"]*"></iframe>', inline)
    assert match, inline[:300]
    return html.unescape(match.group(1))


HOSTILE = 'The "cat" & <b>dog</b> </iframe><script>parent.document.title="pwned"</script> [MASK] \' sat.'


def test_repr_html_is_the_viewer_page_in_an_escaped_srcdoc(tiny_h5):
    run = mask.explain(HOSTILE, model=tiny_h5)
    inline = run._repr_html_()
    assert inline.count("<") == 2 and inline.count(">") == 2  # the iframe's own tags; the page is all entities
    assert srcdoc_of(inline) == run.viewer_html()
    assert payload_of(srcdoc_of(inline))["text"] == HOSTILE


def test_repr_html_references_nothing_on_the_network(tiny_h5):
    inline = mask.explain(TEXT, model=tiny_h5)._repr_html_()
    for page in (inline, srcdoc_of(inline)):
        urls = set(re.findall(r"https?://[^\s\"'<>)&]+", page))
        assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls  # names, never fetched
        assert not re.search(r"\b(src|href)\s*=\s*[\"'](?!data:)", page)
        assert "<script src" not in page and "@import" not in page and "url(" not in page


def test_long_text_shows_the_overview_inline(tiny_h5, monkeypatch):
    run = mask.explain(TEXT, model=tiny_h5)
    monkeypatch.setattr(run, "style", attention_run.Style(**{**vars(run.style), "max_tokens": 3}))
    inline = run._repr_html_()
    assert "<iframe" not in inline and 'src="data:image/png;base64,' in inline
    assert inline.startswith(f"<p>{len(run.tokens)} tokens are more than the 3 the viewer shows legibly")


def test_repr_is_a_few_readable_lines(tiny_safetensors):
    run = mask.explain("The [MASK] sat on the [MASK].", model=tiny_safetensors, top_k=2)
    text = repr(run)
    lines = text.splitlines()
    assert lines[0] == f"AttentionRun(text='The [MASK] sat on the [MASK].', model={run.model!r})"
    assert lines[1] == f"  tokens ({len(run.tokens)}): " + " ".join(run.tokens)
    assert lines[2] == f"  attentions: 3 layers x 4 heads x {len(run.tokens)} x {len(run.tokens)} tokens, float32"
    assert lines[3].startswith("  fill-ins, mask 1: ") and lines[4].startswith("  fill-ins, mask 2: ")
    assert lines[3].count("(") == 2  # top_k candidates, each with its probability
    assert len(lines) == 6 and str(run) == text


@pytest.mark.parametrize(
    "argv, call",
    [
        (["No mask here."], dict(text="No mask here.")),
        (["   "], dict(text="   ")),
        (["The [MASK] sat.", "--model", "/nonexistent/model/dir"], dict(text="The [MASK] sat.",
                                                                        model="/nonexistent/model/dir")),
    ],
)
def test_errors_are_the_command_lines_one_line(argv, call, tiny_h5):
    if "--model" not in argv:
        argv, call = argv + ["--model", tiny_h5], {**call, "model": tiny_h5}
    line = assert_one_line_failure(call_main(argv))
    with pytest.raises(UserError) as raised:
        mask.explain(**call)
    assert str(raised.value) == line


def test_bad_arguments_raise_instead_of_exiting(tiny_h5):
    with pytest.raises(UserError, match=r"^top_k must be a whole number of at least 1, not 0$"):
        mask.explain(TEXT, model=tiny_h5, top_k=0)
    with pytest.raises(TypeError, match="text must be a string"):
        mask.explain(None, model=tiny_h5)


# ---- the inline viewer in a browser -------------------------------------------------------------------

# A host page that styles and scripts everything it can reach, as a notebook's own CSS and JavaScript do
HOST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>notebook</title>
<style>body {{ font-family: monospace; color: red; }} svg, canvas, select {{ display: none !important; }}
.hv-token {{ visibility: hidden; }}</style>
<script>window.attentionViewer = "the notebook's own"; var byId = null;</script>
</head><body><div class="jp-OutputArea-output">{output}</div></body></html>
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium.require()
    driver = chromium.start("1300,1000", profile=tmp_path_factory.mktemp("chromium-profile"), logs=True)
    try:
        yield driver
    finally:
        driver.quit()


def test_inline_viewer_works_in_a_sandboxed_iframe_offline(browser, tiny_h5, tmp_path):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    run = mask.explain(HOSTILE, model=tiny_h5)
    host = tmp_path / "notebook.html"
    host.write_text(HOST_PAGE.format(output=run._repr_html_()), encoding="utf-8")
    browser.get_log("browser")
    browser.get_log("performance")
    url = host.resolve().as_uri()
    browser.get(url)
    assert browser.title == "notebook"  # the page's hostile text ran nothing in the notebook
    browser.switch_to.frame(browser.find_element("css selector", "iframe"))
    try:
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')") == "true")
        # Its own scripts and styles, untouched by the host's; and it cannot reach the notebook
        assert browser.execute_script("return typeof window.attentionViewer.exportSVG") == "function"
        assert browser.find_element("id", "layer").is_displayed()
        token = browser.find_element("css selector", '#head-view .hv-token.left[data-index="2"]')
        assert token.is_displayed() and token.value_of_css_property("visibility") == "visible"
        assert browser.execute_script(
            "try { return window.parent.document.title; } catch (e) { return e.name; }") == "SecurityError"
        assert browser.find_element("id", "sentence").text == HOSTILE
        # The switches this run feeds: hide [CLS]/[SEP], the query/key panel with the run's own numbers
        hide = browser.find_element("id", "hide-special")
        assert hide.is_enabled()
        hide.click()
        assert browser.find_element("id", "qk-card").is_displayed()
        Select(browser.find_element("id", "layer")).select_by_value("2")
        for button in browser.find_elements("css selector", "[data-format]"):  # SVG and PNG of every view
            browser.execute_script("arguments[0].click()", button)
        time.sleep(1)  # PNG export is asynchronous: a tainted canvas or a failed draw would say so here
        assert browser.find_element("id", "export-status").text == ""
    finally:
        browser.switch_to.default_content()
    assert browser.title == "notebook"
    assert_no_console_errors(browser)
    assert_no_network_requests(browser, url)


@pytest.mark.parametrize("readme, heading", [("README.md", "## In a notebook"),
                                             ("README_es.md", "## En un cuaderno (Jupyter, Colab, Kaggle)")])
def test_readme_notebook_example_runs(readme, heading, capsys):
    text = open(os.path.join(ROOT, readme), encoding="utf-8").read()
    section = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, readme, "exec"), namespace)  # the last line, `run`, is what a notebook would display
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{c.sentence} {c.probability}" for c in namespace["run"].predictions[0]]
    assert len(printed) == 3 and "<iframe srcdoc=" in namespace["run"]._repr_html_()

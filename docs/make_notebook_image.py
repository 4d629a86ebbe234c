"""
Regenerate docs/images/notebook_viewer.png: the inline viewer in a real notebook page.

    .venv/bin/python -m docs.make_notebook_image     (from the repository's root)

Executes attention.ipynb with nbclient (a python3 kernel of this environment, in
the repository's root, on the bundled offline model), exports the executed notebook
to HTML with nbconvert's JupyterLab template (the page Jupyter itself would show,
outputs included), and takes a screenshot of the cell that shows `run` in headless
Chromium (Debian's chromium + chromium-driver, as the browser tests use), after
choosing layer 2, head 9, the heat colours and the token "turtle" inside the viewer's
iframe. Needs no network: the template's CDN scripts (RequireJS, MathJax) are left out
of the page, and nothing on it needs them.
"""

import os
import re
import shutil
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "attention.ipynb")
TARGET = os.path.join(ROOT, "docs", "images", "notebook_viewer.png")


def main():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        page = os.path.join(scratch, "attention.html")
        with open(page, "w", encoding="utf-8") as file:
            file.write(executed_notebook_page())
        screenshot(page, TARGET)
    print("wrote", os.path.relpath(TARGET, ROOT))


def executed_notebook_page():
    """attention.ipynb run top to bottom, as nbconvert's JupyterLab-styled HTML (no CDN scripts)."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    saved = os.path.join(ROOT, "attention_output")  # the notebook's run.save() cell writes here
    existed = os.path.exists(saved)
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    finally:
        if not existed:
            shutil.rmtree(saved, ignore_errors=True)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    return re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", body)


def screenshot(page, target):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests import chromium

    driver = chromium.start("1280,1060", scale=1)
    try:
        driver.get("file://" + page)
        frame = driver.find_element("css selector", "iframe")
        # The cell that shows `run`: its input at the top of the window, the viewer below it
        cell = frame.find_element("xpath", "ancestor::div[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]")
        driver.execute_script("window.scrollTo(0, arguments[0].getBoundingClientRect().top + window.scrollY - 70)",
                              cell)
        driver.switch_to.frame(frame)
        WebDriverWait(driver, 20).until(
            lambda d: d.execute_script("return document.documentElement.getAttribute('data-ready')") == "true")
        Select(driver.find_element("id", "layer")).select_by_value("2")
        Select(driver.find_element("id", "head")).select_by_value("9")
        Select(driver.find_element("id", "color-scale")).select_by_value("heat")
        driver.find_element("css selector", '.hv-token.left[data-index="2"]').click()  # "turtle"
        driver.switch_to.default_content()
        driver.save_screenshot(target)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()

"""
Regenerate the images README.md and README_es.md show, from the bundled offline model.

    .venv/bin/python -m docs.make_readme_images     (from the repository's root)

Runs `python mask.py "The turtle slowly moved across the [MASK]." --model bundled`
(in-process, into a temporary folder), copies its Attention_Overview.png and one
diagram into docs/images/, and takes a screenshot of its attention.html in headless
Chromium (Debian's chromium + chromium-driver, as the browser tests use). Needs no
network.
"""

import os
import shutil
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_DIR = os.path.join(ROOT, "docs", "images")

SENTENCE = "The turtle slowly moved across the [MASK]."

# What README shows: file in the run's output -> name under docs/images/
COPIES = {
    "Attention_Overview.png": "bundled_overview.png",
    "Attention_Layer2_Head9.png": "bundled_L2_H9_turtle.png",
}
SCREENSHOT = "viewer.png"


def main():
    import mask

    with tempfile.TemporaryDirectory() as out:
        try:
            mask.main([SENTENCE, "--model", "bundled", "--output-dir", out, "--scores"])
        except SystemExit as exit:
            if exit.code:
                raise
        for source, target in COPIES.items():
            shutil.copyfile(os.path.join(out, source), os.path.join(IMAGE_DIR, target))
            print("wrote", os.path.join("docs", "images", target))
        screenshot(os.path.join(out, "attention.html"), os.path.join(IMAGE_DIR, SCREENSHOT))
        print("wrote", os.path.join("docs", "images", SCREENSHOT))


def screenshot(page, target):
    from tests import chromium

    driver = chromium.start("1280,1000", scale=1)
    try:
        driver.get("file://" + page)
        # Show one head with a token picked, as a student would: Layer 2, Head 9 (the next-token head)
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element("id", "layer")).select_by_value("2")
        Select(driver.find_element("id", "head")).select_by_value("9")
        driver.find_element("css selector", '.hv-token.left[data-index="3"]').click()
        driver.save_screenshot(target)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()

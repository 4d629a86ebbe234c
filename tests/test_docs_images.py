"""
analysis.md and the images it shows: every linked image exists, the lists in
docs/make_images.py and docs/make_corpus_analysis.py match the links, and the CS50 form holds (at least four
"## Layer L, Head H" sections, each with an "Example Sentences:" list of two or
more sentences). Fast: nothing is regenerated here (docs/make_images.py does that).
"""

import importlib.util
import os
import re

import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANALYSIS = os.path.join(ROOT, "analysis.md")
IMAGE_DIR = os.path.join(ROOT, "docs", "images")

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
HEAD_HEADING = re.compile(r"^## Layer (\d+), Head (\d+)\s*$")


@pytest.fixture(scope="module")
def text():
    with open(ANALYSIS, encoding="utf-8") as file:
        return file.read()


def load_script(name):
    """A docs/ script as a module (its top level only defines lists and functions)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "docs", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_images():
    return load_script("make_images")


@pytest.fixture(scope="module")
def make_corpus_analysis():
    return load_script("make_corpus_analysis")


def head_sections(text):
    """{(layer, head): the section's lines}, for every "## Layer L, Head H" heading."""
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            match = HEAD_HEADING.match(line)
            current = (int(match.group(1)), int(match.group(2))) if match else None
            if current:
                assert current not in sections, f"Layer {current[0]}, Head {current[1]} appears twice"
                sections[current] = []
        elif current:
            sections[current].append(line)
    return sections


def example_sentences(lines):
    """The bullet items right after "Example Sentences:" (blank lines before the list allowed)."""
    start = lines.index("Example Sentences:") + 1
    items = []
    for line in lines[start:]:
        if line.startswith("- "):
            items.append(line[2:].strip())
        elif line.strip() or items:
            break
    return items


def test_every_linked_image_exists(text):
    links = IMAGE_LINK.findall(text)
    assert links, "analysis.md links no images"
    for link in links:
        assert link.startswith("docs/images/"), link
        path = os.path.join(ROOT, link)
        assert os.path.isfile(path), f"{link} is linked from analysis.md but missing"
        with Image.open(path) as image:
            image.verify()  # a real PNG, not a stub


def test_make_images_list_matches_the_links(text, make_images, make_corpus_analysis):
    linked = [os.path.basename(link) for link in IMAGE_LINK.findall(text)]
    assert len(linked) == len(set(linked)), "an image is linked twice"
    assert sorted(linked) == sorted(make_images.IMAGES + make_corpus_analysis.IMAGES)


def test_cs50_form_with_at_least_four_heads(text):
    assert text.startswith("# Analysis\n")
    sections = head_sections(text)
    assert len(sections) >= 4
    for (layer, head), lines in sections.items():
        assert "Example Sentences:" in lines, f"Layer {layer}, Head {head} has no Example Sentences:"
        description = "\n".join(lines[: lines.index("Example Sentences:")]).strip()
        assert len(description) > 100, f"Layer {layer}, Head {head} needs a description"
        assert len(example_sentences(lines)) >= 2, f"Layer {layer}, Head {head} needs two example sentences"


def test_each_head_shows_its_own_diagrams_of_its_sentences(text, make_images):
    sections = head_sections(text)
    assert sorted(sections) == sorted((layer, head) for layer, head, _ in make_images.HEADS)
    for (layer, head), lines in sections.items():
        images = IMAGE_LINK.findall("\n".join(lines))
        expected = [make_images.diagram_name(layer, head, key) for key in make_images.SHOWN_ON]
        assert [os.path.basename(image) for image in images] == expected
        assert example_sentences(lines) == [make_images.SENTENCES[key] for key in make_images.SHOWN_ON]


def test_images_stay_small():
    total = sum(os.path.getsize(os.path.join(IMAGE_DIR, name)) for name in os.listdir(IMAGE_DIR))
    assert total < 2.5 * 1024 * 1024


def test_corpus_section_names_the_corpus_size(text):
    """analysis.md's corpus figures are over corpus/everyday_english.txt: the sentence count it quotes is the file's."""
    import corpus

    count = len(corpus.read_sentences(os.path.join(ROOT, "corpus", "everyday_english.txt")))
    assert f"## Every head over {count} sentences" in text
    assert f"over the {count} everyday sentences of\n`corpus/everyday_english.txt`" in text

"""
The two notebooks in the repository's root (attention.ipynb in English, atencion.ipynb in
Spanish) run top to bottom offline, as a student would run them: each is executed once
with nbclient on a python3 kernel of this environment, started in the repository's root,
and its outputs are checked against the command line and the formula. The files
themselves are committed without outputs.
"""

import base64
import html
import io
import json
import os
import re
import shutil

import nbformat
import pytest
from conftest import ROOT, call_main
from PIL import Image

import mask

SENTENCE = "The turtle slowly moved across the [MASK]."
NOTEBOOKS = {
    "attention.ipynb": {"same": "same attention:", "difference": "largest difference:", "online": "ONLINE = False"},
    "atencion.ipynb": {"same": "misma atención:", "difference": "diferencia máxima:", "online": "EN_LINEA = False"},
}
SAVED = os.path.join(ROOT, "attention_output")  # where the notebooks' run.save() cell writes


def read(name):
    return nbformat.read(os.path.join(ROOT, name), as_version=4)


@pytest.fixture(scope="module", params=sorted(NOTEBOOKS))
def executed(request):
    """(name, the notebook after running every cell); fails on the first cell that raises."""
    try:
        from nbclient import NotebookClient
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("nbclient is not installed (pip install -r requirements-dev.txt)")
        pytest.skip("nbclient is not installed (pip install -r requirements-dev.txt)")
    name = request.param
    notebook = read(name)
    existed = os.path.exists(SAVED)
    try:
        # the kernel is this interpreter (jupyter_client runs a "python3" kernel with sys.executable),
        # started in the root as Jupyter starts it next to the notebook; HF_HUB_OFFLINE=1 comes from conftest
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": ROOT}}).execute()
    finally:
        if not existed:
            shutil.rmtree(SAVED, ignore_errors=True)
    return name, notebook


def cell_with(notebook, text):
    """The one code cell whose source contains `text`."""
    [cell] = [cell for cell in notebook.cells if cell.cell_type == "code" and text in cell.source]
    return cell


def stdout_of(cell):
    return "".join(output.text for output in cell.outputs if output.output_type == "stream" and output.name == "stdout")


def results_of(cell):
    return [output.data for output in cell.outputs if output.output_type in ("execute_result", "display_data")]


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebooks_are_committed_without_outputs(name):
    notebook = read(name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_notebook_prints_the_command_lines_fill_ins(executed, tmp_path):
    name, notebook = executed
    cli = call_main([SENTENCE, "--model", "bundled", "--scores", "--output-dir", str(tmp_path)])
    assert cli.status == 0, cli
    assert stdout_of(cell_with(notebook, "run = mask.explain(SENTENCE, model=MODEL)")) == cli.stdout
    # the readable repr, not a wall of numbers
    shown = stdout_of(cell_with(notebook, "print(run)"))
    assert shown.startswith(f"AttentionRun(text={SENTENCE!r}") and len(shown.splitlines()) == 5


def test_notebook_checks_the_formula_on_a_real_head(executed):
    name, notebook = executed
    words = NOTEBOOKS[name]
    output = stdout_of(cell_with(notebook, "run.query_key(layer, head)"))
    assert f"\n{words['same']} True\n" in output, output
    difference = float(re.search(rf"{words['difference']} (\S+)", output).group(1))
    assert 0 <= difference < 1e-5
    # the step-by-step row: softmax of q·k/√d next to the model's value, for every token
    rows = stdout_of(cell_with(notebook, "row_scores = k @ q[i]")).splitlines()[1:]
    assert len(rows) == 10
    for row in rows:
        softmax, model = row.split()[-2:]
        assert abs(float(softmax) - float(model)) <= 0.001, row
    assert max(rows, key=lambda row: float(row.split()[-1])).split()[0] == "."  # the next-token head


def test_notebook_shows_the_diagram_and_the_inline_viewer(executed):
    name, notebook = executed
    [picture] = results_of(cell_with(notebook, "run.diagram(2, 9)"))
    image = Image.open(io.BytesIO(base64.b64decode(picture["image/png"])))
    assert image.size == (mask.PIXELS_PER_WORD + 10 * mask.GRID_SIZE,) * 2
    [viewer] = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source == "run"]
    [shown] = results_of(viewer)
    inline = shown["text/html"]
    assert inline.startswith('<iframe srcdoc="') and inline.endswith("></iframe>")
    page = html.unescape(re.match(r'<iframe srcdoc="([^"]*)"', inline).group(1))
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert data["text"] == SENTENCE and data["special_tokens"] == [0, 9] and data["query_key"]["d"] == 32
    assert shown["text/plain"].startswith("AttentionRun(")


def test_online_cell_is_guarded_offline(executed):
    name, notebook = executed
    cell = cell_with(notebook, NOTEBOOKS[name]["online"])
    assert cell.outputs == []  # nothing downloaded, nothing failed
    assert all(output.output_type != "error" for cell in notebook.cells for output in cell.get("outputs", []))

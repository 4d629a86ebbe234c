"""
Refresh the outputs README.md and README_es.md show in their ```console blocks.

    .venv/bin/python -m docs.make_readme_outputs     (from the repository's root)

Each block starts with `$ .venv/bin/python mask.py ...` followed by what the run
printed. This runs every such command offline (in a scratch folder, an empty
Hugging Face cache, HF_HUB_OFFLINE=1: the bundled model), in one process, and puts its
standard output in place of the block's; the lines the block shows from standard
error ("Wrote ...", "Analysed ...") stay as they are, after it. A block that shows
only its command stays as it is. tests/test_readme.py checks that every block's
standard output is what the command prints, so run this after retraining the
bundled model.
"""

import contextlib
import io
import os
import re
import shlex
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ["README.md", "README_es.md"]

# Lines of a block that a run writes on standard error (the notes and the closing line), in either README
STDERR_PREFIXES = ("Wrote ", "Analysed ", "Note: ", "Escrib", "Analiz")

BLOCK = re.compile(r"```console\n(.*?)```", re.S)


def shown_stdout(block_lines):
    """The lines of a block (after its command) that stand for standard output."""
    return [line for line in block_lines if not line.startswith(STDERR_PREFIXES)]


def command_of(block):
    """main()'s argv for a block's first line, or None if the block doesn't run mask.py."""
    first = block.splitlines()[0]
    if not first.startswith("$ .venv/bin/python mask.py"):
        return None
    return shlex.split(first.removeprefix("$ "))[2:]


def run_stdout(argv):
    """What `mask.py argv` prints on standard output, run offline in a scratch folder."""
    import mask  # before the chdir: the tool's modules are found from the repository's root

    before = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        try:
            stdout = io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
                try:
                    mask.main([os.path.join(ROOT, part) if part.startswith("corpus/") else part for part in argv])
                except SystemExit as exit:
                    if exit.code:
                        raise
        finally:
            os.chdir(before)
    return stdout.getvalue().splitlines()


def refresh(text, outputs):
    """`text` with each console block's standard output replaced by outputs[command line]."""

    def replace(match):
        block = match.group(1)
        lines = block.splitlines()
        argv = command_of(block)
        if argv is None or len(lines) == 1:
            return match.group(0)
        errors = [line for line in lines[1:] if line.startswith(STDERR_PREFIXES)]
        return "```console\n" + "\n".join([lines[0], *outputs[lines[0]], *errors]) + "\n```"

    return BLOCK.sub(replace, text)


def main():
    with tempfile.TemporaryDirectory() as cache:
        os.environ.update(HF_HOME=cache, HF_HUB_OFFLINE="1")
        texts = {name: open(os.path.join(ROOT, name), encoding="utf-8").read() for name in READMES}
        outputs = {}
        for text in texts.values():
            for block in BLOCK.findall(text):
                argv, first = command_of(block), block.splitlines()[0]
                if argv is not None and len(block.splitlines()) > 1 and first not in outputs:
                    print(f"running {first}", file=sys.stderr)
                    outputs[first] = run_stdout(argv)
        for name, text in texts.items():
            new = refresh(text, outputs)
            if new != text:
                with open(os.path.join(ROOT, name), "w", encoding="utf-8") as file:
                    file.write(new)
                print(f"updated {name}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The commands README.md shows are run here (or by .ci/run), so they can't silently rot."""

import os
import re
import shlex

import pytest
from conftest import ROOT

from docs import make_readme_outputs

README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
README_ES = open(os.path.join(ROOT, "README_es.md"), encoding="utf-8").read()
PYTHON = ".venv/bin/python "


def code_blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def mask_commands(text):
    """Every `.venv/bin/python mask.py ...` line of the ```sh blocks, as argv lists for main()."""
    commands = []
    for block in code_blocks(text, "sh"):
        for line in block.splitlines():
            if line.startswith(PYTHON + "mask.py"):
                commands.append(shlex.split(line)[2:])
    return commands


@pytest.fixture
def offline_cwd(tmp_path, monkeypatch):
    """A fresh working directory, an empty Hugging Face cache and no network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.mark.parametrize("readme", [README, README_ES], ids=["en", "es"])
def test_the_two_fresh_machine_commands_come_first_and_ci_runs_them(readme):
    first = code_blocks(readme, "sh")[0].strip().splitlines()
    assert readme.index("```sh") < readme.index("\n## ")
    assert first == [
        './setup.sh && .venv/bin/python mask.py "The turtle slowly moved across the [MASK]."',
        "./setup.sh --dev && .venv/bin/python -m pytest",
    ]
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "./setup.sh --dev" in ci and ".venv/bin/python -m pytest" in ci


def console_blocks():
    """(README, first line, the lines it shows) of every ```console block that runs mask.py and shows output."""
    found = []
    for name, text in (("en", README), ("es", README_ES)):
        for block in code_blocks(text, "console"):
            lines = block.strip().splitlines()
            if make_readme_outputs.command_of(block) is not None and len(lines) > 1:
                found.append(pytest.param(lines, id=f"{name}: {lines[0][28:70]}"))
    return found


@pytest.mark.parametrize("lines", console_blocks())
def test_console_blocks_show_real_output(lines, run_main, offline_cwd):
    """The worked example, corpus mode, sentence pairs ...: what README shows is what the run prints."""
    argv = make_readme_outputs.command_of(lines[0])
    run = run_main([os.path.join(ROOT, part) if part.startswith("corpus/") else part for part in argv])
    assert run.status == 0, run
    assert run.stdout.splitlines() == make_readme_outputs.shown_stdout(lines[1:])


def test_the_worked_example_comes_first_in_both_readmes():
    for text in (README, README_ES):
        first = code_blocks(text, "console")[0]
        assert first.startswith('$ .venv/bin/python mask.py "The turtle slowly moved across the [MASK]."'), first


def test_every_example_command_runs(run_main, offline_cwd):
    """The examples run on the bundled model (named, or as the offline fallback of the default)."""
    commands = [c for c in mask_commands(README) if "--model" not in c or "bundled" in c]
    assert len(commands) >= 5
    for argv in commands:
        run = run_main(argv)
        assert run.status == 0, (argv, run)
        assert run.stdout.strip() and "Traceback" not in run.stderr
    assert (offline_cwd / "run.npz").exists() and (offline_cwd / "out" / "Attention_Overview.png").exists()


@pytest.mark.parametrize("readme", [README, README_ES], ids=["en", "es"])
def test_hub_and_folder_examples_parse_and_fail_cleanly_offline(readme, run_main, offline_cwd):
    """Models this machine can't download: the command is well-formed and says why in one line."""
    commands = [c for c in mask_commands(readme) if "--model" in c and "bundled" not in c]
    assert any("dccuchile/bert-base-spanish-wwm-cased" in c for c in commands)
    for argv in commands:
        run = run_main(argv)
        assert run.status == 1, (argv, run)
        [line] = run.stderr.strip().splitlines()
        model = argv[argv.index("--model") + 1]
        assert model.rstrip("/") in line and ("no connection" in line or "not found" in line), line


def test_documented_options_match_the_parser():
    import subprocess
    import sys

    help_text = subprocess.run([sys.executable, os.path.join(ROOT, "mask.py"), "--help"],
                               capture_output=True, text=True, check=True).stdout
    options = set(re.findall(r"(--[a-z-]+)", help_text)) - {"--help"}
    for readme in (README, README_ES):
        documented = set(re.findall(r"`(--[a-z-]+)", readme))
        assert options <= documented, options - documented

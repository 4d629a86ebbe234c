"""
The Hugging Face Hub and its cache, without the network: a local HTTP server on
127.0.0.1 plays a Hub that never answers a download, or a captive portal's HTML
page; a fake cache in tmp_path holds broken snapshots. Every network step ends
within its timeout, a Hub that gives no usable answer counts as unreachable, a
broken cache names the folder to delete, and the default model falls back to the
bundled one meanwhile.
"""

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, assert_one_line_failure, call_main

import attention_run
import mask

DEFAULT_TEXT = "I drank a cup of [MASK] this morning."

# What a captive portal (hotel or airport Wi-Fi) answers to every request
PORTAL_PAGE = b"<!doctype html><html><body><h1>Welcome!</h1><p>Accept the terms to go online.</p></body></html>"


@contextlib.contextmanager
def local_hub(behaviour):
    """
    A stand-in Hub on 127.0.0.1 (a free port) in a thread; yields its URL.
    behaviour "hangs": HEAD (the tool's reachability check) is answered, GET never
    is (the handler waits until the test ends, at most 120 s); "portal": every
    request gets an HTML page with status 200.
    """
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()

        def do_GET(self):
            if behaviour == "hangs":
                done.wait(120)  # never answers while the test runs; the thread ends with it
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PORTAL_PAGE)))
            self.end_headers()
            self.wfile.write(PORTAL_PAGE)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        done.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_mask(args, env, timeout=90):
    """mask.py in a child process with `env` added."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "mask.py"), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=timeout)


def hub_env(url, tmp_path, read_timeout=3):
    # An empty cache, the Hub allowed, the stand-in as its address (and never through a proxy)
    return {"HF_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": url,
            "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "HF_HUB_DOWNLOAD_TIMEOUT": str(read_timeout)}


def assert_fell_back(result):
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("I drank a cup of ") for line in lines)
    notes = [line for line in result.stderr.splitlines() if "bert-base-uncased" in line]
    assert len(notes) == 1 and "bundled offline model" in notes[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("behaviour", ["hangs", "portal"])
def test_a_hub_without_a_usable_answer_is_unreachable(behaviour, tmp_path):
    """The named model: one line within the timeout. The default model: the bundled one, with its note."""
    with local_hub(behaviour) as url:
        # a server that never answers is waited for 1 s (each wait is a second of the suite's time)
        env = hub_env(url, tmp_path, read_timeout=1 if behaviour == "hangs" else 3)
        # (the child's 90 s limit is below the server's 120 s: a run that waits for the answer fails the test)
        named = run_mask([DEFAULT_TEXT, "--model", "someone/some-bert", "--output-dir", str(tmp_path)], env)
        assert named.returncode == 1 and named.stdout == "", named
        lines = named.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Cannot download someone/some-bert: "), named.stderr
        assert "Hugging Face Hub" in lines[0] and "--model bundled" in lines[0]
        default = run_mask([DEFAULT_TEXT, "--output-dir", str(tmp_path / "out")], env)
    assert_fell_back(default)
    assert "can't be reached or gives no usable answer" in default.stderr


# a broken cache ------------------------------------------------------------------------------------

SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


def fake_cache(tmp_path, repo, model_dir, damage):
    """HF_HOME/hub/models--ORG--NAME/{refs/main, snapshots/<hash>/...}: the model's files, then `damage` done."""
    repo_folder = tmp_path / "hf-home" / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = repo_folder / "snapshots" / SNAPSHOT
    shutil.copytree(model_dir, snapshot)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(SNAPSHOT)
    damage(snapshot)
    return repo_folder


def truncate_weights(snapshot):
    data = (snapshot / "model.safetensors").read_bytes()
    (snapshot / "model.safetensors").write_bytes(data[: len(data) // 3])


def remove_config(snapshot):
    (snapshot / "config.json").unlink()


DAMAGES = {"truncated-weights": truncate_weights, "no-config": remove_config}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """The Hugging Face cache moved into tmp_path for this test (offline, as every test is)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    attention_run.open_model.cache_clear()  # a model opened under another cache must be found again
    yield
    attention_run.open_model.cache_clear()


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_broken_cached_model_names_the_folder_to_delete(damage, tiny_safetensors, tmp_path, hub_cache):
    repo_folder = fake_cache(tmp_path, "someone/tiny-bert", tiny_safetensors, DAMAGES[damage])
    run = call_main([DEFAULT_TEXT, "--model", "someone/tiny-bert", "--output-dir", str(tmp_path / "out")])
    line = assert_one_line_failure(run)
    assert line.startswith("The Hugging Face cache's copy of someone/tiny-bert is broken ("), line
    assert line.endswith(f"Delete {repo_folder} and run again with a network connection to download it afresh.")
    assert not (tmp_path / "out").exists()


def test_a_broken_cached_tokenizer_names_the_folder_to_delete(tiny_safetensors, tmp_path, hub_cache):
    def break_tokenizer(snapshot):
        (snapshot / "tokenizer.json").write_text('{"truncated": ')

    repo_folder = fake_cache(tmp_path, "someone/tiny-bert", tiny_safetensors, break_tokenizer)
    run = call_main([DEFAULT_TEXT, "--model", "someone/tiny-bert", "--output-dir", str(tmp_path / "out")])
    line = assert_one_line_failure(run)
    assert line.startswith("Cannot load the tokenizer of someone/tiny-bert: ")
    assert line.endswith(f"If the download is broken, delete {repo_folder} and run again")


def test_an_intact_cached_model_is_used(tiny_safetensors, tmp_path, hub_cache):
    fake_cache(tmp_path, "someone/tiny-bert", tiny_safetensors, lambda snapshot: None)
    run = call_main([DEFAULT_TEXT, "--model", "someone/tiny-bert", "--output-dir", str(tmp_path / "out")])
    assert run.status == 0 and len(run.stdout.splitlines()) == 3, run


def test_the_default_model_broken_in_the_cache_falls_back(tiny_safetensors, tmp_path, hub_cache):
    repo_folder = fake_cache(tmp_path, mask.MODEL, tiny_safetensors, truncate_weights)
    run = call_main([DEFAULT_TEXT, "--output-dir", str(tmp_path / "out"), "--no-html"])
    assert run.status == 0, run
    assert len(run.stdout.splitlines()) == 3
    [note] = [line for line in run.stderr.splitlines() if "bert-base-uncased" in line]
    assert note.startswith("Note: the Hugging Face cache's copy of bert-base-uncased is broken (")
    assert f"delete {repo_folder} to download it again" in note and "bundled offline model" in note

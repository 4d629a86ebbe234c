"""
Benchmark: our renderer and whole run against the straightforward CS50 program.

    .venv/bin/python -m benchmarks.bench            # bert-base-shaped checkpoint, 3 rounds (~3 min)
    .venv/bin/python -m benchmarks.bench --quick    # small checkpoint, 1 round (a smoke test)

(from the repository's root, so that the tool's modules and tests/ are importable).

It builds a checkpoint locally (random weights: timing needs shapes, not
knowledge), then, alternating the two programs round by round so that machine
load hits both alike:
1. runs the whole straightforward program (benchmarks/straightforward_mask.py)
   and `mask.py` as subprocesses on the same sentence and checkpoint, recording
   wall time and peak memory (max RSS) of each;
2. times `mask.py --help`;
3. runs `mask.py` where PyTorch is installed too (.venv-torch, from tests/torch_env.sh; skipped without it);
4. draws every head's diagram for the sentence with the straightforward renderer
   (benchmarks/reference_renderer.py) and with ours, in this process.
It prints medians and ratios. Nothing here asserts a time: the figures are for
people to read (README's "Performance" section quotes them).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SENTENCE = "The turtle slowly moved across the [MASK] of it."  # 12 tokens with [CLS], "." and [SEP]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small checkpoint, one round")
    parser.add_argument("--rounds", type=int, help="rounds of each measurement (default 3, or 1 with --quick)")
    parser.add_argument("--model-dir", help="use this checkpoint instead of building one")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir or build_checkpoint(os.path.join(scratch, "model"), args.quick)
        print(f"checkpoint: {model_dir}")
        print(f"sentence: {SENTENCE!r}; rounds: {rounds} (medians shown), {os.cpu_count()} CPUs\n")

        # Whole runs first, while this process is small: a child's peak memory (ru_maxrss)
        # counts the pages it was forked with, so a parent holding TensorFlow would inflate both
        runs = compare_whole_runs(model_dir, rounds, scratch)
        torch_runs = compare_torch_installed(model_dir, rounds, scratch)
        help_time = statistics.median(timed_process([sys.executable, os.path.join(ROOT, "mask.py"), "--help"])[0]
                                      for _ in range(rounds))

        import model_loading

        model_loading.import_transformers()  # quiet TensorFlow and transformers, as mask.py does
        tokens, attentions = real_attentions(model_dir)
        reference, fast = compare_renderers(tokens, attentions, rounds, scratch)
        print(f"Drawing every head's diagram (in-process; {len(tokens)} tokens, "
              f"{len(attentions)} layers x {attentions[0].shape[1]} heads)")
        print(f"  straightforward renderer  {reference:7.3f} s")
        print(f"  ours                      {fast:7.3f} s   ({reference / fast:.1f}x faster)\n")

        (base_time, base_memory), (our_time, our_memory) = runs
        print("Whole run: python ... (load, predict, draw)")
        print(f"  straightforward program   {base_time:7.2f} s   peak {base_memory / 2**20:7.0f} MiB")
        print(
            f"  mask.py                   {our_time:7.2f} s   peak {our_memory / 2**20:7.0f} MiB"
            f"   ({our_time / base_time:.2f} of the time, {our_memory / base_memory:.2f} of the memory)\n"
        )
        print(f"Start-up: mask.py --help    {help_time:7.2f} s\n")
        print_torch_installed(torch_runs)


def build_checkpoint(path, quick):
    """Build the checkpoint in a child process, so this one stays free of TensorFlow for now."""
    shape = dict(layers=2, heads=4, hidden=64, intermediate=128) if quick else dict(
        layers=12, heads=12, hidden=768, intermediate=3072, vocab_size=30522)
    print("building a checkpoint:", shape, file=sys.stderr)
    code = ("import sys; from tests.tiny_bert import build_bert_dir; "
            f"build_bert_dir(sys.argv[1], max_positions=512, **{shape!r})")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code, path], check=True, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    return path


def real_attentions(model_dir):
    """The model's own attentions for SENTENCE: tokens and a tuple of (1, heads, n, n) tensors."""
    from transformers import AutoTokenizer, TFBertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = TFBertForMaskedLM.from_pretrained(model_dir)
    inputs = tokenizer(SENTENCE, return_tensors="tf")
    return inputs.tokens(), model(**inputs, output_attentions=True).attentions


def compare_renderers(tokens, attentions, rounds, scratch):
    import diagrams
    import mask
    from benchmarks import reference_renderer

    reference_times, fast_times = [], []
    for _ in range(rounds):
        out = tempfile.mkdtemp(dir=scratch)
        start = time.perf_counter()
        reference_renderer.visualize_attentions(tokens, attentions, out)
        reference_times.append(time.perf_counter() - start)

        out = tempfile.mkdtemp(dir=scratch)
        diagrams.label_canvas.cache_clear()  # each round pays for its labels, as a new sentence would
        start = time.perf_counter()
        # as mask.py does: the model's tensors become one NumPy array, then drawing
        import numpy as np

        stacked = np.stack([layer.numpy() for layer in attentions])
        mask.visualize_attentions(tokens, stacked, out)
        fast_times.append(time.perf_counter() - start)
    return statistics.median(reference_times), statistics.median(fast_times)


def compare_whole_runs(model_dir, rounds, scratch):
    python = sys.executable
    programs = [
        ([python, os.path.join(HERE, "straightforward_mask.py"), model_dir, "OUT"], SENTENCE + "\n"),
        ([python, os.path.join(ROOT, "mask.py"), "--model", model_dir, "--output-dir", "OUT"], SENTENCE + "\n"),
    ]
    results = [[], []]
    for _ in range(rounds):
        for index, (command, stdin) in enumerate(programs):
            out = tempfile.mkdtemp(dir=scratch)
            results[index].append(timed_process([out if part == "OUT" else part for part in command], stdin))
    return [
        (statistics.median(t for t, _ in runs), max(m for _, m in runs))
        for runs in results
    ]


# PyTorch installed beside TensorFlow -----------------------------------------------------------------
# Where torch is installed too (Colab, Kaggle, many laptops), transformers imports it unless told to use
# TensorFlow only (model_loading.import_transformers does). The same whole run of mask.py in .venv (no
# torch), in .venv-torch (tests/torch_env.sh: the same requirements plus torch), and in .venv-torch with
# torch imported first, as transformers did before it was told.

TORCH_VENV_PYTHON = os.path.join(ROOT, ".venv-torch", "bin", "python")
TORCH_FIRST = "import sys, runpy, torch; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


def compare_torch_installed(model_dir, rounds, scratch):
    """[(label, wall seconds, peak bytes)], medians and maxima over the rounds; None without .venv-torch."""
    if not os.path.exists(TORCH_VENV_PYTHON):
        return None
    mask_py = os.path.join(ROOT, "mask.py")
    arguments = ["--model", model_dir, "--output-dir", "OUT"]
    programs = [
        ("without torch (.venv)", [sys.executable, mask_py, *arguments]),
        ("torch installed (.venv-torch)", [TORCH_VENV_PYTHON, mask_py, *arguments]),
        ("torch imported first, as before", [TORCH_VENV_PYTHON, "-c", TORCH_FIRST, mask_py, *arguments]),
    ]
    results = [[] for _ in programs]
    for _ in range(rounds):
        for index, (_, command) in enumerate(programs):
            out = tempfile.mkdtemp(dir=scratch)
            results[index].append(timed_process([out if part == "OUT" else part for part in command], SENTENCE + "\n"))
    return [(label, statistics.median(t for t, _ in runs), max(m for _, m in runs))
            for (label, _), runs in zip(programs, results, strict=True)]


def print_torch_installed(runs):
    print("With PyTorch installed too: python mask.py ... (whole run)")
    if runs is None:
        print("  skipped: no .venv-torch (tests/torch_env.sh makes it)")
        return
    (_, base_time, base_memory), *others = runs
    print(f"  {runs[0][0]:34} {base_time:7.2f} s   peak {base_memory / 2**20:7.0f} MiB")
    for label, seconds, memory in others:
        print(f"  {label:34} {seconds:7.2f} s   peak {memory / 2**20:7.0f} MiB"
              f"   ({seconds / base_time:.2f} of the time, {memory / base_memory:.2f} of the memory)")


def timed_process(command, stdin=""):
    """Run a command; returns (wall seconds, peak resident memory in bytes)."""
    # The tool's modules from the root: a script's own folder (benchmarks/) is all Python puts on its path
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)
    process.stdin.write(stdin.encode())
    process.stdin.close()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{command[1]} failed:\n{stderr.decode(errors='replace')}")
    return elapsed, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


if __name__ == "__main__":
    main()

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
3. draws every head's diagram for the sentence with the straightforward renderer
   (benchmarks/reference_renderer.py) and with ours, in this process.
Its notebook API section (notebook_api_section) times mask.explain() on the
bundled model in a fresh process: the first call, the next ones, and what the
viewer's queries and keys cost a run.
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
        print(f"Start-up: mask.py --help    {help_time:7.2f} s")

    notebook_api_section(rounds)


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
        ([python, "-m", "benchmarks.straightforward_mask", model_dir, "OUT"], SENTENCE + "\n"),
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


def timed_process(command, stdin=""):
    """Run a command; returns (wall seconds, peak resident memory in bytes)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               cwd=ROOT)  # the tool's modules and benchmarks/ import from the root
    process.stdin.write(stdin.encode())
    process.stdin.close()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{command[1]} failed:\n{stderr.decode(errors='replace')}")
    return elapsed, usage.ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


# ---- Notebook API: mask.explain() on the bundled model (first and next calls, queries and keys) ------------

NOTEBOOK_SENTENCES = ["The turtle slowly moved across the [MASK].", "I drank a cup of [MASK] this morning.",
                      "The cat sat on the [MASK].", "Then I picked up a [MASK] from the table."]


def notebook_api_section(rounds):
    """
    What a notebook user waits for, measured in a fresh process (as a new kernel is):
    the first mask.explain() (TensorFlow import, model load, run), the next ones
    (the model stays loaded), and what the query/key panel costs a run.
    """
    code = f"from benchmarks import bench; bench.notebook_api_child({max(rounds, 3)})"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if result.returncode != 0:
        sys.exit(f"notebook API benchmark failed:\n{result.stderr}")
    figures = dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
    f = {key: float(value) for key, value in figures.items()}
    print("\nNotebook API: mask.explain(..., model='bundled') in a fresh process "
          f"({int(f['tokens'])} tokens, {int(f['layers'])} layers x {int(f['heads'])} heads)")
    print(f"  first call (import, load, run)  {f['first']:7.2f} s")
    print(f"  next call (model loaded)        {f['next']:7.3f} s   (median; {f['first'] / f['next']:.0f}x faster)")
    print(f"  queries and keys, every head    {f['qk'] * 1000:7.1f} ms  (computed on first use)")
    print(f"  forward pass without / with hidden states  {f['forward'] * 1000:6.0f} / "
          f"{f['forward_hidden'] * 1000:.0f} ms")
    print(f"  save() as the command line does, page without / with queries and keys  "
          f"{f['save_plain'] * 1000:6.0f} / {f['save_qk'] * 1000:.0f} ms "
          f"({(f['save_qk'] - f['save_plain']) * 1000:+.0f} ms)")
    print(f"  attention.html without / with queries and keys  {f['page_plain'] / 1e3:6.0f} / "
          f"{f['page_qk'] / 1e3:.0f} kB (budget {f['budget'] / 1e3:.0f} kB)")
    print(f"  inline viewer (_repr_html_)     {f['repr_html'] * 1000:7.1f} ms, {f['repr_html_size'] / 1e3:.0f} kB")


def notebook_api_child(rounds):
    """Runs in the fresh process of notebook_api_section; prints name=value figures."""
    import dataclasses

    start = time.perf_counter()
    import mask

    run = mask.explain(NOTEBOOK_SENTENCES[0], model="bundled")
    first = time.perf_counter() - start
    nexts = []
    for nth in range(rounds):
        start = time.perf_counter()
        mask.explain(NOTEBOOK_SENTENCES[1 + nth % 3], model="bundled")
        nexts.append(time.perf_counter() - start)

    import attention_run
    import model_loading
    import viewer

    def best(*functions):
        """The least disturbed of several tries of each, alternating, so that load hits them alike."""
        times = [[] for _ in functions]
        for _ in range(max(rounds, 7)):
            for function, record in zip(functions, times, strict=True):
                start = time.perf_counter()
                function()
                record.append(time.perf_counter() - start)
        return [min(record) for record in times]

    network = run.query_key_source.network
    request = attention_run.prepare(NOTEBOOK_SENTENCES[0], "bundled")
    forward, forward_hidden = best(lambda: model_loading.forward(network, request.encoding),
                                   lambda: model_loading.forward(network, request.encoding, hidden_states=True))
    from query_key import queries_and_keys

    [qk] = best(lambda: queries_and_keys(network, run.query_key_source.hidden_states))
    plain = dataclasses.replace(run, query_key_source=None)
    scratch = tempfile.mkdtemp()
    # a fresh source each time, so every save pays for computing the vectors, as a command-line run does
    fresh = lambda: dataclasses.replace(run, query_key_source=type(run.query_key_source)(
        network, run.query_key_source.hidden_states))
    save_plain, save_qk = best(lambda: plain.save(scratch), lambda: fresh().save(scratch))
    inline = run._repr_html_()
    figures = dict(
        tokens=len(run.tokens), layers=run.attentions.shape[0], heads=run.attentions.shape[1],
        first=first, next=statistics.median(nexts), qk=qk, forward=forward, forward_hidden=forward_hidden,
        save_plain=save_plain, save_qk=save_qk, page_plain=len(plain.viewer_html().encode()),
        page_qk=len(run.viewer_html().encode()), budget=viewer.SIZE_BUDGET_BYTES,
        repr_html=best(run._repr_html_)[0], repr_html_size=len(inline.encode()),
    )
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()

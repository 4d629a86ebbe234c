"""
Benchmark: our renderer and whole run against the straightforward CS50 program.

    .venv/bin/python -m benchmarks.bench            # bert-base-shaped checkpoints, 3 rounds (~6 min)
    .venv/bin/python -m benchmarks.bench --quick    # small checkpoint, 1 round (a smoke test)
    .venv/bin/python -m benchmarks.bench --corpus   # only the corpus-mode section (sentences per second)

(from the repository's root, so that the tool's modules and tests/ are importable).

It builds a checkpoint locally (random weights: timing needs shapes, not
knowledge), then, alternating the two programs round by round so that machine
load hits both alike:
1. runs the whole straightforward program (benchmarks/straightforward_mask.py)
   and `mask.py` as subprocesses on the same sentence and checkpoint, recording
   wall time, CPU time (user + system, steadier than wall time on a shared
   machine) and peak memory (max RSS) of each, and where mask.py's time went,
   phase by phase (timing.py: imports, tokenizer, model build, weights, forward,
   fill-ins, diagrams, overview, viewer; "other" is Python's start-up, mask.py's
   own imports and the exit);
2. times `mask.py --help`;
3. runs `mask.py` where PyTorch is installed too (.venv-torch, from tests/torch_env.sh; skipped without it);
4. draws every head's diagram for the sentence with the straightforward renderer
   (benchmarks/reference_renderer.py) and with ours, in this process;
5. (not with --quick) loads a RoBERTa-base-shaped and a BERT-base-shaped
   checkpoint of the same size, both PyTorch-format safetensors, with mask.py;
6. (not with --quick) the same phase breakdown for the bundled model;
7. corpus mode: sentences per second, batched, against a loop of one-sentence runs
   (corpus_section).
Its notebook API section (notebook_api_section) times mask.explain() on the
bundled model in a fresh process: the first call, the next ones, and what the
viewer's queries and keys cost a run.
It prints medians, ratios and the machine's load average. Nothing here asserts
a time: the figures are for people to read (README's "Performance" section
quotes them).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SENTENCE = "The turtle slowly moved across the [MASK] of it."  # 12 tokens with [CLS], "." and [SEP]

# The phases timing.py reports, in the order a run meets them
PHASES = ["imports", "tokenizer", "model build", "weights", "forward", "fill-ins", "diagrams", "overview", "viewer"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small checkpoint, one round")
    parser.add_argument("--rounds", type=int, help="rounds of each measurement (default 3, or 1 with --quick)")
    parser.add_argument("--model-dir", help="use this checkpoint instead of building one")
    parser.add_argument("--corpus", action="store_true", help="only the corpus-mode benchmark (see corpus_section)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir or build_checkpoint(os.path.join(scratch, "model"), args.quick)
        if args.corpus:
            corpus_section(model_dir, rounds, args.quick, scratch)
            return
        print(f"checkpoint: {model_dir}")
        print(f"sentence: {SENTENCE!r}; rounds: {rounds} (medians shown), {os.cpu_count()} CPUs")
        print(f"load average at the start: {load_average()}\n")

        # Whole runs first, while this process is small: a child's peak memory (ru_maxrss)
        # counts the pages it was forked with, so a parent holding TensorFlow would inflate both
        runs = compare_whole_runs(model_dir, rounds, scratch)
        torch_runs = compare_torch_installed(model_dir, rounds, scratch)
        help_time = statistics.median(timed_process([sys.executable, os.path.join(ROOT, "mask.py"), "--help"])[0]
                                      for _ in range(rounds))
        if not args.quick:
            families = compare_families(scratch, rounds)
            bundled = whole_runs([mask_command("bundled")], rounds, scratch)[0]

        import model_loading

        model_loading.import_transformers()  # quiet TensorFlow and transformers, as mask.py does
        tokens, attentions = real_attentions(model_dir)
        reference, fast = compare_renderers(tokens, attentions, rounds, scratch)
        print(f"Drawing every head's diagram (in-process; {len(tokens)} tokens, "
              f"{len(attentions)} layers x {attentions[0].shape[1]} heads)")
        print(f"  straightforward renderer  {reference:7.3f} s")
        print(f"  ours                      {fast:7.3f} s   ({reference / fast:.1f}x faster)\n")

        base, ours = runs
        print("Whole run: python ... (load, predict, draw)")
        print(f"  straightforward program   {base.summary()}")
        print(f"  mask.py                   {ours.summary()}")
        print(f"  ratio                     {ours.wall / base.wall:7.2f}         {ours.cpu / base.cpu:7.2f}"
              f"          {ours.memory / base.memory:7.2f}\n")
        print_phases("Where mask.py's time goes (medians)", ours)
        print(f"Start-up: mask.py --help    {help_time:7.2f} s\n")
        print_torch_installed(torch_runs)

        if not args.quick:
            print_families(*families)
            print(f"Bundled model (--model bundled): {bundled.summary()}")
            print_phases("Where a bundled-model run's time goes (medians)", bundled)
        corpus_section(model_dir, rounds, args.quick, scratch)

    notebook_api_section(rounds)
    print(f"load average at the end: {load_average()}")


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


class Runs:
    """Medians of several whole runs of one program: wall and CPU seconds, peak memory (the largest), phases."""

    def __init__(self, runs):
        self.wall = statistics.median(run["wall"] for run in runs)
        self.cpu = statistics.median(run["cpu"] for run in runs)
        self.memory = max(run["memory"] for run in runs)
        self.phases = {}  # phase -> (median wall, median cpu), "other" = the rest of the run
        if all(run["phases"] for run in runs):
            for name in PHASES + ["other"]:
                self.phases[name] = tuple(statistics.median(run["phases"].get(name, (0.0, 0.0))[i] for run in runs)
                                          for i in (0, 1))

    def __iter__(self):
        """(median wall seconds, peak bytes), as compare_whole_runs gave before it gave Runs."""
        return iter((self.wall, self.memory))

    def summary(self):
        return f"{self.wall:7.2f} s   CPU {self.cpu:7.2f} s   peak {self.memory / 2**20:7.0f} MiB"


def mask_command(model_dir):
    return ([sys.executable, os.path.join(ROOT, "mask.py"), "--model", model_dir, "--output-dir", "OUT"],
            SENTENCE + "\n")


def compare_whole_runs(model_dir, rounds, scratch):
    straightforward = ([sys.executable, "-m", "benchmarks.straightforward_mask", model_dir, "OUT"], SENTENCE + "\n")
    return whole_runs([straightforward, mask_command(model_dir)], rounds, scratch)


def whole_runs(programs, rounds, scratch):
    """Each program `rounds` times, alternating; a Runs per program."""
    results = [[] for _ in programs]
    for _ in range(rounds):
        for index, (command, stdin) in enumerate(programs):
            out = tempfile.mkdtemp(dir=scratch)
            results[index].append(measured_process([out if part == "OUT" else part for part in command], stdin))
    return [Runs(runs) for runs in results]


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
    run = measured_process(command, stdin)
    return run["wall"], run["memory"]


def measured_process(command, stdin=""):
    """
    Run a command; returns {"wall", "cpu" (user + system seconds), "memory" (peak
    resident bytes), "phases" (timing.py's figures, with "other" for the rest; {} for
    a program that doesn't report them)}.
    """
    handle, phases_path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    # The tool's modules (mask, for the reference renderer) import from the root
    env = dict(os.environ, ATTENTION_PHASES=phases_path, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env, cwd=ROOT)
    process.stdin.write(stdin.encode())
    process.stdin.close()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{command[1]} failed:\n{stderr.decode(errors='replace')}")
    try:
        with open(phases_path, encoding="utf-8") as file:
            phases = {name: tuple(value) for name, value in json.load(file).items()}
    except ValueError:  # empty: the program doesn't report phases
        phases = {}
    finally:
        os.remove(phases_path)
    cpu = usage.ru_utime + usage.ru_stime
    if phases:
        phases["other"] = (elapsed - sum(w for w, _ in phases.values()), cpu - sum(c for _, c in phases.values()))
    return {"wall": elapsed, "cpu": cpu, "memory": usage.ru_maxrss * 1024, "phases": phases}  # maxrss: KiB


def print_phases(title, runs):
    """A table of the phases' median wall and CPU seconds."""
    if not runs.phases:
        return
    print(f"{title}: wall s, CPU s")
    for name, (wall, cpu) in runs.phases.items():
        print(f"  {name:<12} {wall:7.2f} {cpu:7.2f}")
    print(f"  {'whole run':<12} {runs.wall:7.2f} {runs.cpu:7.2f}\n")


def compare_families(scratch, rounds):
    """
    A RoBERTa-base-shaped and a BERT-base-shaped checkpoint of the same size (12 layers x
    12 heads, 768 wide, the same vocabulary size), both PyTorch-format safetensors:
    RoBERTa goes through the same loading as BERT and should cost no more. Returns (bert, roberta) Runs.
    """
    shape = dict(layers=12, heads=12, hidden=768, intermediate=3072, vocab_size=30522, positions=512)
    dirs = {}
    for family in ("bert", "roberta"):
        dirs[family] = os.path.join(scratch, family)
        print(f"building a {family}-base-shaped safetensors checkpoint", file=sys.stderr)
        code = ("import sys; from tests.tiny_models import build_model_dir; "
                f"build_model_dir(sys.argv[1], {family!r}, weights='safetensors', **{shape!r})")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, "-c", code, dirs[family]], check=True, env=env, cwd=ROOT,
                       stderr=subprocess.DEVNULL)
    return whole_runs([mask_command(dirs["bert"]), mask_command(dirs["roberta"])], rounds, scratch)


def print_families(bert, roberta):
    print("BERT-base vs RoBERTa-base shapes, same size, model.safetensors (mask.py whole runs)")
    for name, runs in (("bert", bert), ("roberta", roberta)):
        loading = runs.phases["model build"][1] + runs.phases["weights"][1]
        print(f"  {name:<8} {runs.summary()}   model build + weights: CPU {loading:5.2f} s")
    print(f"  roberta / bert: {roberta.wall / bert.wall:.2f} of the time, {roberta.cpu / bert.cpu:.2f} of the CPU, "
          f"{roberta.memory / bert.memory:.2f} of the memory\n")


def load_average():
    """The 1-, 5- and 15-minute load averages (other work on the machine skews wall times)."""
    try:
        return " ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "unknown"


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


# --- corpus mode (mask.py --corpus) ---------------------------------------------------------

# The sentences: the repository's everyday corpus, those of 10 to 20 words
CORPUS_FILE = os.path.join(ROOT, "corpus", "everyday_english.txt")


def corpus_section(model_dir, rounds, quick, scratch):
    """
    Sentences per second of corpus mode (padded batches through the traced encoder, pattern
    scores and head measures per sentence) against a loop of one-sentence runs in the same
    process (attention_run.prepare(text).run() per sentence: what a script calling mask.explain
    in a loop does), on the bundled model and on the bert-base-shaped checkpoint (given
    bert-base-uncased's tokenizer, so that sentences have their real length in tokens).
    Rounds alternate the two ways, so machine load hits both alike; medians are shown.
    """
    import attention_run
    import corpus
    import model_loading
    import model_source

    model_loading.import_transformers()
    with open(CORPUS_FILE, encoding="utf-8") as file:
        lines = [line.strip() for line in file if line.strip() and not line.startswith("#")]
    sentences = [line for line in lines if 10 <= len(line.split()) <= 20]
    if quick:
        sentences = sentences[:64]
    models = [("bundled model (6 layers x 12 heads, 384 wide)", model_source.BUNDLED, 40)]
    shaped = _with_real_tokenizer(model_dir, os.path.join(scratch, "corpus-model"))
    if shaped:
        models.append((f"{os.path.basename(model_dir)} checkpoint, bert-base-uncased's tokenizer", shaped, 20))
    print(f"Corpus mode: {len(sentences)} sentences of 10-20 words from corpus/everyday_english.txt, "
          f"batch size {corpus.BATCH_SIZE}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for label, model, loop_count in models:
        loop_count = min(loop_count, len(sentences))
        opened = attention_run.open_model(model)
        start = time.perf_counter()
        opened.network  # noqa: B018  (loads the weights: not timed below)
        load = time.perf_counter() - start
        start = time.perf_counter()
        corpus.analyse([(1, sentences[0])], model, notify=lambda line: None)  # traces the encoder once
        trace = time.perf_counter() - start
        attention_run.prepare(sentences[0], model, require_mask=False).run()  # the loop's first run, untimed
        numbered = list(enumerate(sentences, start=1))
        batched, looped, unbatched = [], [], []
        for _ in range(rounds):
            start = time.perf_counter()
            corpus.analyse(numbered, model, notify=lambda line: None)
            batched.append(len(sentences) / (time.perf_counter() - start))
            start = time.perf_counter()
            for sentence in sentences[:loop_count]:
                attention_run.prepare(sentence, model, require_mask=False).run()
            looped.append(loop_count / (time.perf_counter() - start))
            start = time.perf_counter()
            corpus.analyse(numbered[:loop_count], model, batch_size=1, notify=lambda line: None)
            unbatched.append(loop_count / (time.perf_counter() - start))
        fast, slow = statistics.median(batched), statistics.median(looped)
        tokens = statistics.mean(
            attention_run.prepare(sentence, model, require_mask=False).encoding["input_ids"].shape[1]
            for sentence in sentences)
        print(f"  {label} (sentences of {tokens:.1f} tokens on average)")
        print(f"    loading the weights {load:6.2f} s, tracing the encoder {trace:6.2f} s (once per process)")
        print(f"    one-sentence runs in a loop   {slow:7.1f} sentences/s   ({loop_count} sentences)")
        print(f"    corpus mode, batch size 1     {statistics.median(unbatched):7.1f} sentences/s   "
              "(traced encoder, no masked-LM head)")
        print(f"    corpus mode, batched          {fast:7.1f} sentences/s   ({fast / slow:.1f}x the loop)")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")


def _with_real_tokenizer(model_dir, path):
    """
    A copy of the checkpoint (weights linked, not copied) with bert-base-uncased's tokenizer from the
    MiniLM package, when its vocabulary has bert-base-uncased's size; else None (the quick checkpoint).
    """
    import json

    import model_source

    weights = model_source.minilm_weights_path()
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    if weights is None or config.get("vocab_size") != 30522:
        return None
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(model_dir):
        if name.endswith((".h5", ".safetensors")) or name == "config.json":
            os.symlink(os.path.join(os.path.abspath(model_dir), name), os.path.join(path, name))
    minilm = os.path.dirname(weights)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(minilm, name)):
            with open(os.path.join(minilm, name), "rb") as source, open(os.path.join(path, name), "wb") as target:
                target.write(source.read())
    return path


if __name__ == "__main__":
    main()

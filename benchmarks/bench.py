"""
Benchmark: our renderer and whole run against the straightforward CS50 program.

    .venv/bin/python -m benchmarks.bench            # bert-base-shaped checkpoints, 3 rounds (~6 min)
    .venv/bin/python -m benchmarks.bench --quick    # small checkpoint, 1 round (a smoke test)

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
3. draws every head's diagram for the sentence with the straightforward renderer
   (benchmarks/reference_renderer.py) and with ours, in this process;
4. (not with --quick) loads a RoBERTa-base-shaped and a BERT-base-shaped
   checkpoint of the same size, both PyTorch-format safetensors, with mask.py;
5. (not with --quick) the same phase breakdown for the bundled model.
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
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model_dir or build_checkpoint(os.path.join(scratch, "model"), args.quick)
        print(f"checkpoint: {model_dir}")
        print(f"sentence: {SENTENCE!r}; rounds: {rounds} (medians shown), {os.cpu_count()} CPUs")
        print(f"load average at the start: {load_average()}\n")

        # Whole runs first, while this process is small: a child's peak memory (ru_maxrss)
        # counts the pages it was forked with, so a parent holding TensorFlow would inflate both
        runs = compare_whole_runs(model_dir, rounds, scratch)
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

        if not args.quick:
            print_families(*families)
            print(f"Bundled model (--model bundled): {bundled.summary()}")
            print_phases("Where a bundled-model run's time goes (medians)", bundled)
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
    straightforward = ([sys.executable, os.path.join(HERE, "straightforward_mask.py"), model_dir, "OUT"],
                       SENTENCE + "\n")
    return whole_runs([straightforward, mask_command(model_dir)], rounds, scratch)


def whole_runs(programs, rounds, scratch):
    """Each program `rounds` times, alternating; a Runs per program."""
    results = [[] for _ in programs]
    for _ in range(rounds):
        for index, (command, stdin) in enumerate(programs):
            out = tempfile.mkdtemp(dir=scratch)
            results[index].append(measured_process([out if part == "OUT" else part for part in command], stdin))
    return [Runs(runs) for runs in results]


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


if __name__ == "__main__":
    main()

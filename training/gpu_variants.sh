#!/usr/bin/env bash
# Train variants of the bundled model's recipe at once on one GPU and write each to
# $OUT/NAME/ (report.json, log.txt; weights.safetensors, config.json and
# training_report.json too), then print one summary line per variant and each variant's
# answers on every cloze set it was scored on.
#
#   bash training/gpu_variants.sh [VARIANTS_FILE]
#
# VARIANTS_FILE (default training/variants/first_three.txt) has one variant a line,
# "NAME: trainer options", where $G is the carry folder, $BASE the four default sources
# other than the everyday sentences and $EVERYDAY the everyday sentences; # starts a comment.
#
# Run from the repository root on the GPU machine, with the ignored folder .gpu/
# carried (made on the CPU machine, see training/README.md, section 6):
#   .gpu/init_fp16.safetensors   MiniLM weights in fp16 (train_bundled_model.py --export-init)
#   .gpu/train_<source>.txt.xz   the training sentences of each default source (build_corpus.py --xz)
#   .gpu/corpus_heldout.txt      the held-out sentences every variant is scored on
#
# Each run is capped at MAX_MIN minutes of training (it then stops, evaluates and
# saves), so the whole script stays within about MAX_MIN + 1.5 minutes.  CLOZE names
# the cloze sets scored (default: the trainer's own, everyday_cloze.txt and cloze.txt).
set -u
OUT=${OUT:-out}
G=${G:-.gpu}
STEPS=${STEPS:-4000}
MAX_MIN=${MAX_MIN:-4}
PY=${PY:-python3}
VARIANTS=${1:-training/variants/first_three.txt}
CLOZE=${CLOZE:-training/everyday_cloze.txt training/cloze.txt}
# Parallel runs share the CPU cores for their data and masks: two threads each.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

BASE="$G/train_fortunes.txt.xz $G/train_wordnet-examples.txt.xz $G/train_wordnet-glosses.txt.xz
      $G/train_gensim-wiki.txt.xz"
EVERYDAY="$G/train_everyday.txt.xz"

run() {
    local name=$1; shift
    mkdir -p "$OUT/$name"
    # shellcheck disable=SC2086
    $PY training/train_bundled_model.py --init "$G/init_fp16.safetensors" \
        --heldout "$G/corpus_heldout.txt" --steps "$STEPS" --max-minutes "$MAX_MIN" \
        --log-every 500 --cloze $CLOZE --out "$OUT/$name" --report "$OUT/$name/report.json" "$@" \
        > "$OUT/$name/log.txt" 2>&1
    echo "$name exit $?"
}

nvidia-smi -L 2>/dev/null || true
while IFS= read -r line; do
    case $line in ''|'#'*) continue ;; esac
    name=${line%%:*}
    opts=${line#*:}
    # The options are the file's own text: let the shell split them and expand $G etc.
    eval "set -- $opts"
    run "$name" "$@" &
done < "$VARIANTS"
wait

# One summary line per variant, then each variant's cloze answers.
$PY - "$OUT" "$VARIANTS" <<'PYEOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
names = [ln.split(":", 1)[0] for ln in open(sys.argv[2]) if ln.strip() and not ln.startswith("#")]
reports = {}
for name in names:
    try:
        reports[name] = json.loads((out / name / "report.json").read_text())
    except OSError:
        print(name, "no report; see", out / name / "log.txt")
for name, r in reports.items():
    f = r["final"]
    cloze = "; ".join(f"{c} top1 {f[c + '_top1']} top3 {f[c + '_top3']}/{f[c + '_total']} "
                      f"copy {100 * f[c + '_copy_rate']:.1f}%"
                      for c in (k[:-len("_total")] for k in f if k.endswith("_total")))
    print(f"{name}: {r['corpus_stats']['train_sentences']} sentences, {r['steps_done']} steps"
          f"{' (stopped early)' if r['stopped_early'] else ''}, {1000 * r['seconds_per_step']:.0f} ms/step on "
          f"{r['device_name']}, heldout top1 {f['heldout_top1']:.3f} top5 {f['heldout_top5']:.3f}; {cloze}; "
          f"France -> {', '.join(f['france_top3'])}")
for name, r in reports.items():
    for cname, c in r["evals"][-1]["cloze"].items():
        print(f"-- {name} {cname} (+ top-3 hit, c top-1 copies a word of the sentence)")
        for it in c["items"]:
            print(f"  {'+' if it['hit'] else '-'}{'c' if it['copy'] else ' '} {it['sentence'][:56]:56s} "
                  f"{', '.join(it['top3'])}")
PYEOF

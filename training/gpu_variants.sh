#!/usr/bin/env bash
# Train three variants of the default recipe at once on one GPU and write each to
# $OUT/variantN/ (weights.safetensors, config.json, training_report.json, report.json,
# log.txt).  All three use the default sources and differ in one setting each, so the
# figures say what that setting is worth:
#
#   variant1: the default recipe (everyday sentences counted 4 times, all-occurrence masking)
#   variant2: variant1 with plain BERT masking (--no-all-occurrences)
#   variant3: variant1 with the everyday sentences counted once
#
# Run from the repository root on the GPU machine, with the ignored folder .gpu/
# carried (made on the CPU machine, see training/README.md, section 6):
#   .gpu/init_fp16.safetensors   MiniLM weights in fp16 (train_bundled_model.py --export-init)
#   .gpu/train_<source>.txt.xz   the training sentences of each default source (build_corpus.py --xz)
#   .gpu/corpus_heldout.txt      the 3,000 held-out sentences every variant is scored on
#
# Each run is capped at MAX_MIN minutes of training (it then stops, evaluates and
# saves), so the whole script stays within about MAX_MIN + 1.5 minutes.
set -u
OUT=${OUT:-out}
G=${G:-.gpu}
STEPS=${STEPS:-4000}
MAX_MIN=${MAX_MIN:-4}
PY=${PY:-python3}

BASE="$G/train_fortunes.txt.xz $G/train_wordnet-examples.txt.xz $G/train_wordnet-glosses.txt.xz
      $G/train_gensim-wiki.txt.xz"
EVERYDAY="$G/train_everyday.txt.xz"

run() {
    local name=$1; shift
    mkdir -p "$OUT/$name"
    # shellcheck disable=SC2086
    $PY training/train_bundled_model.py --init "$G/init_fp16.safetensors" \
        --heldout "$G/corpus_heldout.txt" --steps "$STEPS" --max-minutes "$MAX_MIN" \
        --log-every 500 --out "$OUT/$name" --report "$OUT/$name/report.json" "$@" \
        > "$OUT/$name/log.txt" 2>&1
    echo "$name exit $?"
}

nvidia-smi -L 2>/dev/null || true
# shellcheck disable=SC2086
run variant1 --corpus $BASE "$EVERYDAY*4" &
# shellcheck disable=SC2086
run variant2 --no-all-occurrences --corpus $BASE "$EVERYDAY*4" &
# shellcheck disable=SC2086
run variant3 --corpus $BASE "$EVERYDAY" &
wait

# One summary line per variant, then the everyday cloze answers of each.
$PY - "$OUT" <<'EOF'
import json, sys, pathlib
for d in sorted(pathlib.Path(sys.argv[1]).glob("variant*")):
    try:
        r = json.loads((d / "report.json").read_text())
    except OSError:
        print(d.name, "no report; see", d / "log.txt"); continue
    f = r["final"]
    print(f"{d.name}: {r['corpus_stats']['train_sentences']} sentences, {r['steps_done']} steps"
          f"{' (stopped early)' if r['stopped_early'] else ''}, {1000 * r['seconds_per_step']:.0f} ms/step on "
          f"{r['device_name']}, heldout top1 {f['heldout_top1']:.3f} top5 {f['heldout_top5']:.3f}, "
          f"everyday cloze top1 {f['everyday_cloze_top1']} top3 {f['everyday_cloze_top3']}/{f['everyday_cloze_total']} "
          f"copy {100 * f['everyday_cloze_copy_rate']:.0f}%, old cloze top3 {f['cloze_top3']}/{f['cloze_total']}, "
          f"France -> {', '.join(f['france_top3'])}")
for d in sorted(pathlib.Path(sys.argv[1]).glob("variant*")):
    try:
        items = json.loads((d / "report.json").read_text())["evals"][-1]["cloze"]["everyday_cloze"]["items"]
    except (OSError, KeyError, IndexError):
        continue
    print(f"-- {d.name} everyday cloze (+ top-3 hit, c top-1 copies a word of the sentence)")
    for it in items:
        print(f"  {'+' if it['hit'] else '-'}{'c' if it['copy'] else ' '} {it['sentence'][:48]:48s} {', '.join(it['top3'])}")
EOF

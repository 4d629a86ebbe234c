#!/usr/bin/env python3
"""Pick one variant of a GPU screen (gpu_variants.sh) by a rule fixed before the screen ran.

    python3 training/pick_variant.py RUNS_DIR --base NAME [--margin 0.008] [--cloze dev_cloze]

RUNS_DIR holds one folder per variant with its report.json.  A variant is eligible if it
trained all the steps it asked for (not stopped by --max-minutes) and its held-out top-5
is at most MARGIN below that of the variant BASE.  Among the eligible ones the pick is the
one with the fewest copies on the cloze set CLOZE (its first guess is a word of the
sentence), then the most top-3 hits there, then the highest held-out top-5.  Prints every
variant in that order and "PICK NAME" last.  Standard library only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, help="folder with one sub-folder (report.json) per variant")
    ap.add_argument("--base", required=True, help="the variant whose held-out top-5 sets the bar")
    ap.add_argument("--margin", type=float, default=0.008,
                    help="held-out top-5 allowed below BASE's (0.008: 0.8 points)")
    ap.add_argument("--cloze", default="dev_cloze", help="the cloze set (file stem) that decides")
    args = ap.parse_args(argv)

    reports = {}
    for d in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        try:
            reports[d.name] = json.loads((d / "report.json").read_text())
        except (OSError, ValueError):
            print(f"{d.name}: no readable report.json", file=sys.stderr)
    if args.base not in reports:
        print(f"error: no report for the base variant {args.base!r}", file=sys.stderr)
        return 2
    bar = reports[args.base]["final"]["heldout_top5"] - args.margin

    def figures(name):
        f = reports[name]["final"]
        return (round(f[f"{args.cloze}_copy_rate"] * f[f"{args.cloze}_total"]), f[f"{args.cloze}_top3"],
                f[f"{args.cloze}_top1"], f["heldout_top5"])

    def eligible(name):
        r = reports[name]
        return r["steps_done"] == r["args"]["steps"] and r["final"]["heldout_top5"] >= bar

    order = sorted(reports, key=lambda n: (figures(n)[0], -figures(n)[1], -figures(n)[3]))
    for n in order:
        copies, top3, top1, h5 = figures(n)
        print(f"{n:24s} {'eligible' if eligible(n) else 'not eligible':12s} copies {copies:2d}  top-3 {top3:2d}  "
              f"top-1 {top1:2d}  held-out top-5 {100 * h5:.2f}%  steps {reports[n]['steps_done']}")
    picks = [n for n in order if eligible(n)]
    if not picks:
        print("error: no variant is eligible", file=sys.stderr)
        return 1
    print("PICK", picks[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

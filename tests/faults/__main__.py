"""``python -m tests.faults [--full] [--record] [--only NAME,...] [--seed N] [-v]``

Quick mode (the default) takes about a minute; ``--full`` runs the counts of issue 12 and
takes about 12-20 minutes on 2 cores; ``--record`` writes tests/faults/RESULTS.md. Exit code 1
if any scenario failed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .runner import SCENARIOS, run_one, write_results


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full counts (kill -9 x100, restarts x30, ...)")
    parser.add_argument("--record", action="store_true", help="write tests/faults/RESULTS.md")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios out of {', '.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the library's warnings")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    # Hostile frames make the library warn thousands of times; the figures say what matters.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if args.verbose else logging.CRITICAL)
    results = []
    for name in names:
        print(f"-- running {name} ({'full' if args.full else 'quick'}) ...", flush=True)
        res = run_one(name, quick=not args.full, seed=args.seed)
        print(res.report(), flush=True)
        results.append(res)
    failed = [r.name for r in results if not r.passed]
    print(f"\n{len(results) - len(failed)} of {len(results)} scenarios passed" +
          (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.record:
        cmd = "python -m tests.faults" + (" --full" if args.full else "") + " --record" + \
              (f" --only {args.only}" if args.only else "") + (f" --seed {args.seed}" if args.seed != 1 else "")
        print(f"recorded in {write_results(results, cmd)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

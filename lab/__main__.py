"""Command line: `python -m lab demo`, a thin layer over the package's functions."""
import argparse
import sys

from .errors import LabError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    demo = sub.add_parser("demo", help="execute every notebook headless with a profile")
    demo.add_argument("--out", default="runs/demo", help="folder for executed notebooks, figures and runs")
    demo.add_argument("--profile", default="smoke", choices=("smoke", "paper"))
    demo.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 00 01")

    args = ap.parse_args(argv)
    try:
        if args.cmd == "demo":
            from .notebooks import run_all

            run_all(args.out, args.profile, args.only)
    except LabError as e:  # one actionable sentence, no traceback wall
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

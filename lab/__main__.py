"""Command line: `python -m lab demo | train-gan | train-classifier | train-ecgan | bench | grid | study | results |
export-card | synthesize`, a thin layer over
the package's functions."""
import argparse
import json
import os
import sys

from .errors import LabError
from .profiles import HEADLINE_THRESHOLD


def _overrides(pairs) -> dict:
    """["g_ch=8", "device=cpu"] -> {"g_ch": 8, "device": "cpu"} (values parsed as JSON when they can be; NaN
    and infinity are refused by the config's validation)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LabError(f"--set takes key=value pairs, got {pair!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


KINDS = {"train-gan": "gan", "train-classifier": "classifier", "train-ecgan": "ecgan"}


def _config(args, kind: str):
    """The run config of a train command: its preset (of this kind), then --set, --seed and --steps; every value
    validated before anything is written."""
    from .config import ClassifierConfig, ECGANConfig, GANConfig
    from .presets import PRESETS, check, preset

    cls = {"gan": GANConfig, "classifier": ClassifierConfig, "ecgan": ECGANConfig}[kind]
    cfg = preset(args.preset)
    if not isinstance(cfg, cls):
        same = [k for k in PRESETS if isinstance(PRESETS[k](), cls)]
        raise LabError(f"--preset {args.preset} is a {cfg.kind} preset; {args.cmd} takes one of: {', '.join(same)}.")
    cfg = cfg.replace(**_overrides(args.set))
    changes = {k: v for k, v in (("seed", args.seed), ("steps", args.steps)) if v is not None}
    return check(cfg.replace(**changes))


def _usable_dir(path):
    """`path` as a run directory: refused when it names a file or cannot be created (nothing is created here)."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LabError(f"--run-dir {path} is a file; name a directory (new or a run's).")
    parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise LabError(f"--run-dir {path} cannot be created ({parent} is not a writable directory); choose another.")
    return path


def _train(args) -> None:
    """train-gan | train-classifier | train-ecgan: finish, resume or start one run (or print it: --dry-run)."""
    from .experiments import resolve_ecgan_steps, train_into
    from .runs import Run, lock_holder, run_dir, run_lock

    kind = KINDS[args.cmd]
    cfg = _config(args, kind)
    if kind == "ecgan" and not args.dry_run:
        cfg = resolve_ecgan_steps(cfg)
    path = _usable_dir(args.run_dir or run_dir(cfg, args.root))
    run = Run(path)
    steps = getattr(cfg, "steps", None) or None
    if args.dry_run:
        state = ("done" if run.is_done(steps) else "resume" if run.has_checkpoint() else
                 "new" if not path.exists() else "start (folder exists)")
        print(json.dumps(cfg.to_dict(), indent=1))
        print(f"run directory: {path} ({state})")
        return
    if run.is_done(steps):
        print(f"{path}: already done ({run.done()['step']} steps); pass a larger --steps to continue it.")
        return
    holder = lock_holder(path)
    if holder and holder != os.getpid():
        raise LabError(f"{path} is being trained by process {holder}; one process trains a run at a time: wait for "
                       f"it to finish (the same command then returns the finished run).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"--run-dir {path} cannot be created ({e.strerror}); choose another directory.") from None
    with run_lock(path):
        run = train_into(cfg, path, args.root)
    print(f"{run.path}: done, {run.done()['step']} steps.")


def _int_at_least(lo: int):
    """An argparse type: an integer >= lo."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {value}")
        return value
    return parse


_positive, _count = _int_at_least(1), _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _threshold(text: str):
    """A threshold argument: a float in [0, 1], or "none" (the unfiltered stream)."""
    return "none" if text.lower() == "none" else float(text)


def _markdown(rows: list) -> str:
    """A list of dicts as a markdown table (for BENCHMARKS.md)."""
    import pandas as pd

    from .tables import markdown_table

    return markdown_table(pd.DataFrame(rows))


def _bench(args) -> None:
    from . import bench

    if args.what == "metrics":
        print(_markdown(bench.bench_metrics(args.n, 200, args.device, args.weights, args.preset, args.gan_run)))
        return
    if args.what == "grid":
        print(_markdown(bench.bench_grid(args.preset, args.steps)))
        return
    known = bench.VARIANTS
    unknown = set(args.variants or []) - set(known)
    if unknown:
        raise LabError(f"Unknown variant(s) {sorted(unknown)}; choose from {list(known)}.")
    runs = dict(gan_run=args.gan_run, filter_run=args.filter_run)
    if args.what == "gan":
        rows = bench.bench_gan(args.preset, args.steps, args.warmup, args.device, args.variants, **_overrides(args.set))
    elif args.what == "sampler":
        rows = bench.bench_sampler(args.preset, args.classifier_preset, args.threshold, args.steps, args.warmup,
                                   args.batch_size, None, args.device, args.variants, **runs)
    else:
        rows = bench.bench_classifier(args.preset, args.classifier_preset, args.threshold, args.steps, args.warmup,
                                      args.device, args.variants, **runs, **_overrides(args.set))
    print(_markdown(rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    demo = sub.add_parser("demo", help="execute every notebook headless with a profile")
    demo.add_argument("--out", default="runs/demo", help="folder for executed notebooks, figures and runs")
    demo.add_argument("--profile", default="smoke", choices=("smoke", "study", "paper", "paper-rehearsal"),
                      help="paper-rehearsal: the paper profile's code paths, shrunk, on fixture files (minutes, CPU)")
    demo.add_argument("--only", nargs="*", help="notebook name prefixes to run, e.g. 00 01")
    demo.add_argument("--jobs", type=_positive, default=None,
                      help="lanes: 2 = the notebooks + a worker training notebooks 05-07's runs ahead, each with half "
                           "the CPU threads (default: 2 on a CPU-only machine with 2+ cores, else 1)")

    for cmd, what, example in (("train-gan", "a GAN", "digits-smoke, cifar10-paper, cifar100-concat-paper"),
                               ("train-classifier", "a classifier", "classifier-digits-smoke, classifier-cifar10-paper"),
                               ("train-ecgan", "an EC-GAN run", "digits-ecgan-smoke, svhn-ecgan-paper")):
        tg = sub.add_parser(cmd, help=f"finish, resume or start {what} run")
        tg.add_argument("--preset", required=True, help=f"e.g. {example}")
        tg.add_argument("--seed", type=_count)
        tg.add_argument("--steps", type=_positive, help="total steps of the run (a larger N continues it)")
        tg.add_argument("--run-dir", help="default: <root>/<kind>/<dataset>-s<seed>-<hash>")
        tg.add_argument("--root", default=None, help="the run store (default: $LAB_RUNS, else runs); a stream "
                        "classifier's GANs and filter are read from it")
        tg.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. device=cpu")
        tg.add_argument("--dry-run", action="store_true", help="print the resolved config and run directory; train nothing")

    bench = sub.add_parser("bench", help="throughput, fp32 eager vs the fast path, side by side")
    bench.add_argument("what", choices=("gan", "sampler", "classifier", "metrics", "grid"))
    bench.add_argument("--preset", default="digits-smoke", help="GAN preset (all three benches)")
    bench.add_argument("--classifier-preset", default="classifier-digits-smoke", help="sampler / classifier benches")
    bench.add_argument("--gan-run", help="sampler / classifier: a trained GAN run directory (else untrained)")
    bench.add_argument("--filter-run", help="sampler / classifier: a trained filter classifier run directory")
    bench.add_argument("--threshold", type=float, default=HEADLINE_THRESHOLD,
                       help="Algorithm 1's threshold (trained runs only)")
    bench.add_argument("--steps", type=_positive, default=20, help="timed steps (sampler: batches) per variant")
    bench.add_argument("--warmup", type=_count, default=5, help="untimed steps first (compilation)")
    bench.add_argument("--batch-size", type=_positive, default=128, help="sampler: batch size")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--n", type=_positive, default=2000, help="metrics: generated samples scored")
    bench.add_argument("--weights", help="metrics: Inception weights file (else LAB_INCEPTION_WEIGHTS / torch hub cache)")
    bench.add_argument("--variants", nargs="*", help="subset of: 'fp32 eager', 'bf16 + channels_last', ...")
    bench.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="gan / classifier: override config fields")

    card = sub.add_parser("export-card", help="write a generator card: safetensors weights + card.json")
    card.add_argument("--gan", nargs="+", required=True, metavar="RUN", help="GAN run directories (mixed uniformly)")
    card.add_argument("--filter", required=True, metavar="RUN", help="the filter classifier's run directory")
    card.add_argument("--out", required=True, help="the card folder")
    card.add_argument("--threshold", type=float, default=HEADLINE_THRESHOLD, help="recommended Algorithm 1 threshold")

    syn = sub.add_parser("synthesize", help="write a filtered, class-balanced labelled dataset from a card")
    syn.add_argument("--card", required=True, help="a card folder (export-card)")
    syn.add_argument("--n", type=_positive, required=True, help="number of images")
    syn.add_argument("--threshold", type=_threshold, help="Algorithm 1's threshold, or 'none' for the unfiltered "
                     "stream (default: the card's recommendation)")
    syn.add_argument("--out", required=True, help="the dataset folder")
    syn.add_argument("--format", default="png", choices=("png", "npz"))
    syn.add_argument("--seed", type=_count, default=0)
    syn.add_argument("--device", default="auto")
    syn.add_argument("--max-draws-per-class", type=_positive, default=10_000, help="draws in a row without an accepted "
                     "sample after which a class counts as starved and the dataset is balanced over the others")

    gr = sub.add_parser("grid", help="bring a notebook's grid of runs to done, locally or on Ray")
    gr.add_argument("--notebook", required=True, choices=("04", "05", "06", "07"))
    gr.add_argument("--profile", default="smoke", choices=("smoke", "study", "paper", "official", "paper-rehearsal"))
    gr.add_argument("--backend", default="local", choices=("local", "ray"))
    gr.add_argument("--address", help="ray: 'auto' or 'ray://host:port' joins a cluster (default: a local Ray)")
    gr.add_argument("--root", default="runs", help="the run store (on a filesystem every worker sees)")
    gr.add_argument("--data-root", default="data")
    gr.add_argument("--num-cpus", type=_positive_float, default=1, help="ray: CPUs per task (torch threads)")
    gr.add_argument("--num-gpus", type=float, help="ray: GPUs per task (default 1 where CUDA is available)")

    st = sub.add_parser("study", help="grow the study's ledger: train what it lacks, export, rewrite RESULTS.md")
    st.add_argument("--minutes", type=_positive_float, help="start only runs expected to finish within this many minutes")
    st.add_argument("--lanes", type=_positive, help="processes of one thread each (default: one per core)")
    st.add_argument("--profile", default="study", choices=("smoke", "study", "paper"))
    st.add_argument("--root", default="runs/study", help="the run store (checkpoints; not committed)")
    st.add_argument("--ledger", default=None, help="the ledger folder (default: results/ledger of this checkout)")
    st.add_argument("--data-root", default="data")
    st.add_argument("--no-results", action="store_true", help="do not rewrite RESULTS.md at the end")
    st.add_argument("--status", action="store_true", help="print the manifest's jobs per tier, done and to do; train nothing")
    st.add_argument("--backend", default="lanes", choices=("lanes", "local", "ray"),
                    help="lanes: processes of one thread each on this machine (default); ray / local: through lab.grid")
    st.add_argument("--address", default=None, help="ray: None starts a local Ray; 'auto' or ray://host:port joins a cluster")
    st.add_argument("--num-cpus", type=_positive_float, default=1, help="ray: CPUs per run (torch threads)")
    st.add_argument("--num-gpus", type=float, help="ray: GPUs per run (default 1 where CUDA is available)")
    st.add_argument("--only", type=lambda v: tuple(k for k in v.split(",") if k), default=(),
                    help="comma-separated job kinds to take: gan, real, stream, ecgan, metrics, acceptance (default all)")

    res = sub.add_parser("results", help="write RESULTS.md and results/*.png from the study's ledger")
    res.add_argument("--runs", default=None, help="the ledger (default: results/ledger of this checkout), or a run "
                     "store / demo folder")
    res.add_argument("--profile", default="study", choices=("smoke", "study", "paper"))
    res.add_argument("--out", default="RESULTS.md", help="the markdown file")
    res.add_argument("--figures", default="results", help="folder of the figures (PNG)")
    res.add_argument("--data-root", default="data", help="where the datasets are (class names, sizes)")

    args = ap.parse_args(argv)
    try:
        if args.cmd == "demo":
            from .notebooks import run_all

            run_all(args.out, args.profile, args.only, args.jobs)
        elif args.cmd in KINDS:
            _train(args)
        elif args.cmd == "bench":
            _bench(args)
        elif args.cmd == "grid":
            from . import grid
            from .notebook_grids import notebook_grid

            todo = notebook_grid(args.notebook, args.profile, args.data_root)
            results = grid.run(todo, args.backend, args.address, args.root, args.num_cpus, args.num_gpus)
            runs = grid.check(results)
            print(f"{len(runs)} runs done ({sum(r.trained for r in results)} trained now) under {args.root}")
        elif args.cmd == "export-card":
            from .runs import Run
            from .share import export_card

            print(f"wrote {export_card([Run(g) for g in args.gan], Run(args.filter), args.out, args.threshold)}")
        elif args.cmd == "synthesize":
            from .share import load_card, synthesize

            t = {None: load_card(args.card)[2]["recommended_threshold"], "none": None}.get(args.threshold, args.threshold)
            out = synthesize(args.card, args.n, t, args.out, args.format, args.seed, device=args.device,
                             max_draws_per_class=args.max_draws_per_class)
            print(f"wrote {out}")
        elif args.cmd == "study":
            from . import ledger, study

            where = args.ledger or ledger.DEFAULT
            if args.status:
                tiers = study.status(args.profile, where, args.data_root, args.only, args.root)
                for tier, n in sorted(tiers.items()):
                    print(f"tier {tier}: {n['done']} in the ledger, {n['todo']} to do"
                          + (f" (~{n['hours']:.1f} h of one thread here)" if n["todo"] else ""))
                print(f"left: ~{sum(n['hours'] for n in tiers.values()):.1f} h of one thread on this CPU "
                      f"(`lab.jobs.estimate`: the ledger's rates on this CPU, else its defaults)")
            else:
                if args.minutes is None:
                    raise LabError("study needs --minutes N (the time it may spend), or --status.")
                if args.backend == "lanes":
                    out = study.study(args.minutes, args.lanes, args.profile, args.root, where, args.data_root,
                                      not args.no_results, only=args.only)
                else:
                    out = study.study_on_grid(args.minutes, args.backend, args.address, args.num_cpus, args.num_gpus,
                                              args.profile, args.root, where, args.data_root, not args.no_results,
                                              only=args.only)
                print(f"study: {len(out)} job(s) exported to {where}")
        elif args.cmd == "results":
            from pathlib import Path

            from .ledger import DEFAULT
            from .report import write

            runs = Path(args.runs) if args.runs else DEFAULT
            root = runs / "runs" if (runs / "runs").is_dir() else runs
            print(f"wrote {write(root, args.out, args.figures, args.profile, args.data_root)}")
    except LabError as e:  # one actionable sentence, no traceback wall
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

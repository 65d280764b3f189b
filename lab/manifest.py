"""The study's manifest: the union of the study notebooks' grids (04-07, `lab.experiments`), every run once, in
priority order, plus a metrics job per GAN set (and per GAN alone). `lab.study` trains it into the ledger;
`lab.results` selects the ledger's runs by it, so the configs are written once."""
from dataclasses import dataclass

from . import experiments as ex
from . import notebook_grids as ng
from . import profiles
from .config import ClassifierConfig, ECGANConfig, GANConfig
from .runs import run_dir


@dataclass(frozen=True)
class Job:
    """One unit of the study: a run config, or the metrics of a GAN set, or the per-class acceptance of one GAN
    (`what`; `gans`, `filter`: run names)."""

    priority: int
    config: object = None
    gans: tuple = ()
    filter: str = ""
    what: str = "metrics"  # a job without a config: "metrics" (FID, feature FD, ...) or "acceptance" (cheap)

    @property
    def kind(self) -> str:
        return self.what if self.config is None else self.config.kind

    def name(self, root=None) -> str:
        return f"{self.what}:{'+'.join(self.gans)}" if self.config is None else run_dir(self.config, root).name


def manifest(profile: str = "study", data_root: str = "data", steps: int = None) -> list:
    """The union of notebooks 04-07's grids for `profile` (with the profile's headline threshold, λ and t and
    its GAN seeds per block), every run once, then a metrics job per GAN set; as `Job`s in priority order.
    `steps` overrides every run's length (tests)."""
    P = profiles.get(profile)
    grids = (ng.threshold_sweep_grid(profile, P.dataset, threshold=P.threshold, data_root=data_root, steps=steps)
             + ng.block_grid(profile, P.block_dataset, threshold=P.threshold, data_root=data_root, steps=steps,
                             gan_seeds=P.block_gan_seeds)
             + ng.multi_gan_grid(profile, P.dataset, threshold=P.threshold, data_root=data_root, steps=steps)
             + ng.ecgan_table_grid(profile, data_root, P.ecgan_lambda, P.ecgan_threshold, steps=steps))
    configs = ng.unique(grids)
    head = ex.gan_config(profile, P.dataset, "add", 0, data_root, steps)
    base = ex.classifier_config(profile, P.dataset, data_root, **({"steps": steps} if steps else {}))
    jobs = [Job(priority(c, P, run_dir(head).name, base), c) for c in configs]
    sets, filt = {}, run_dir(ex.filter_config(profile, P.dataset, data_root, steps)).name
    for c in configs:
        if isinstance(c, ClassifierConfig) and c.source == "gan":
            sets.setdefault((tuple(sorted(c.gans)), c.filter), None)
    for c in configs:  # every GAN alone too: its per-class acceptance is an adequacy check of each claim using it
        if isinstance(c, GANConfig):
            sets.setdefault(((run_dir(c).name,), filt), None)
    jobs += [Job(9, None, g, f) for g, f in sets]
    # Each GAN's per-class acceptance (a minute) as soon as it and the filter exist: every claim's GAN check.
    jobs += [Job(priority(c, P, run_dir(head).name, base), None, (run_dir(c).name,), filt, "acceptance")
             for c in configs if isinstance(c, GANConfig)]
    # Within a tier the grids' order, except that the runs of a claim tested over seeds (the BatchNorm ablation,
    # the class-adaptive rules) come before the descriptive ones (sweeps, same-#epochs rows, the BigGAN variant),
    # and the unfiltered streams follow the filtered ones (the headline).
    unfiltered = lambda j: j.config is not None and getattr(j.config, "source", "") == "gan" and j.config.threshold is None
    return sorted(jobs, key=lambda j: (j.priority, descriptive(j.config, P, base), unfiltered(j)))


def descriptive(cfg, P, base: ClassifierConfig) -> bool:
    """A run that only describes (one point of a sweep, a same-#epochs row, EC-GAN's BigGAN variant), which no
    claim's verdict reads."""
    if cfg is None or isinstance(cfg, GANConfig):
        return False
    if isinstance(cfg, ECGANConfig):
        return cfg.method == "ecgan-biggan" or cfg.lam != P.ecgan_lambda or cfg.threshold != P.ecgan_threshold
    if cfg.source == "real":
        return cfg.steps != base.steps
    return cfg.threshold not in (P.threshold, None)


def priority(cfg, P, head_gan: str, base: ClassifierConfig) -> int:
    """The tier of a run: 0 the filter (the real split, seed 0), 1 the first add GAN, 2 its stream at the
    headline threshold and unfiltered, 3 the real split's other seeds, 4 the real subsets at the same #steps,
    5 EC-GAN's table at the headline λ and t, 6 the other GANs, 7 their streams at the headline threshold and
    unfiltered, 8 the rest (threshold sweep, same-#epochs rows, EC-GAN's sweeps and ablations, the class-adaptive
    threshold rules)."""
    if isinstance(cfg, GANConfig):
        return 1 if run_dir(cfg).name == head_gan else 6
    if isinstance(cfg, ECGANConfig):
        headline = (cfg.lam == P.ecgan_lambda and cfg.threshold == P.ecgan_threshold and cfg.bn_stats == "all"
                    and cfg.method != "ecgan-biggan" and cfg.threshold_mode == "fixed")
        return 5 if headline else 8
    if cfg.source == "real":
        if cfg.steps != base.steps:
            return 8
        return (0 if cfg.seed == 0 else 3) if not cfg.subset else 4
    if cfg.threshold not in (P.threshold, None) or cfg.threshold_mode != "fixed":
        return 8
    return 2 if cfg.gans == (head_gan,) else 7


# --- What a job needs, and whether it is done ---------------------------------------------------------
def needs(job: Job) -> list:
    """(kind, run name) of the runs a job reads: a stream classifier's GANs and filter; EC-GAN needs none."""
    if job.config is None:
        return [("gan", g) for g in job.gans] + [("classifier", job.filter)]
    c = job.config
    if isinstance(c, ClassifierConfig) and c.source == "gan":
        return [("gan", g) for g in c.gans] + [("classifier", c.filter)]
    return []

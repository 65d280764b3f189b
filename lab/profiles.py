"""What a notebook's PROFILE means: its datasets, its presets (`preset_for`) and the sizes of its grids.

* smoke: the embedded digits, narrow models, a few hundred steps: every notebook in a minute or two on a CPU;
  it checks that the pipeline runs, not what the papers claim.
* study: Fashion-MNIST (60k/10k) at budgets that can decide the papers' claims (`lab.adequacy`): 3 classifier
  seeds on every headline row, 3 GAN seeds per block, real FID; many CPU hours, grown across sessions and
  machines by `python -m lab study` into the committed ledger (results/ledger/) that RESULTS.md is read from.
* paper: the papers' own datasets, networks and lengths (CIFAR-10/100, SVHN) on a GPU.
* official: notebook 07 only, EC-GAN with the settings of its official notebook (on SVHN).
* paper-rehearsal: the paper profile's datasets, networks and grids with every count shrunk (a few steps,
  samples and seeds), on fixture files in the real formats (`lab.fixtures`): every notebook's paper code path
  in a few minutes on a CPU, before hours of GPU time find a bug (`python -m lab demo --profile paper-rehearsal`).
"""
from dataclasses import dataclass

from .presets import preset
from .errors import ConfigError


# The papers' headline values, written once: Algorithm 1's threshold of Pham et al.'s Table I, EC-GAN's λ and t.
HEADLINE_THRESHOLD, ECGAN_LAMBDA, ECGAN_THRESHOLD = 0.9, 0.1, 0.7


@dataclass(frozen=True)
class Profile:
    name: str
    dataset: str  # the dataset of notebooks 00-06 (05: `block_dataset`) when their DATASET is None
    block_dataset: str  # notebook 05's (add vs concat): the paper compares the blocks on CIFAR-100
    ecgan_dataset: str  # the dataset of notebook 07 (EC-GAN)
    real_fractions: tuple  # real subsets, as fractions of the training split (the last is the whole split)
    gan_counts: tuple  # sizes of the GAN sets mixed in notebook 06
    classifier_seeds: tuple  # repeated classifier trainings of every headline row (its ± std)
    sweep: tuple  # Algorithm 1 thresholds of notebook 04's sweep (None: the unfiltered stream)
    n_metrics: int  # generated samples per GAN set for the classifier-feature metrics
    n_fid: int  # generated samples per GAN set for FID (0: none; the Inception pass runs ~10 images/s on a CPU)
    n_fid_reference: int  # real training images FID compares with (a seeded subset)
    pool_per_class: int  # samples per class in notebook 03's cached pool
    filter_steps: int | None  # steps of Algorithm 1's filter classifier (None: as long as the classifiers)
    n_synth: int  # images of notebook 08's synthetic dataset written from a generator card
    ecgan_fractions: tuple  # labelled fractions of EC-GAN's table
    ecgan_seeds: tuple  # seeds of every EC-GAN run of the table
    biggan_seeds: tuple  # seeds of the "EC-GAN, BigGAN + Alg. 1" column (its most expensive run)
    lambda_sweep: tuple  # EC-GAN's λ sweep
    t_sweep: tuple  # EC-GAN's threshold sweep
    block_gan_seeds: tuple = (0,)  # GAN seeds of each block in notebook 05 (the spread between GANs)
    threshold: float = HEADLINE_THRESHOLD  # the headline Algorithm 1 threshold (Table I, the verdicts)
    ecgan_lambda: float = ECGAN_LAMBDA  # EC-GAN's headline λ (the paper's)
    ecgan_threshold: float = ECGAN_THRESHOLD  # EC-GAN's headline pseudo-label threshold t (the paper's)
    threshold_modes: tuple = ()  # class-adaptive rules (lab.thresholds) of notebook 04's extra rows, at the headline t
    ecgan_threshold_modes: tuple = ()  # class-adaptive pseudo-label rules of notebook 07's extra columns
    n_queries: int = 500  # generated samples (and test images) of notebook 02's nearest-neighbour histogram
    max_draws_per_class: int = 10_000  # notebook 08's synthesizer gives a class up after this many draws without
    # an accepted sample (Algorithm 1 would never yield it)
    train: bool = True  # a notebook trains what its run store lacks (study: no, it reads the committed ledger and
    # names what the ledger lacks: `python -m lab study` trains that, hours of CPU, not a notebook's kernel)


_PAPER_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)  # 10k..50k of CIFAR's 50k
_SWEEP = (None, 0.5, 0.9, 0.99)
PROFILES = {
    "smoke": Profile(
        "smoke", dataset="digits", block_dataset="digits", ecgan_dataset="digits", real_fractions=(0.2, 0.6, 1.0),
        gan_counts=(1, 2), classifier_seeds=(0,), sweep=_SWEEP, n_metrics=1000, n_fid=0, n_fid_reference=1000,
        pool_per_class=200, filter_steps=150, n_synth=1000, ecgan_fractions=(0.25,), ecgan_seeds=(0,), biggan_seeds=(0,),
        lambda_sweep=(0.0, 0.1, 0.5), t_sweep=(0.5, 0.7, 0.9)),
    "study": Profile(
        "study", dataset="fashion", block_dataset="fashion", ecgan_dataset="fashion",
        real_fractions=tuple(k / 6 for k in range(1, 7)),  # 10k, 20k, ..., 60k of Fashion-MNIST's 60k
        gan_counts=(1, 2, 4), classifier_seeds=(0, 1, 2), sweep=_SWEEP, n_metrics=2000, n_fid=2000,
        n_fid_reference=10_000, pool_per_class=500, filter_steps=None, n_synth=2_000, ecgan_fractions=(0.1, 0.3),
        ecgan_seeds=(0, 1, 2), biggan_seeds=(0,), lambda_sweep=(0.0, 0.1, 0.5), t_sweep=(0.5, 0.7, 0.9),
        block_gan_seeds=(0, 1, 2), threshold_modes=("quantile", "freematch"),
        ecgan_threshold_modes=("freematch", "flexmatch"), train=False),
    "paper": Profile(
        "paper", dataset="cifar10", block_dataset="cifar100", ecgan_dataset="svhn", real_fractions=_PAPER_FRACTIONS, gan_counts=(1, 2, 4, 6),
        classifier_seeds=(0, 1, 2), sweep=_SWEEP, n_metrics=50_000, n_fid=50_000, n_fid_reference=50_000,
        pool_per_class=1000, filter_steps=None, n_synth=50_000, ecgan_fractions=(0.1, 0.15, 0.2, 0.25, 0.3),
        ecgan_seeds=(0, 1, 2), biggan_seeds=(0, 1, 2), lambda_sweep=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
        t_sweep=(0.5, 0.7, 0.9), block_gan_seeds=(0, 1, 2)),
}
PROFILES["official"] = Profile(**{**PROFILES["paper"].__dict__, "name": "official"})


def _rehearsal(paper: Profile) -> Profile:
    """The paper profile with its counts shrunk (lab.presets.rehearse for the runs' configs): one seed where a
    grid repeats seeds, a few samples for the metrics, FID and the pools, thresholds scaled as the presets'."""
    from .presets import rehearsal_threshold as k

    scale = lambda ts: tuple(k(t) for t in ts)
    return Profile(**{
        **paper.__dict__, "name": "paper-rehearsal", "classifier_seeds": (0,), "ecgan_seeds": (0,),
        "biggan_seeds": (0,), "block_gan_seeds": (0,), "n_metrics": 20, "n_fid": 5, "n_fid_reference": 5,
        "pool_per_class": 8, "n_synth": 20, "n_queries": 10, "max_draws_per_class": 40, "sweep": scale(paper.sweep),
        "threshold": k(paper.threshold), "ecgan_threshold": k(paper.ecgan_threshold),
        "t_sweep": scale(paper.t_sweep)})


PROFILES["paper-rehearsal"] = _rehearsal(PROFILES["paper"])


def get(profile: str) -> Profile:
    """The named profile."""
    if profile not in PROFILES:
        raise ConfigError(f"Unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}.")
    return PROFILES[profile]


def preset_for(kind: str, profile: str, dataset: str = None, block: str = "add"):
    """The preset config of a notebook's parameters.

    Args:
        kind: "gan", "classifier" or "ecgan".
        profile: a profile name ("official" names the EC-GAN preset of the official notebook).
        dataset: None for the profile's dataset (its EC-GAN dataset for kind "ecgan").
        block: the GAN's residual block, "add" or "concat".
    Examples: ("gan", "study", None, "concat") -> fashion-concat-study; ("ecgan", "paper") -> svhn-ecgan-paper.
    """
    p = get(profile)
    if kind == "gan":
        return preset(f"{dataset or p.dataset}-{'concat-' if block == 'concat' else ''}{profile}")
    if kind == "classifier":
        return preset(f"classifier-{dataset or p.dataset}-{profile}")
    if kind == "ecgan":
        return preset(f"{dataset or p.ecgan_dataset}-ecgan-{profile}")
    raise ConfigError(f"Unknown run kind {kind!r}; choose gan, classifier or ecgan.")

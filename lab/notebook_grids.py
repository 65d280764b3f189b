"""What each notebook trains: its grid of run configs with the profile's defaults (`lab.grid.run` brings them to
done, locally or on Ray; `python -m lab grid --notebook NN`)."""
import json

from .config import ClassifierConfig
from .errors import LabError
from .experiments import (METHODS, classifier_config, ecgan_config, ecgan_grid, filter_config, gan_classifier_config,
                          gan_config, real_subset_configs, train_size)
from .parameters import from_profile
from .runs import Run, run_dir


def _names(cfgs, root=None) -> list:
    """Run objects (not trained) for configs: their names are what the stream configs refer to."""
    return [Run(run_dir(c, root)) for c in cfgs]


def unique(cfgs) -> list:
    """The configs without repeats, in their first order."""
    return list({json.dumps([c.kind, c.to_dict()], sort_keys=True): c for c in cfgs}.values())


def threshold_sweep_grid(profile, dataset=None, block="add", seed=0, threshold="profile", sweep=None,
                         classifier_seeds=None, data_root="data", steps=None) -> list:
    """Notebook 04: the GAN, the filter, the real subsets (same #steps and #epochs, every classifier seed), the
    classifiers of the GAN's stream at every threshold of the sweep (the headline threshold and the
    unfiltered stream with every seed, the others with the first), and at the headline threshold under each of
    the profile's class-adaptive rules (`Profile.threshold_modes`, every seed). threshold "profile": the
    profile's headline."""
    from .profiles import get

    P = get(profile)
    threshold = from_profile(profile, "threshold", threshold)
    sweep = P.sweep if sweep is None else sweep
    seeds = classifier_seeds or P.classifier_seeds
    gan = gan_config(profile, dataset, block, seed, data_root, steps)
    base = classifier_config(profile, gan.dataset, data_root, **({"steps": steps} if steps else {}))
    filt = filter_config(profile, gan.dataset, data_root, steps)
    n_train = train_size(base.dataset, data_root)
    real = real_subset_configs(base, n_train, "steps", P.real_fractions) + real_subset_configs(base, n_train, "epochs",
                                                                                            P.real_fractions)
    g, f = _names([gan, filt])
    streams = [gan_classifier_config(base.replace(seed=s), [g], f, t)
               for t in sorted(set(sweep) | {threshold, None}, key=lambda t: -1 if t is None else t)
               for s in (seeds if t in (threshold, None) else seeds[:1])]
    streams += [gan_classifier_config(base.replace(seed=s), [g], f, threshold).replace(threshold_mode=m)
                for m in P.threshold_modes for s in seeds]
    return unique([gan, filt] + [c.replace(seed=s) for s in seeds for c in real] + streams)


def gan_set_grid(base: ClassifierConfig, gans: list, filt, threshold, seeds) -> list:
    """The classifier configs of one GAN set: per seed at `threshold`, and the
    unfiltered stream (the set's CAS)."""
    g, f = _names(gans), _names([filt])[0]
    return [gan_classifier_config(base.replace(seed=s), g, f, threshold) for s in seeds] + [
        gan_classifier_config(base, g, f, None)]


def block_grid(profile, dataset=None, seed=0, threshold="profile", classifier_seeds=None, data_root="data", steps=None,
               gan_seeds=None) -> list:
    """Notebook 05: the add and the concat GAN of `seed` (or of each of `gan_seeds`), the filter, and each GAN's
    classifiers: every classifier seed for the GANs of the first GAN seed, the first classifier seed for the
    others (a GAN's error is the mean of its classifier seeds; the spread between GANs is the claim's ±)."""
    from .profiles import get

    seeds = classifier_seeds or get(profile).classifier_seeds
    dataset = dataset or get(profile).block_dataset
    threshold = from_profile(profile, "threshold", threshold)
    gan_seeds = tuple(gan_seeds or (seed,))
    gans = [gan_config(profile, dataset, b, s, data_root, steps) for s in gan_seeds for b in ("add", "concat")]
    base = classifier_config(profile, gans[0].dataset, data_root, **({"steps": steps} if steps else {}))
    filt = filter_config(profile, gans[0].dataset, data_root, steps)
    clf = [c for g in gans for c in gan_set_grid(base, [g], filt, threshold, seeds if g.seed == gan_seeds[0] else seeds[:1])]
    return unique(gans + [filt] + clf)


def multi_gan_grid(profile, dataset=None, block="add", gan_counts=None, threshold="profile", classifier_seeds=None,
                   data_root="data", steps=None) -> list:
    """Notebook 06: GANs of seeds 0..max(counts)-1, the filter, each nested set's classifiers, the real subsets."""
    from .profiles import get

    P = get(profile)
    counts, seeds = gan_counts or P.gan_counts, classifier_seeds or P.classifier_seeds
    threshold = from_profile(profile, "threshold", threshold)
    gans = [gan_config(profile, dataset, block, s, data_root, steps) for s in range(max(counts))]
    base = classifier_config(profile, gans[0].dataset, data_root, **({"steps": steps} if steps else {}))
    filt = filter_config(profile, gans[0].dataset, data_root, steps)
    n_train = train_size(base.dataset, data_root)
    real = real_subset_configs(base, n_train, "steps", P.real_fractions) + real_subset_configs(base, n_train, "epochs",
                                                                                            P.real_fractions)
    sets = [c for k in counts for c in gan_set_grid(base, gans[:k], filt, threshold, seeds)]
    return unique(gans + [filt] + sets + [c.replace(seed=s) for s in seeds for c in real])


def ecgan_table_grid(profile, data_root="data", lam="profile", threshold="profile", fractions=None, seeds=None,
                     biggan_seeds=None, lambda_sweep=None, t_sweep=None, steps=None) -> list:
    """Notebook 07: every method at every labelled fraction and seed (the BigGAN variant with its own seeds),
    then EC-GAN's λ and t sweeps at the first fraction, EC-GAN under each class-adaptive pseudo-label rule of the
    profile (`Profile.ecgan_threshold_modes`) at every fraction and seed, and EC-GAN and the shared ResNet
    discriminator with their fakes kept out of BatchNorm running statistics (`bn_stats="real"`) at the first
    fraction for every seed. lam, threshold "profile": the profile's headline λ and t."""
    from .profiles import get

    P = get(profile)
    lam, threshold = from_profile(profile, "ecgan_lambda", lam), from_profile(profile, "ecgan_threshold", threshold)
    fractions, seeds = fractions or P.ecgan_fractions, seeds or P.ecgan_seeds
    biggan_seeds = biggan_seeds or P.biggan_seeds
    base = ecgan_config(profile, data_root, lam=lam, threshold=threshold, **({"steps": steps} if steps else {}))
    table = [c for c in ecgan_grid(base, fractions, METHODS, seeds) if c.method != "ecgan-biggan" or c.seed in biggan_seeds]
    frac = fractions[0]
    sweeps = [base.replace(method="ecgan", fraction=frac, lam=v) for v in (P.lambda_sweep if lambda_sweep is None else lambda_sweep)]
    sweeps += [base.replace(method="ecgan", fraction=frac, threshold=v) for v in (P.t_sweep if t_sweep is None else t_sweep)]
    bn_real = [base.replace(method=m, fraction=frac, seed=s, bn_stats="real") for m in ("ecgan", "shared-resnet")
               for s in seeds]
    adaptive = [base.replace(method="ecgan", fraction=f, seed=s, threshold_mode=m)
                for m in P.ecgan_threshold_modes for f in fractions for s in seeds]
    return unique(table + sweeps + bn_real + adaptive)


NOTEBOOK_GRIDS = {"04": threshold_sweep_grid, "05": block_grid, "06": multi_gan_grid, "07": ecgan_table_grid}


def notebook_grid(notebook: str, profile: str, data_root: str = "data") -> list:
    """The grid a notebook trains ("04".."07"), with the profile's defaults (`python -m lab grid`)."""
    if notebook not in NOTEBOOK_GRIDS:
        raise LabError(f"Notebook {notebook!r} has no grid; choose one of {', '.join(NOTEBOOK_GRIDS)}.")
    return NOTEBOOK_GRIDS[notebook](profile, data_root=data_root)

"""EC-GAN training (Haque 2021): a DCGAN and an external classifier on real and pseudo-labelled fake images,
the paper's baselines (the classifier alone; the shared two-head discriminator of eq. 2), and this lab's
extension: a class-conditional BigGAN whose fakes Algorithm 1 (Pham et al. 2019) labels for the classifier."""
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ECGANConfig
from ..augment import augment_for
from ..data import ImageDataset, load_dataset, subset, to_float
from ..errors import ConfigError
from ..presets import biggan_config, check
from ..thresholds import rule
from ..models import param_count
from ..runs import Run, locked
from .classifier import evaluate
from .common import EpochSampler, all_finite, divergence
from .ecgan_phases import METHOD_STEPS, Iteration, build_models, classifier_of
from .loop import LogWindow, Runtime, fixed_noise, load_models, read_checkpoint, restore, save_checkpoint, save_grid

GRID = 64  # fixed-noise samples per grid (8 x 8)


# --- Data ---------------------------------------------------------------------------------
def labelled_subset(cfg: ECGANConfig, train: ImageDataset = None) -> ImageDataset:
    """The run's labelled images: int(N * fraction) of the train split, seeded, not class-balanced (as the paper)."""
    train = train if train is not None else load_dataset(cfg.dataset, "train", cfg.data_root)
    return subset(train, int(len(train) * cfg.fraction), seed=cfg.subset_seed, balanced=False)


def fingerprint(ds: ImageDataset) -> str:
    """A short hash of a dataset's pixels and labels: which labelled images a run was trained on."""
    h = hashlib.sha256(ds.images.contiguous().numpy().tobytes())
    h.update(ds.targets.numpy().tobytes())
    return h.hexdigest()[:16]


class IndependentSampler:
    """Every batch a fresh random draw of distinct images, as the notebook's `iter(loader)` per step."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        EpochSampler(n, batch_size, generator)  # the same size check
        self.n, self.batch_size, self.gen = n, batch_size, generator

    def next(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.gen, device=self.gen.device)[: self.batch_size]

    def state_dict(self) -> dict:
        return {}  # the generator's state is checkpointed with the run

    def load_state_dict(self, s: dict) -> None:
        pass


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate image i of (B, 3, H, W) in [-1, 1] counter-clockwise by degrees[i], black fill, nearest pixel
    (torchvision's `rotate` defaults)."""
    a = torch.deg2rad(degrees.to(x.device, torch.float32))
    cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def augment(x: torch.Tensor, crop, generator: torch.Generator) -> torch.Tensor:
    """The paper's augmentation: random crop (`crop`, padding 4), then a rotation uniform in ±10°."""
    x = crop(x, generator=generator)
    return rotate(x, (torch.rand(len(x), generator=generator, device=generator.device) * 2 - 1) * 10.0)


# --- The loop -------------------------------------------------------------------------------
def total_steps(cfg: ECGANConfig, n_labelled: int) -> int:
    """Iterations of the run: `steps`, or `epochs` passes of len // batch_size batches."""
    return cfg.steps or cfg.epochs * (n_labelled // cfg.batch_size)


@locked
def train_ecgan(config: ECGANConfig, labelled: ImageDataset, run_dir, on_step=None) -> Run:
    """Train (or resume, or just return) the EC-GAN / baseline run of `config` in `run_dir`.

    Args:
        config: an ECGANConfig; `method` picks EC-GAN or a baseline.
        labelled: the labelled training images (`labelled_subset(config)`); its fingerprint is checked on resume.
        run_dir: the run directory; an existing checkpoint there is resumed exactly.
        on_step: optional `on_step(step, stats)` called at every log line.
    Returns:
        The finished `Run`; done.json holds the final and the best test accuracy.
    """
    cfg = check(config)  # before anything is written
    if len(labelled.classes) != cfg.num_classes:
        raise ConfigError(f"The labelled set has {len(labelled.classes)} classes, {cfg.dataset} {cfg.num_classes}.")
    run = Run(run_dir)
    run.init(cfg)
    rt = Runtime.for_run(cfg, run)
    dev, amp = rt.device, rt.amp  # the memory format: rt.layout_for(the models), below
    test = load_dataset(cfg.dataset, "test", cfg.data_root)
    fp = fingerprint(labelled)

    # Models, optimisers (weight decay on D and C, not G), and two random streams: data (batches,
    # augmentation) and noise, so "ecgan" and "classifier" see the same real batches in the same order.
    # ecgan-biggan: G and D take the BigGAN preset's Adam settings (no weight decay), and D's `d_steps`
    # real batches per iteration come from a third stream of their own, so that C still sees exactly
    # the real batches of "classifier".
    torch.manual_seed(cfg.seed)
    models = build_models(cfg)
    cl = rt.layout_for(*models.values())
    models = {k: m.to(dev, memory_format=cl).train() for k, m in models.items()}
    big = biggan_config(cfg) if cfg.method == "ecgan-biggan" else None
    opts = {}
    for k, m in models.items():
        if big is not None and k in ("G", "D"):
            opts[k] = torch.optim.Adam(m.parameters(), lr=big.g_lr if k == "G" else big.d_lr,
                                       betas=(big.beta1, big.beta2), eps=big.adam_eps)
        else:
            opts[k] = torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                       weight_decay=0.0 if k == "G" else cfg.weight_decay)
    fwd = {k: torch.compile(m) if cfg.compile else m for k, m in models.items()}
    gen_data = torch.Generator(dev).manual_seed(cfg.seed)
    gen_z = torch.Generator(dev).manual_seed(cfg.seed + 2**31)
    images, labels = labelled.images.to(dev), labelled.targets.to(dev)
    sampler = (EpochSampler if cfg.sampling == "epochs" else IndependentSampler)(len(images), cfg.batch_size, gen_data)
    gen_d = torch.Generator(dev).manual_seed(cfg.seed + 1)
    sampler_d = EpochSampler(len(images), cfg.batch_size, gen_d) if big is not None else None
    crop = augment_for(labelled) if cfg.augment else None
    per_epoch = len(images) // cfg.batch_size
    total = total_steps(cfg, len(images))
    state = dict(models=models, opts=opts, rngs={"data": gen_data, "z": gen_z, **({"d": gen_d} if big else {})},
                 samplers={"data": sampler, "d": sampler_d})

    # Resume: weights, optimisers, step, batch order, RNG states, log window, best accuracy so far.
    step, extra = restore(run, dev, **state)
    if extra and extra["labelled"] != fp:
        raise ConfigError(f"{run.path} was trained on another labelled subset; pass labelled_subset(config).")
    best = extra.get("best", {"accuracy": -1.0, "step": 0})
    run.truncate_stats(step)
    postfix = lambda s: {k: f"{s[k]:.3f}" for k in ("loss_d", "loss_g", "loss_c", "test_acc") if k in s}
    log = LogWindow(run, total, step, cfg.log_every, f"{cfg.method} {run.path.name}", postfix, on_step)
    if extra:
        log.load_state_dict(extra["window"])

    clf, final = classifier_of(cfg, models), None
    # Fixed noise of the sample grids: 64 z (DCGAN); for BigGAN 8 z per class, one row per class (first 10).
    z_fix, y_fix = fixed_noise(cfg.z_dim if big is None else big.z_dim, cfg.seed, dev,
                               None if big is None else cfg.num_classes, per_class=8, n=GRID)
    adaptive = rule(cfg.threshold_mode, cfg.num_classes, cfg.threshold) if cfg.threshold_mode != "fixed" else None
    if adaptive is not None and extra.get("rule"):
        adaptive.load_state_dict(extra["rule"])
    it = Iteration(cfg, models, fwd, opts, big, amp, cl, images, labels, sampler_d, gen_z, cfg.bn_stats == "real",
                   adaptive)
    while step < total:
        # Real batch (augmented in [-1, 1]; then in the range D and C are fed).
        idx = sampler.next()
        x, y = to_float(images[idx]), labels[idx]
        if crop is not None:
            x = augment(x, crop, gen_data)
        if cfg.real_range == "[0,1]":
            x = (x + 1) / 2
        x = x.contiguous(memory_format=cl)

        # Fakes: one batch per iteration, used by the D, G and C steps (the notebook's fakeImageBatch).
        x_fake = None
        if cfg.uses_gan and big is None:
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=gen_z, device=dev)
            with amp:
                x_fake = fwd["G"](z).float().contiguous(memory_format=cl)

        # The method's D, G and C steps, in the paper's order (ecgan_phases.METHOD_STEPS).
        out = METHOD_STEPS[cfg.method](it, x, y, x_fake)
        step += 1
        log.add(**out)

        # Log (the window's means: the loop's only host sync), and every eval_every iterations the full test split.
        evaluate_now = step % cfg.eval_every == 0 or step == total
        if log.due(step) or evaluate_now:
            def test_accuracy():
                nonlocal final, best
                final = evaluate(clf, test)
                if final["accuracy"] > best["accuracy"]:
                    best = {"accuracy": final["accuracy"], "step": step}
                if "G" in models:
                    save_grid(models["G"], z_fix, run.path / "samples" / f"step-{step:07d}.png", y_fix, nrow=8,
                              batch_stats=True)
                return {"test_acc": final["accuracy"]}
            log.log(step, {"epoch": round(step / per_epoch, 4)}, test_accuracy if evaluate_now else None)

        # Checkpoint, only of finite weights: a diverged run keeps its last good checkpoint.
        if step % cfg.ckpt_every == 0 or step == total:
            if not all_finite(*models.values()):
                raise divergence("a weight", step, log.last_good, run.path)
            save_checkpoint(run, step, cfg, **state, extra={"window": log.state_dict(), "labelled": fp, "best": best,
                                                            **({"rule": adaptive.state_dict()} if adaptive else {})})
            log.checkpointed(step)
        log.update()
    log.close()

    if not run.is_done(total):
        if final is None:  # resumed from the last checkpoint of a run that stopped before done.json
            final = evaluate(clf, test)
            best = max(best, {"accuracy": final["accuracy"], "step": step}, key=lambda b: b["accuracy"])
        run.mark_done({
            "step": step, "epochs": round(step / per_epoch, 4), "method": cfg.method,
            "final_accuracy": final["accuracy"], "best_accuracy": best["accuracy"], "best_step": best["step"],
            "per_class_accuracy": final["per_class_accuracy"], "n_labelled": len(labelled), "labelled": fp,
            **{f"{k}_params": param_count(m) for k, m in models.items()},
            **({"thresholds": adaptive.thresholds().tolist()} if adaptive else {}),
        })
    return run


def load_ecgan(run_dir, device="cpu") -> tuple[dict, nn.Module]:
    """A run's networks by role ("C", "D", "G") and its evaluated classifier (taking [-1, 1] images), in eval mode."""
    run = Run(run_dir)
    cfg = run.config(ECGANConfig)
    models = build_models(cfg)
    load_models(models, read_checkpoint(run)["models"], f"{run.checkpoint_path} does not match its config.json")
    models = {k: m.to(device).eval().requires_grad_(False) for k, m in models.items()}
    return models, classifier_of(cfg, models).eval()

"""EC-GAN training (Haque 2021): a DCGAN and an external classifier on real and pseudo-labelled fake images,
the paper's baselines (the classifier alone; the shared two-head discriminator of eq. 2), and this lab's
extension: a class-conditional BigGAN whose fakes Algorithm 1 (Pham et al. 2019) labels for the classifier."""
import copy
import hashlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import save_image
from tqdm.auto import tqdm

from ..config import ECGANConfig
from ..data import ImageDataset, augment_for, load_dataset, subset, to_float
from ..errors import CheckpointError, ConfigError
from ..models import param_count
from ..runs import Run, rng_state, set_rng_state
from .classifier import _to, evaluate
from .common import (
    EpochSampler, Window, all_finite, autocast, check_finite, divergence, resolve_device, use_channels_last,
)
from .ecgan_phases import biggan_phases, build_models, c_phase, classifier_of, d_phase, g_phase, shared_phase

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
    cfg = config
    if len(labelled.classes) != cfg.num_classes:
        raise ConfigError(f"The labelled set has {len(labelled.classes)} classes, {cfg.dataset} {cfg.num_classes}.")
    run = Run(run_dir)
    run.init(cfg)
    dev = resolve_device(cfg.device)
    amp = autocast(dev, cfg.precision)
    cl = torch.channels_last if use_channels_last(dev, cfg.channels_last) else torch.contiguous_format
    test = load_dataset(cfg.dataset, "test", cfg.data_root)
    fp = fingerprint(labelled)

    # Models, optimisers (weight decay on D and C, not G), and two random streams: data (batches,
    # augmentation) and noise, so "ecgan" and "classifier" see the same real batches in the same order.
    # ecgan-biggan: G and D take the BigGAN preset's Adam settings (no weight decay), and D's `d_steps`
    # real batches per iteration come from a third stream of their own, so that C still sees exactly
    # the real batches of "classifier".
    torch.manual_seed(cfg.seed)
    models = {k: m.to(dev, memory_format=cl).train() for k, m in build_models(cfg).items()}
    big = cfg.biggan_config() if cfg.method == "ecgan-biggan" else None
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
    crop = augment_for(labelled.name) if cfg.augment else None
    per_epoch = len(images) // cfg.batch_size
    total, eval_steps = total_steps(cfg, len(images)), cfg.eval_every
    window, step, best = Window(), 0, {"accuracy": -1.0, "step": 0}

    # Resume: weights, optimisers, step, batch order, RNG states, log window, best accuracy so far.
    if run.has_checkpoint():
        s = run.load_checkpoint()
        if s.get("labelled") != fp:
            raise ConfigError(f"{run.path} was trained on another labelled subset; pass labelled_subset(config).")
        _load_states(models, s["models"], f"{run.checkpoint_path} holds another architecture")
        for k, o in opts.items():
            o.load_state_dict(s["opts"][k])
        gen_data.set_state(s["gen_data"])
        gen_z.set_state(s["gen_z"])
        set_rng_state(s["rng"])
        sampler.load_state_dict(_to(s["sampler"], dev))
        if sampler_d is not None:
            gen_d.set_state(s["gen_d"])
            sampler_d.load_state_dict(_to(s["sampler_d"], dev))
        window.load_state_dict(_to(s["window"], dev))
        step, best = s["step"], s["best"]
    run.truncate_stats(step)

    def checkpoint():
        run.save_checkpoint({
            "step": step, "config": cfg.to_dict(), "labelled": fp, "best": best,
            "models": {k: m.state_dict() for k, m in models.items()},
            "opts": {k: o.state_dict() for k, o in opts.items()},
            "gen_data": gen_data.get_state(), "gen_z": gen_z.get_state(), "rng": rng_state(),
            "sampler": sampler.state_dict(), "window": window.state_dict(),
            **({"gen_d": gen_d.get_state(), "sampler_d": sampler_d.state_dict()} if sampler_d is not None else {}),
        })

    clf, final = classifier_of(cfg, models), None
    # Fixed noise of the sample grids: 64 z (DCGAN); for BigGAN 8 z per class, one row per class (first 10).
    y_fix = torch.arange(min(cfg.num_classes, 10)).repeat_interleave(8).to(dev) if big is not None else None
    z_fix = torch.randn(GRID if big is None else len(y_fix), cfg.z_dim if big is None else big.z_dim,
                        generator=torch.Generator().manual_seed(10_000 + cfg.seed)).to(dev)
    last_ckpt, t_last, steps_timed = step, time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc=f"{cfg.method} {run.path.name}", mininterval=1.0)
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

        # D step, G step, C step, in the paper's order.
        # (bn_stats="real": fakes leave the BN statistics of the evaluated network, C or shared D, unchanged.)
        freeze = cfg.bn_stats == "real"
        if cfg.method == "ecgan":
            out = d_phase(fwd["D"], opts["D"], x, x_fake, amp)
            out |= g_phase(fwd["D"], opts["G"], x_fake, amp)
            out |= c_phase(fwd["C"], opts["C"], x, y, x_fake, cfg.lam, cfg.threshold, cfg.c_steps, amp, freeze)
        elif cfg.method == "ecgan-biggan":
            out = biggan_phases(fwd, models, opts, big, images, labels, sampler_d, gen_z, amp, cl)
            x_fake, y_fake = out.pop("x_fake"), out.pop("y_fake")
            out |= c_phase(fwd["C"], opts["C"], x, y, x_fake, cfg.lam, cfg.threshold, cfg.c_steps, amp, freeze,
                           y_fake=y_fake)
        elif cfg.method == "classifier":
            out = c_phase(fwd["C"], opts["C"], x, y, None, cfg.lam, cfg.threshold, cfg.c_steps, amp)
        else:  # shared-dcgan, shared-resnet, classifier-dcgan
            out = shared_phase(fwd["D"], opts["D"], x, y, x_fake, cfg.lam, cfg.threshold, amp, freeze)
            if x_fake is not None:
                out |= g_phase(fwd["D"], opts["G"], x_fake, amp, freeze)
        step += 1
        steps_timed += 1
        window.add(**out)

        # Log (the window's means: the loop's only host sync), and every eval_every iterations the full test split.
        evaluate_now = step % eval_steps == 0 or step == total
        if step % cfg.log_every == 0 or evaluate_now:
            stats = {"step": step, "epoch": round(step / per_epoch, 4), **window.means()}
            check_finite(stats, step, last_ckpt, run.path)
            now = time.perf_counter()
            stats["sec_per_step"], t_last, steps_timed = (now - t_last) / steps_timed, now, 0
            if evaluate_now:
                final = evaluate(clf, test)
                stats["test_acc"] = final["accuracy"]
                if stats["test_acc"] > best["accuracy"]:
                    best = {"accuracy": stats["test_acc"], "step": step}
                if "G" in models:
                    save_grid(models["G"], z_fix, run.path / "samples" / f"step-{step:07d}.png", y_fix)
                t_last = time.perf_counter()  # evaluation time is not training time
            window.reset()
            run.log(stats)
            bar.set_postfix({k: f"{stats[k]:.3f}" for k in ("loss_d", "loss_g", "loss_c", "test_acc") if k in stats})
            if on_step is not None:
                on_step(step, stats)

        # Checkpoint, only of finite weights: a diverged run keeps its last good checkpoint.
        if step % cfg.ckpt_every == 0 or step == total:
            if not all_finite(*models.values()):
                raise divergence("a weight", step, last_ckpt, run.path)
            checkpoint()
            last_ckpt = step
        bar.update(1)
    bar.close()

    if not run.is_done(total):
        if final is None:  # resumed from the last checkpoint of a run that stopped before done.json
            final = evaluate(clf, test)
            best = max(best, {"accuracy": final["accuracy"], "step": step}, key=lambda b: b["accuracy"])
        run.mark_done({
            "step": step, "epochs": round(step / per_epoch, 4), "method": cfg.method,
            "final_accuracy": final["accuracy"], "best_accuracy": best["accuracy"], "best_step": best["step"],
            "per_class_accuracy": final["per_class_accuracy"], "n_labelled": len(labelled), "labelled": fp,
            **{f"{k}_params": param_count(m) for k, m in models.items()},
        })
    return run


def _load_states(models: dict, states: dict, problem: str) -> None:
    """Load each role's state dict; a missing role or a shape mismatch is one CheckpointError: `problem (why)`."""
    try:
        for k, m in models.items():
            m.load_state_dict(states[k])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{problem} ({str(e).splitlines()[0]}).") from None


@torch.no_grad()
def save_grid(G, z, path, y=None) -> None:
    """A grid of G(z) (or G(z, y)), 8 per row, with batch statistics (as the classifier sees fakes), from a
    copy: G is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    G = copy.deepcopy(G).train()
    x = (G(z) if y is None else G(z, y)).float()
    save_image(x, path, nrow=8, normalize=True, value_range=(-1, 1), padding=1)


def load_ecgan(run_dir, device="cpu") -> tuple[dict, nn.Module]:
    """A run's networks by role ("C", "D", "G") and its evaluated classifier (taking [-1, 1] images), in eval mode."""
    run = Run(run_dir)
    cfg = run.config(ECGANConfig)
    models = build_models(cfg)
    _load_states(models, run.load_checkpoint()["models"], f"{run.checkpoint_path} does not match its config.json")
    models = {k: m.to(device).eval().requires_grad_(False) for k, m in models.items()}
    return models, classifier_of(cfg, models).eval()

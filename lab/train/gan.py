"""BigGAN training: hinge loss, `d_steps` D updates per G update, EMA of G, exact resume."""
import copy
import time
from pathlib import Path

import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from ..config import GANConfig
from ..data import Augment, load_dataset, to_float
from ..errors import CheckpointError
from ..losses import d_hinge, g_hinge
from ..models import build_gan, param_count, size_mb
from ..runs import Run, rng_state, set_rng_state
from .common import (
    EpochSampler, Window, all_finite, autocast, check_finite, divergence, ema_update, resolve_device,
    use_channels_last,
)

GRID_COLS = 10  # fixed-noise grid: one row per class (first 10 classes), this many columns


def fixed_noise(cfg: GANConfig, device) -> tuple:
    """The fixed (z, y) of the run's sample grids: the same batch at every step and on resume."""
    g = torch.Generator().manual_seed(10_000 + cfg.seed)
    rows = min(cfg.num_classes, 10)
    z = torch.randn(rows * GRID_COLS, cfg.z_dim, generator=g)
    y = torch.arange(rows).repeat_interleave(GRID_COLS)
    return z.to(device), y.to(device)


def _load_models(state: dict, G, D, G_ema, path) -> None:
    try:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(
            f"{path} was written by another architecture ({str(e).splitlines()[0]}); "
            f"use a new run directory for this config."
        ) from None


def hinge_d_step(G, D, opt_D, x, y, z, y_fake, amp, memory_format=torch.contiguous_format):
    """One hinge-loss D update on reals (x, y) and fakes G(z, y_fake), both through D in one batch
    (BigGAN-PyTorch). G runs without gradients. Returns (loss_real, loss_fake, D(x), D(G(z)))."""
    B = len(z)
    with torch.no_grad(), amp:
        x_f = G(z, y_fake).to(x.dtype)
    with amp:
        out = D(torch.cat([x_f, x]).contiguous(memory_format=memory_format), torch.cat([y_fake, y]))
    d_fake, d_real = out.float().split([B, len(x)])
    l_real, l_fake = d_hinge(d_real, d_fake)
    opt_D.zero_grad(set_to_none=True)
    (l_real + l_fake).backward()
    opt_D.step()
    return l_real, l_fake, d_real, d_fake


def hinge_g_step(G, D, opt_G, z, y_fake, amp):
    """One hinge-loss G update on G(z, y_fake) (D's weights should be frozen by the caller).
    Returns (loss_g, the fakes), the fakes still attached to G's graph."""
    with amp:
        x_f = G(z, y_fake)
        l_g = g_hinge(D(x_f, y_fake).float())
    opt_G.zero_grad(set_to_none=True)
    l_g.backward()
    opt_G.step()
    return l_g, x_f


def train_gan(config: GANConfig, run_dir, on_step=None) -> Run:
    """Train (or resume, or just return) the GAN run of `config` in `run_dir`.

    Args:
        config: a GANConfig; `config.steps` is the total number of G steps of the run.
        run_dir: the run directory; an existing checkpoint there is resumed exactly.
        on_step: optional `on_step(step, stats)` called at every log line (for live plots).
    Returns:
        The finished `Run`.
    """
    cfg = config
    run = Run(run_dir)
    run.init(cfg)
    dev = resolve_device(cfg.device)
    amp = autocast(dev, cfg.precision)
    cl = torch.channels_last if use_channels_last(dev, cfg.channels_last) else torch.contiguous_format

    # Data: the whole training set as uint8 on the device; batches never leave it.
    ds = load_dataset(cfg.dataset, "train", cfg.data_root)
    images, labels = ds.images.to(dev), ds.targets.to(dev)
    flip = Augment(flip=True, pad=0) if cfg.hflip else None

    # Models, EMA copy, optimisers, the run's own random stream.
    torch.manual_seed(cfg.seed)
    G, D = (m.to(dev, memory_format=cl) for m in build_gan(cfg))
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    adam = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, **adam)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, **adam)
    gen = torch.Generator(dev).manual_seed(cfg.seed)
    sampler = EpochSampler(len(ds), cfg.batch_size, gen)
    window = Window()
    G_fwd, D_fwd = (torch.compile(G), torch.compile(D)) if cfg.compile else (G, D)
    step = 0

    # Resume from the last checkpoint: weights, optimisers, EMA, step, data order, RNG states.
    if run.has_checkpoint():
        s = run.load_checkpoint()
        _load_models(s, G, D, G_ema, run.checkpoint_path)
        opt_G.load_state_dict(s["opt_G"])
        opt_D.load_state_dict(s["opt_D"])
        gen.set_state(s["gen"])
        set_rng_state(s["rng"])
        sampler.load_state_dict({**s["sampler"], "order": s["sampler"]["order"].to(dev)})
        window.load_state_dict({**s["window"], "sums": {k: v.to(dev) for k, v in s["window"]["sums"].items()}})
        step = s["step"]
    run.truncate_stats(step)  # lines logged after the checkpoint are re-logged by this run

    def checkpoint():
        run.save_checkpoint({
            "step": step, "config": cfg.to_dict(), "G": G.state_dict(), "D": D.state_dict(),
            "G_ema": G_ema.state_dict(), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
            "gen": gen.get_state(), "rng": rng_state(), "sampler": sampler.state_dict(),
            "window": window.state_dict(),
        })

    B, C = cfg.batch_size, cfg.num_classes
    z_fix, y_fix = fixed_noise(cfg, dev)
    last_ckpt, t_last, steps_timed = step, time.perf_counter(), 0
    bar = tqdm(total=cfg.steps, initial=step, desc=f"GAN {run.path.name}", mininterval=1.0)
    while step < cfg.steps:
        # D steps: fakes and reals through D in one batch, as BigGAN-PyTorch does.
        G.requires_grad_(False)
        D.requires_grad_(True)
        for _ in range(cfg.d_steps):
            idx = sampler.next()
            x, y = to_float(images[idx]), labels[idx]
            if flip is not None:
                x = flip(x, generator=gen)
            z = torch.randn(B, cfg.z_dim, generator=gen, device=dev)
            y_f = torch.randint(0, C, (B,), generator=gen, device=dev)
            l_real, l_fake, d_real, d_fake = hinge_d_step(G_fwd, D_fwd, opt_D, x, y, z, y_f, amp, cl)

        # G step.
        D.requires_grad_(False)
        G.requires_grad_(True)
        z = torch.randn(B, cfg.z_dim, generator=gen, device=dev)
        y_f = torch.randint(0, C, (B,), generator=gen, device=dev)
        l_g, _ = hinge_g_step(G_fwd, D_fwd, opt_G, z, y_f, amp)
        step += 1
        steps_timed += 1

        # EMA of G: a copy of G until ema_start, an exponential average from then on.
        ema_update(G_ema, G, cfg.ema_decay if step >= cfg.ema_start else 0.0)

        # Log: the window's means, the only host sync of the loop.
        window.add(loss_d_real=l_real, loss_d_fake=l_fake, loss_g=l_g, d_real=d_real.mean(), d_fake=d_fake.mean())
        if step % cfg.log_every == 0 or step == cfg.steps:
            stats = {"step": step, **window.means()}
            check_finite(stats, step, last_ckpt, run.path)
            now = time.perf_counter()
            stats["sec_per_step"] = (now - t_last) / steps_timed
            t_last, steps_timed = now, 0
            window.reset()
            run.log(stats)
            bar.set_postfix(d=f"{stats['loss_d_real'] + stats['loss_d_fake']:.3f}", g=f"{stats['loss_g']:.3f}")
            if on_step is not None:
                on_step(step, stats)

        # Checkpoint, only of finite weights: a diverged run keeps its last good checkpoint.
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            check_finite({"step": step, **window.means()}, step, last_ckpt, run.path)
            if not all_finite(G, D):
                raise divergence("a weight of G or D", step, last_ckpt, run.path)
            checkpoint()
            last_ckpt = step

        # Sample grid of the fixed noise through the EMA generator.
        if step % cfg.grid_every == 0 or step == cfg.steps:
            save_grid(G_ema, z_fix, y_fix, run.path / "samples" / f"step-{step:07d}.png")
        bar.update(1)
    bar.close()

    if not run.is_done(cfg.steps):
        last = run.stats()[-1] if run.stats() else {}
        run.mark_done({
            "step": step, "G_params": param_count(G), "D_params": param_count(D),
            "G_MB": size_mb(G), "D_MB": size_mb(D), "last": last,
        })
    return run


@torch.no_grad()
def save_grid(G, z, y, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = G.training
    x = G.eval()(z, y).float()
    G.train(was_training)
    save_image(x, path, nrow=GRID_COLS, normalize=True, value_range=(-1, 1), padding=1)


def load_generator(run_dir, ema: bool = True, device="cpu") -> torch.nn.Module:
    """The trained generator of a GAN run (its EMA copy by default), in eval mode."""
    run = Run(run_dir)
    cfg = run.config(GANConfig)
    state = run.load_checkpoint()
    G, _ = build_gan(cfg)
    try:
        G.load_state_dict(state["G_ema" if ema else "G"])
    except RuntimeError as e:
        raise CheckpointError(f"{run.checkpoint_path} does not match its config.json ({str(e).splitlines()[0]}).") from None
    return G.to(device).eval().requires_grad_(False)

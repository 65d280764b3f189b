"""BigGAN training: hinge loss, `d_steps` D updates per G update, EMA of G, exact resume."""
import copy

import torch

from ..config import GANConfig
from ..augment import Augment
from ..data import load_dataset, to_float
from ..losses import d_hinge, g_hinge
from ..models import build_gan, param_count, size_mb
from ..runs import Run, locked
from .common import EpochSampler, all_finite, divergence, ema_update
from .loop import (LogWindow, Runtime, fixed_noise, load_models, model_states, restore, save_checkpoint,
                   save_grid)


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


@locked
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
    rt = Runtime.for_run(cfg, run)
    dev, amp = rt.device, rt.amp  # the memory format: rt.layout_for(the models), below

    # Data: the whole training set as uint8 on the device; batches never leave it.
    ds = load_dataset(cfg.dataset, "train", cfg.data_root)
    images, labels = ds.images.to(dev), ds.targets.to(dev)
    flip = Augment(flip=True, pad=0) if cfg.hflip else None

    # Models, EMA copy, optimisers, the run's own random stream.
    torch.manual_seed(cfg.seed)
    G, D = build_gan(cfg)
    cl = rt.layout_for(G, D)
    G, D = G.to(dev, memory_format=cl), D.to(dev, memory_format=cl)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    adam = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, **adam)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, **adam)
    gen = torch.Generator(dev).manual_seed(cfg.seed)
    sampler = EpochSampler(len(ds), cfg.batch_size, gen)
    G_fwd, D_fwd = (torch.compile(G), torch.compile(D)) if cfg.compile else (G, D)
    state = dict(models={"G": G, "D": D, "G_ema": G_ema}, opts={"G": opt_G, "D": opt_D}, rngs={"gen": gen},
                 samplers={"data": sampler})

    # Resume from the last checkpoint: weights, optimisers, EMA, step, data order, RNG states, log window.
    step, extra = restore(run, dev, **state)
    run.truncate_stats(step)  # lines logged after the checkpoint are re-logged by this run
    log = LogWindow(run, cfg.steps, step, cfg.log_every, f"GAN {run.path.name}", on_step=on_step,
                    postfix=lambda s: {"d": f"{s['loss_d_real'] + s['loss_d_fake']:.3f}", "g": f"{s['loss_g']:.3f}"})
    if extra:
        log.load_state_dict(extra["window"])

    B, C = cfg.batch_size, cfg.num_classes
    z_fix, y_fix = fixed_noise(cfg.z_dim, cfg.seed, dev, cfg.num_classes)
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

        # EMA of G: a copy of G until ema_start, an exponential average from then on.
        ema_update(G_ema, G, cfg.ema_decay if step >= cfg.ema_start else 0.0)

        # Log: the window's means, the only host sync of the loop.
        log.add(loss_d_real=l_real, loss_d_fake=l_fake, loss_g=l_g, d_real=d_real.mean(), d_fake=d_fake.mean())
        if log.due(step):
            log.log(step)

        # Checkpoint, only of finite weights: a diverged run keeps its last good checkpoint.
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            log.check(step)
            if not all_finite(G, D):
                raise divergence("a weight of G or D", step, log.last_good, run.path)
            save_checkpoint(run, step, cfg, **state, extra={"window": log.state_dict()})
            log.checkpointed(step)

        # Sample grid of the fixed noise through the EMA generator.
        if step % cfg.grid_every == 0 or step == cfg.steps:
            save_grid(G_ema, z_fix, run.path / "samples" / f"step-{step:07d}.png", y_fix)
        log.update()
    log.close()

    if not run.is_done(cfg.steps):
        last = run.stats()[-1] if run.stats() else {}
        run.mark_done({
            "step": step, "G_params": param_count(G), "D_params": param_count(D),
            "G_MB": size_mb(G), "D_MB": size_mb(D), "last": last,
        })
    return run


def load_generator(run_dir, ema: bool = True, device="cpu") -> torch.nn.Module:
    """The trained generator of a GAN run (its EMA copy by default), in eval mode."""
    run = Run(run_dir)
    cfg = run.config(GANConfig)
    G, _ = build_gan(cfg)
    role = "G_ema" if ema else "G"
    load_models({role: G}, model_states(run, role), f"{run.path} holds weights that do not match its config.json")
    return G.to(device).eval().requires_grad_(False)

"""EC-GAN's networks and the phases of one iteration (Haque 2021): D, G and C steps, each stepping only its
own network's optimiser; the shared two-head discriminator's step (eq. 2); and the BigGAN phases of this
lab's extension (method "ecgan-biggan"). The loop that runs them is `lab.train.ecgan.train_ecgan`."""
import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ECGANConfig
from ..data import to_float
from ..losses import d_bce, ecgan_classifier_loss, filtered_pseudo_label_loss, g_bce, shared_d_loss
from ..models import (
    ClassHead, DCGANDiscriminator, DCGANGenerator, ResNet18, SharedDCGANDiscriminator, SharedResNetDiscriminator,
    build_gan,
)
from ..algorithm1 import accept
from ..presets import biggan_config
from .gan import hinge_d_step, hinge_g_step


# --- Models -------------------------------------------------------------------------------
class ZeroOneInput(nn.Module):
    """Feeds a model real images in [0, 1] (the notebook's ToTensor) when callers hand it [-1, 1] (`evaluate`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x + 1) / 2)


def build_models(cfg: ECGANConfig) -> dict:
    """The method's networks by role: "C" (external ResNet-18), "D" (discriminator, or the shared two-head D),
    "G". Built in that order from the current RNG, so "ecgan", "ecgan-biggan" and "classifier" start from the
    same C, and "shared-dcgan" and "classifier-dcgan" from the same D."""
    K, m = cfg.num_classes, cfg.method
    models = {}
    if m in ("ecgan", "classifier", "ecgan-biggan"):
        models["C"] = ResNet18(K, cfg.classifier_width)
    if m in ("shared-dcgan", "classifier-dcgan"):
        models["D"] = SharedDCGANDiscriminator(K, cfg.ndf, cfg.d_first_bn, cfg.dcgan_init, cfg.resolution)
    elif m == "shared-resnet":
        models["D"] = SharedResNetDiscriminator(K, cfg.classifier_width)
    if m == "ecgan-biggan":
        models["G"], models["D"] = build_gan(biggan_config(cfg))
    elif cfg.uses_gan:
        models["G"] = DCGANGenerator(cfg.z_dim, cfg.ngf, cfg.dcgan_init, cfg.resolution)
    if m == "ecgan":
        models["D"] = DCGANDiscriminator(cfg.ndf, cfg.d_first_bn, cfg.dcgan_init, cfg.resolution)
    return models


def classifier_of(cfg: ECGANConfig, models: dict) -> nn.Module:
    """The network whose test accuracy the method reports, taking images in [-1, 1]."""
    clf = models["C"] if "C" in models else ClassHead(models["D"])
    return ZeroOneInput(clf) if cfg.real_range == "[0,1]" else clf


# --- Phases (each steps only its own network's optimiser) -----------------------------------
@contextlib.contextmanager
def bn_stats_frozen(module: nn.Module, frozen: bool = True):
    """Inside, forward passes in train mode still normalise with batch statistics, but BN running
    statistics (what the network uses at test time) come out unchanged (`bn_stats="real"` for fakes).
    Swapping buffers makes torch.compile re-guard; with compile=True prefer bn_stats="all"."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if frozen else []
    saved = [dict(m.named_buffers(recurse=False)) for m in bns]
    for m, bufs in zip(bns, saved):  # the forward updates copies (autograd keeps them; no in-place restore)
        for k, b in bufs.items():
            setattr(m, k, b.clone())
    try:
        yield
    finally:
        for m, bufs in zip(bns, saved):
            for k, b in bufs.items():
                setattr(m, k, b)


def _step(opt, loss) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def d_phase(D, opt_D, x, x_fake, amp) -> dict:
    """EC-GAN eq. 3: BCE(D(x), 1) + BCE(D(G(z)), 0), fakes detached (G is not updated here)."""
    D.requires_grad_(True)
    with amp:
        d_real, d_fake = D(x).float(), D(x_fake.detach()).float()
    l_real, l_fake = d_bce(d_real, d_fake)
    _step(opt_D, l_real + l_fake)
    return {"loss_d": l_real + l_fake, "d_real": d_real.sigmoid().mean(), "d_fake": d_fake.sigmoid().mean()}


def g_phase(D, opt_G, x_fake, amp, freeze_bn: bool = False) -> dict:
    """EC-GAN eq. 4: BCE(D(G(z)), 1) through D's real/fake logit; D's weights are frozen for it."""
    D.requires_grad_(False)
    with amp, bn_stats_frozen(D, freeze_bn):
        out = D(x_fake)
    l_g = g_bce((out[0] if isinstance(out, tuple) else out).float())
    _step(opt_G, l_g)
    D.requires_grad_(True)
    return {"loss_g": l_g}


def c_phase(C, opt_C, x, y, x_fake, lam: float, threshold: float, c_steps: int, amp, freeze_bn: bool = False,
            y_fake=None, rule=None) -> dict:
    """EC-GAN eq. 5 on real x and (detached, so C's loss never reaches G) fakes; `x_fake` None: CE on x only.

    c_steps=2 is the notebook's variant: a step on CE(C(x), y), then one on the pseudo-label term.
    freeze_bn: fakes leave C's BN running statistics unchanged (`bn_stats="real"`).
    y_fake: the fakes' conditioning classes (ecgan-biggan): the pseudo-labels are those Algorithm 1 accepts
    with C as its classifier, instead of C's confident argmax.
    rule: a class-adaptive threshold rule (`lab.thresholds`) that decides which fakes count; None: the fixed t.
    """
    with amp:
        logits = C(x).float()
    out = {"train_acc": (logits.argmax(1) == y).float().mean() * 100}
    if x_fake is None:
        loss = F.cross_entropy(logits, y)
        _step(opt_C, loss)
        return {"loss_c": loss, **out}
    x_fake = x_fake.detach()
    if c_steps == 2:
        _step(opt_C, F.cross_entropy(logits, y))
        logits = logits.detach()  # its CE is a constant of the second step's loss: the gradient is the λ term's
    with amp, bn_stats_frozen(C, freeze_bn):
        logits_fake = C(x_fake).float()
    keep = None
    if rule is not None:
        probs = logits_fake.detach().softmax(1)
        keep = rule.pseudo_labels(probs)[0] if y_fake is None else rule.judge(probs, y_fake)[0]
    if y_fake is None:
        loss = ecgan_classifier_loss(logits, y, logits_fake, lam, threshold, keep)
        kept = (logits_fake.detach().softmax(1).amax(1) > threshold if keep is None else keep).float().mean()
    else:
        loss = filtered_pseudo_label_loss(logits, y, logits_fake, y_fake, lam, threshold, keep)
        kept = (accept(logits_fake.detach().softmax(1), y_fake, threshold) if keep is None else keep).float().mean()
    _step(opt_C, loss)
    return {"loss_c": loss, "kept": kept, **out}


def shared_phase(D, opt_D, x, y, x_fake, lam: float, threshold: float, amp, freeze_bn: bool = False) -> dict:
    """The shared discriminator's step on eq. 2 (`x_fake` None: its class head trained alone)."""
    D.requires_grad_(True)
    with amp:
        rf_real, cls_real = (t.float() for t in D(x))
    rf_fake = cls_fake = None
    if x_fake is not None:
        with amp, bn_stats_frozen(D, freeze_bn):
            rf_fake, cls_fake = (t.float() for t in D(x_fake.detach()))
    loss = shared_d_loss(rf_real, cls_real, y, rf_fake, lam)
    _step(opt_D, loss)
    out = {"loss_d": loss, "train_acc": (cls_real.argmax(1) == y).float().mean() * 100}
    if x_fake is not None:  # logged only: the class head's confidence on fakes
        out.update(kept=(cls_fake.detach().softmax(1).amax(1) > threshold).float().mean(),
                   d_real=rf_real.sigmoid().mean(), d_fake=rf_fake.sigmoid().mean())
    return out


def biggan_phases(fwd, models, opts, big, images, labels, sampler_d, gen_z, amp, cl) -> dict:
    """ecgan-biggan's GAN part of one iteration: `big.d_steps` hinge D steps (reals from `sampler_d`,
    fakes of uniformly drawn classes), then one hinge G step, whose fakes (x_fake, y_fake) the C step uses.
    d_real and d_fake are D's raw outputs (hinge), not probabilities as in the DCGAN phases."""
    G, D, B, K = fwd["G"], fwd["D"], big.batch_size, big.num_classes
    models["G"].requires_grad_(False)
    for _ in range(big.d_steps):
        idx = sampler_d.next()
        z = torch.randn(B, big.z_dim, generator=gen_z, device=gen_z.device)
        y_f = torch.randint(0, K, (B,), generator=gen_z, device=gen_z.device)
        l_real, l_fake, d_real, d_fake = hinge_d_step(G, D, opts["D"], to_float(images[idx]), labels[idx], z, y_f,
                                                      amp, cl)
    models["D"].requires_grad_(False)
    models["G"].requires_grad_(True)
    z = torch.randn(B, big.z_dim, generator=gen_z, device=gen_z.device)
    y_fake = torch.randint(0, K, (B,), generator=gen_z, device=gen_z.device)
    l_g, x_fake = hinge_g_step(G, D, opts["G"], z, y_fake, amp)
    models["D"].requires_grad_(True)
    return {"loss_d": l_real + l_fake, "d_real": d_real.mean(), "d_fake": d_fake.mean(), "loss_g": l_g,
            "x_fake": x_fake.float().contiguous(memory_format=cl), "y_fake": y_fake}


# --- One iteration of each method ----------------------------------------------------------
@dataclass
class Iteration:
    """What the methods' steps need besides the batch (built once by the loop)."""

    cfg: ECGANConfig
    models: dict  # role -> module
    fwd: dict  # role -> module or its torch.compile
    opts: dict  # role -> optimiser
    big: object  # ecgan-biggan: the BigGAN's GANConfig, else None
    amp: object
    cl: torch.memory_format
    images: torch.Tensor  # the labelled set on the device (ecgan-biggan's D draws its own batches)
    labels: torch.Tensor
    sampler_d: object  # ecgan-biggan: D's batch sampler
    gen_z: torch.Generator
    freeze: bool  # bn_stats="real": fakes leave the evaluated network's BN statistics unchanged
    rule: object = None  # threshold_mode other than "fixed": its rule (lab.thresholds), with its state


def ecgan_step(it: Iteration, x, y, x_fake) -> dict:
    """EC-GAN: D step, G step, C step on the real batch and the pseudo-labelled fakes (eqs. 3-5)."""
    c = it.cfg
    out = d_phase(it.fwd["D"], it.opts["D"], x, x_fake, it.amp)
    out |= g_phase(it.fwd["D"], it.opts["G"], x_fake, it.amp)
    return out | c_phase(it.fwd["C"], it.opts["C"], x, y, x_fake, c.lam, c.threshold, c.c_steps, it.amp, it.freeze,
                         rule=it.rule)


def ecgan_biggan_step(it: Iteration, x, y, x_fake=None) -> dict:
    """This lab's EC-GAN with BigGAN: its D and G steps, then C on the fakes Algorithm 1 accepts."""
    c = it.cfg
    out = biggan_phases(it.fwd, it.models, it.opts, it.big, it.images, it.labels, it.sampler_d, it.gen_z, it.amp, it.cl)
    x_fake, y_fake = out.pop("x_fake"), out.pop("y_fake")
    return out | c_phase(it.fwd["C"], it.opts["C"], x, y, x_fake, c.lam, c.threshold, c.c_steps, it.amp, it.freeze,
                         y_fake=y_fake, rule=it.rule)


def classifier_step(it: Iteration, x, y, x_fake=None) -> dict:
    """The classifier alone on the real batch."""
    c = it.cfg
    return c_phase(it.fwd["C"], it.opts["C"], x, y, None, c.lam, c.threshold, c.c_steps, it.amp)


def shared_step(it: Iteration, x, y, x_fake) -> dict:
    """The shared discriminator (eq. 2), then G against its real/fake head; without fakes its class head alone."""
    out = shared_phase(it.fwd["D"], it.opts["D"], x, y, x_fake, it.cfg.lam, it.cfg.threshold, it.amp, it.freeze)
    if x_fake is not None:
        out |= g_phase(it.fwd["D"], it.opts["G"], x_fake, it.amp, it.freeze)
    return out


# ECGANConfig.method -> its iteration (after the real batch and, for the DCGAN methods, the fakes are drawn)
METHOD_STEPS = {"ecgan": ecgan_step, "ecgan-biggan": ecgan_biggan_step, "classifier": classifier_step,
                "shared-dcgan": shared_step, "shared-resnet": shared_step, "classifier-dcgan": shared_step}

"""GAN and classifier losses, each a small function with the paper it comes from."""
import torch
import torch.nn.functional as F


def d_hinge(d_real: torch.Tensor, d_fake: torch.Tensor):
    """Hinge loss of D (Lim & Ye 2017; SN-GAN, BigGAN): E[relu(1 - D(x))], E[relu(1 + D(G(z)))].

    Returns the real and fake halves separately so both can be logged; D minimises their sum.
    """
    return F.relu(1.0 - d_real).mean(), F.relu(1.0 + d_fake).mean()


def g_hinge(d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of G (BigGAN): -E[D(G(z))]."""
    return -d_fake.mean()


def d_bce(d_real: torch.Tensor, d_fake: torch.Tensor):
    """DCGAN / EC-GAN eq. 3 on logits: BCE(D(x), 1) and BCE(D(G(z)), 0), returned separately."""
    real = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
    fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real, fake


def g_bce(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss (DCGAN / EC-GAN eq. 4) on logits: BCE(D(G(z)), 1)."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def ecgan_classifier_loss(logits_real, y_real, logits_fake, lam: float, threshold: float, keep=None) -> torch.Tensor:
    """EC-GAN eq. 5: CE(C(x), y) + lam * CE(C(G(z)), argmax C(G(z))) over confident fakes only.

    A generated sample counts iff its max softmax probability is strictly above `threshold` (or where `keep`,
    a class-adaptive rule's mask, says so); the generated term is the mean over the counted samples (as the
    official code averages), 0 if none.
    """
    real = F.cross_entropy(logits_real, y_real)
    probs = logits_fake.detach().softmax(dim=1, dtype=torch.promote_types(logits_fake.dtype, torch.float32))
    conf, pseudo = probs.max(dim=1)
    keep = conf > threshold if keep is None else keep
    ce = F.cross_entropy(logits_fake, pseudo, reduction="none")
    fake = (ce * keep).sum() / keep.sum().clamp(min=1)  # no host sync: 0 when nothing is kept
    return real + lam * fake


def filtered_pseudo_label_loss(logits_real, y_real, logits_fake, y_fake, lam: float, threshold: float,
                               keep=None) -> torch.Tensor:
    """EC-GAN's classifier loss with Algorithm 1 (Pham et al. 2019) as the pseudo-label source (this lab's
    extension, method "ecgan-biggan"): CE(C(x), y) + lam * CE(C(G(z, y_c)), y_c) over the accepted fakes.

    A fake generated for class y_c is accepted iff C's argmax is y_c and C's probability of y_c is strictly
    above `threshold` (`lab.algorithm1.accept`); its label is y_c. The generated term is the mean over the
    accepted fakes, 0 if none (as `ecgan_classifier_loss`).
    """
    from .algorithm1 import accept

    real = F.cross_entropy(logits_real, y_real)
    probs = logits_fake.detach().softmax(dim=1, dtype=torch.promote_types(logits_fake.dtype, torch.float32))
    keep = accept(probs, y_fake, threshold) if keep is None else keep
    ce = F.cross_entropy(logits_fake, y_fake, reduction="none")
    fake = (ce * keep).sum() / keep.sum().clamp(min=1)
    return real + lam * fake


def shared_d_loss(rf_real, cls_real, y, rf_fake, lam: float) -> torch.Tensor:
    """EC-GAN eq. 2 (the shared-discriminator baseline, after Salimans et al. 2016):
    λ·[BCE(D_d(x), 1) + BCE(D_d(G(z)), 0)] + CE(D_c(x), y); `rf_fake` None: the CE term alone."""
    ce = F.cross_entropy(cls_real, y)
    if rf_fake is None:
        return ce
    l_real, l_fake = d_bce(rf_real, rf_fake)
    return lam * (l_real + l_fake) + ce

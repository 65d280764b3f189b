"""Class-adaptive thresholds for Algorithm 1's filter and EC-GAN's pseudo-labels, beside the papers' fixed one.

Both papers use one threshold t for every class; a class the filter knows least (Fashion-MNIST's shirts) is
then accepted almost never. Semi-supervised learning met the same problem with class-wise thresholds that
follow each class's learning status; the rules here are written from their papers' definitions, adapted to a
stream of fresh generated samples (a stream has no fixed unlabelled set, so FlexMatch counts over a window of
recent draws):

* `fixed`: the paper's rule, unchanged (Algorithm 1: argmax = y and p[y] > t; EC-GAN: max p > t).
* `quantile` (Algorithm 1 only): per class, the t-quantile of the p[y] of that class's last `window` draws is the
  class's threshold, so every class is accepted at about the same rate, 1 - t.
* `freematch` (FreeMatch's self-adaptive thresholds, ICLR 2023): an EMA of the mean top confidence sets a global
  level tau, an EMA of the mean probability vector p~ scales it per class: threshold(c) = tau * p~(c) / max p~.
  Both start at 1/C and are updated with each batch before it is judged; t is not used.
* `flexmatch` (FlexMatch's curriculum pseudo-labelling, NeurIPS 2021): sigma(c) counts the last `window`
  draws predicted as c with max p >= t; beta(c) = sigma(c) / max(max sigma, #unused) (warm-up: the unused draws
  count while they outnumber every class), threshold(c) = t * beta(c) / (2 - beta(c)). The counts of the draws
  before a batch judge it; while the window holds one value only (at the start: all unused) beta stays 0.

For Algorithm 1 a sample of conditioning class y is kept iff the filter's argmax is y and p[y] reaches the
class's threshold (strictly above it for `fixed`, as the paper; at or above for the adaptive rules, as theirs);
for EC-GAN a fake is pseudo-labelled argmax p iff max p reaches the threshold of that class. Each rule's state
(EMAs, windows) is in `state_dict`, so a run resumes exactly.
"""
import torch

from .config import THRESHOLD_MODES as MODES


class Rule:
    """A threshold rule over C classes; `judge` (Algorithm 1) or `pseudo_labels` (EC-GAN) update its state."""

    mode = "fixed"

    def __init__(self, num_classes: int, t: float, device=None):
        self.C, self.t, self.device = num_classes, t, torch.device(device or "cpu")

    def thresholds(self) -> torch.Tensor:
        """The current per-class thresholds (C,), float64 on the CPU."""
        return torch.full((self.C,), float(self.t), dtype=torch.float64)

    def _level(self, probs: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        """The threshold each sample must reach (B,), the state updated as the rule says."""
        return torch.full(cls.shape, float(self.t), dtype=probs.dtype, device=probs.device)

    def _passes(self, p: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return p >= level

    def judge(self, probs: torch.Tensor, y: torch.Tensor):
        """Algorithm 1 with this rule: (keep, wrong_class) masks (B,) for samples of conditioning classes `y`."""
        y = y.to(probs.device)
        right = probs.argmax(dim=1) == y  # ties: the first maximal index
        p_y = probs.gather(1, y[:, None]).squeeze(1)
        return right & self._passes(p_y, self._level(probs, y)), ~right

    def pseudo_labels(self, probs: torch.Tensor):
        """EC-GAN with this rule: (mask, labels) of the fakes whose top probability reaches its class's threshold."""
        top, cls = probs.max(dim=1)
        return self._passes(top, self._level(probs, cls)), cls

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Fixed(Rule):
    """The papers' rule: one threshold t, strictly exceeded."""

    def _passes(self, p, level):
        return p > level


class Quantile(Rule):
    """Per class, the t-quantile of p[y] over the class's last `window` draws (this batch's included)."""

    mode = "quantile"

    def __init__(self, num_classes: int, t: float, device=None, window: int = 1000):
        super().__init__(num_classes, t, device)
        self.window = window
        self.recent = [torch.empty(0, dtype=torch.float64) for _ in range(num_classes)]  # on the CPU
        self.levels = torch.full((num_classes,), float(t), dtype=torch.float64)

    def thresholds(self):
        return self.levels.clone()

    def _level(self, probs, cls):
        p = probs.gather(1, cls[:, None]).squeeze(1).double().cpu()
        c_host = cls.cpu()
        for c in torch.unique(c_host).tolist():
            self.recent[c] = torch.cat([self.recent[c], p[c_host == c]])[-self.window:]
            self.levels[c] = torch.quantile(self.recent[c], self.t)
        return self.levels.to(probs.device, probs.dtype)[cls]

    def pseudo_labels(self, probs):
        raise ValueError("the quantile rule is defined for Algorithm 1's filter (a conditioning class), not for EC-GAN")

    def state_dict(self):
        return {"recent": [r.clone() for r in self.recent], "levels": self.levels.clone()}

    def load_state_dict(self, state):
        self.recent = [r.cpu().double() for r in state["recent"]]
        self.levels = state["levels"].cpu().double()


class FreeMatch(Rule):
    """Self-adaptive thresholds: tau <- m tau + (1 - m) mean(max p); p~ <- m p~ + (1 - m) mean(p); both from 1/C."""

    mode = "freematch"

    def __init__(self, num_classes: int, t: float = None, device=None, momentum: float = 0.999):
        super().__init__(num_classes, t, device)
        self.m = momentum
        self.tau = torch.tensor(1.0 / num_classes, dtype=torch.float64)
        self.p_tilde = torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)

    def thresholds(self):
        return self.tau * self.p_tilde / self.p_tilde.max()

    def _level(self, probs, cls):
        p = probs.detach().double().cpu()
        self.tau = self.m * self.tau + (1 - self.m) * p.max(dim=1).values.mean()
        self.p_tilde = self.m * self.p_tilde + (1 - self.m) * p.mean(dim=0)
        return self.thresholds().to(probs.device, probs.dtype)[cls]

    def state_dict(self):
        return {"tau": self.tau.clone(), "p_tilde": self.p_tilde.clone()}

    def load_state_dict(self, state):
        self.tau, self.p_tilde = state["tau"].cpu().double(), state["p_tilde"].cpu().double()


class FlexMatch(Rule):
    """Curriculum thresholds t * M(beta(c)), M(x) = x / (2 - x), beta from the last `window` draws' confident
    predictions (with the warm-up of the unused draws)."""

    mode = "flexmatch"

    def __init__(self, num_classes: int, t: float, device=None, window: int = 10_000, warmup: bool = True):
        super().__init__(num_classes, t, device)
        self.window, self.warmup = window, warmup
        self.selected = torch.full((window,), -1, dtype=torch.int64)  # the last draws' confident class, or -1
        self.pos = 0
        self.beta = torch.zeros(num_classes, dtype=torch.float64)

    def thresholds(self):
        return self.t * self.beta / (2 - self.beta)

    def _level(self, probs, cls):
        level = self.thresholds().to(probs.device, probs.dtype)[cls]  # the draws before this batch judge it
        top, arg = probs.detach().max(dim=1)
        new = torch.where(top >= self.t, arg, torch.full_like(arg, -1)).cpu()[-self.window:]
        idx = (self.pos + torch.arange(len(new))) % self.window
        self.selected[idx] = new
        self.pos = int((self.pos + len(new)) % self.window)
        self._update_beta()
        return level

    def _update_beta(self):
        counts = torch.bincount(self.selected + 1, minlength=self.C + 1).double()  # [unused, class 0, ...]
        unused, sigma = counts[0], counts[1:]
        if counts.max() >= self.window:  # one value fills the window: beta as it was
            return
        denom = max(sigma.max(), unused) if self.warmup else sigma.max()
        self.beta = sigma / denom if denom > 0 else torch.zeros_like(sigma)

    def state_dict(self):
        return {"selected": self.selected.clone(), "pos": self.pos, "beta": self.beta.clone()}

    def load_state_dict(self, state):
        self.selected, self.pos, self.beta = state["selected"].cpu(), int(state["pos"]), state["beta"].cpu().double()


RULES = {r.mode: r for r in (Fixed, Quantile, FreeMatch, FlexMatch)}


def rule(mode: str, num_classes: int, t: float, device=None) -> Rule:
    """The threshold rule `mode` ("fixed", "quantile", "freematch", "flexmatch") over `num_classes` at base t."""
    if mode not in RULES:
        from .errors import ConfigError

        raise ConfigError(f"Unknown threshold mode {mode!r}; choose one of: {', '.join(MODES)}.")
    return RULES[mode](num_classes, t, device)

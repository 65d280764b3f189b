"""The notebooks' parameters, checked before anything runs: a bad value is one ConfigError that names the
notebook parameter (e.g. THRESHOLD), not only the config field it ends up in."""
import math

from .config import DATASET_CLASSES
from .errors import ConfigError
from .profiles import PROFILES


def _number(x, lo=None, hi=None, integer=False) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (integer and not isinstance(x, int)):
        return False
    return math.isfinite(x) and (lo is None or x >= lo) and (hi is None or x <= hi)


def _unit(x) -> bool:  # a threshold, λ or t in [0, 1]
    return _number(x, 0, 1)


def _seeds(x) -> bool:
    return isinstance(x, (tuple, list)) and len(x) > 0 and all(_number(s, 0, integer=True) for s in x)


def _counts(x) -> bool:
    return isinstance(x, (tuple, list)) and len(x) > 0 and all(_number(s, 1, integer=True) for s in x)


def _optional(check):
    return lambda x: x is None or check(x)


def _or_profile(check):  # "profile": the profile's headline value (from_profile)
    return lambda x: x == "profile" or check(x)


# parameter -> (its check, what it must be)
RULES = {
    "PROFILE": (lambda x: x in PROFILES, f"one of {', '.join(map(repr, PROFILES))}"),
    "DATASET": (_optional(lambda x: x in DATASET_CLASSES), f"None or one of {', '.join(map(repr, DATASET_CLASSES))}"),
    "BLOCK": (lambda x: x in ("add", "concat"), "'add' or 'concat'"),
    "SEED": (lambda x: _number(x, 0, integer=True), "an integer >= 0"),
    "STEPS": (_optional(lambda x: _number(x, 1, integer=True)), "None or an integer >= 1"),
    "THRESHOLD": (_or_profile(_optional(_unit)), "'profile', None (unfiltered) or a number in [0, 1]"),
    "T": (_or_profile(_unit), "'profile' or a number in [0, 1]"),
    "LAMBDA": (_or_profile(lambda x: _number(x, 0)), "'profile' or a number >= 0"),
    "CLASSIFIER_SEEDS": (_optional(_seeds), "None or a non-empty tuple of integers >= 0"),
    "SEEDS": (_optional(_seeds), "None or a non-empty tuple of integers >= 0"),
    "BIGGAN_SEEDS": (_optional(_seeds), "None or a non-empty tuple of integers >= 0"),
    "GAN_COUNTS": (_optional(_counts), "None or a non-empty tuple of integers >= 1"),
    "GAN_COUNT": (_optional(lambda x: _number(x, 1, integer=True)), "None or an integer >= 1"),
    "FRACTIONS": (_optional(lambda x: isinstance(x, (tuple, list)) and len(x) > 0
                            and all(_number(f, 0, 1) and f > 0 for f in x)), "None or a tuple of numbers in (0, 1]"),
    "SWEEP": (_optional(lambda x: isinstance(x, (tuple, list)) and all(t is None or _unit(t) for t in x)),
              "None or a tuple of thresholds in [0, 1] (None: unfiltered)"),
    "LAMBDA_SWEEP": (_optional(lambda x: isinstance(x, (tuple, list)) and all(_number(v, 0) for v in x)),
                     "None or a tuple of numbers >= 0"),
    "T_SWEEP": (_optional(lambda x: isinstance(x, (tuple, list)) and all(_unit(v) for v in x)),
                "None or a tuple of numbers in [0, 1]"),
    "N_FID": (_optional(lambda x: _number(x, 0, integer=True)), "None or an integer >= 0"),
    "N_METRICS": (_optional(lambda x: _number(x, 1, integer=True)), "None or an integer >= 1"),
    "N_SYNTH": (_optional(lambda x: _number(x, 1, integer=True)), "None or an integer >= 1"),
    "N_QUERIES": (_optional(lambda x: _number(x, 1, integer=True)), "None or an integer >= 1"),
    "POOL_PER_CLASS": (_optional(lambda x: _number(x, 1, integer=True)), "None or an integer >= 1"),
    "FORMAT": (lambda x: x in ("png", "npz"), "'png' or 'npz'"),
    "BACKEND": (lambda x: x in ("local", "ray"), "'local' or 'ray'"),
    "TRAIN": (_or_profile(lambda x: isinstance(x, bool)), "'profile', True or False"),
}


def check(namespace: dict) -> None:
    """Check every known notebook parameter present in `namespace` (a notebook passes `globals()`)."""
    for name, (ok, what) in RULES.items():
        if name in namespace and not ok(namespace[name]):
            raise ConfigError(f"The notebook parameter {name} must be {what}, got {namespace[name]!r}.")


def from_profile(profile: str, field: str, value):
    """`value`, or the profile's `field` (e.g. "threshold": its headline Algorithm 1 threshold) where `value` is
    "profile": a notebook's headline constants are written once, in lab.profiles."""
    return getattr(PROFILES[profile], field) if value == "profile" else value

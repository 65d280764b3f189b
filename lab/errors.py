"""Exceptions a user can cause; each message is one actionable sentence."""


class LabError(Exception):
    """Base class of every error `lab` raises on purpose."""


class ConfigError(LabError, ValueError):
    """A config has an unknown key, a value of the wrong type, or a value out of range."""


class DataNotFoundError(LabError, FileNotFoundError):
    """A dataset is missing on disk and could not be downloaded."""


class DataCorruptError(LabError):
    """A dataset's files are on disk but damaged (a checksum or format failure): not missing."""


class CheckpointError(LabError):
    """A checkpoint is missing, truncated, unsafe, or from another architecture."""


class DivergenceError(LabError, FloatingPointError):
    """A training loss became NaN or infinite."""


class WeightsNotFoundError(LabError, FileNotFoundError):
    """Pretrained weights (the FID Inception network) are missing and could not be downloaded."""


class CardError(LabError):
    """A generator card is missing, tampered with, of another architecture or format, or not a card at all."""


class RunFileError(LabError):
    """A file of a run directory (config.json, done.json, stats.jsonl, runtime.json) is damaged."""


class NotInStore(LabError):
    """Training is off (a notebook's TRAIN = False) and a run or a GAN set's metrics is not in the run store;
    `what` names it."""

    def __init__(self, what: str, root):
        super().__init__(f"{what} is not in the run store {root}, and training is off (TRAIN = False): `python -m lab "
                         f"study` adds the study's runs to its ledger (then run the notebook again), or TRAIN = True "
                         f"computes it here.")
        self.what = what

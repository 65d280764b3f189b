"""Share a generator instead of the dataset (Pham et al.'s motivation: a 16.6 MB generator, not the data).

A *card* is a folder: `generator-<i>.safetensors` (the EMA generators' weights), `filter.safetensors` (Algorithm
1's classifier) and `card.json` (the architectures, class names, the training set and its content hash, steps,
metrics, per-class acceptance, the recommended threshold, sizes, format and lab versions, the sha256 of every
tensor file). Nothing in it is pickled, and `load_card` rebuilds the networks from the card alone after checking
every hash, tensor name and shape. `synthesize` streams Algorithm 1 from a card into a class-balanced labelled
dataset (PNG in torchvision's ImageFolder layout, or one npz), deterministic for a seed and resumable.
"""
import hashlib
import json
import re
import shutil
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from .config import ClassifierConfig, GANConfig
from .data import load_dataset, to_uint8
from .errors import CardError
from .models import ResNet18, build_gan, size_mb
from .checkpoints import file_digest

FORMAT_VERSION = 1
CARD = "card.json"
THRESHOLDS = (0.0, 0.5, 0.7, 0.9, 0.95, 0.99)  # per-class acceptance reported on the card


def _save(state: dict, path: Path) -> dict:
    """Write a state dict as safetensors; returns its card entry (file, sha256, tensor shapes)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, str(path))
    return {"file": path.name, "sha256": file_digest(path), "tensors": {k: list(v.shape) for k, v in tensors.items()}}


def export_card(gan_runs: list, filter_run, out_dir, threshold: float, n_per_class: int = 200,
                metrics: dict = None, cas: float = None) -> Path:
    """Write the card of a set of GAN runs (mixed uniformly) and their filter classifier into `out_dir`.

    Args:
        gan_runs, filter_run: finished runs (`lab.runs.Run`) of one dataset.
        threshold: the recommended Algorithm 1 threshold written on the card.
        n_per_class: samples per class of the pool whose per-class acceptance the card reports.
        metrics: the set's metrics record (`lab.experiments.gan_set_metrics`), copied when given.
        cas: the set's Classification Accuracy Score (%), when known.
    Returns:
        The card folder.
    """
    from .algorithm1 import acceptance_matrix
    from .generation import sample_pool
    from .train.classifier import load_classifier
    from .train.gan import load_generator

    if threshold is not None:  # None: the unfiltered stream is recommended
        _check_threshold(threshold, "the recommended threshold")
    for run, what in [(r, "GAN") for r in gan_runs] + [(filter_run, "classifier")]:
        if not (run.path / "config.json").is_file() or run.done() is None:
            raise CardError(f"{run.path} is not a finished {what} run (it needs config.json and done.json).")
    out = Path(out_dir)
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    fcfg = filter_run.config(ClassifierConfig)
    cfgs = [r.config(GANConfig) for r in gan_runs]
    if metrics is None or cas is None:  # from the run store the runs live in, when it has them
        found_metrics, found_cas = _store_metrics(gan_runs, filter_run)
        metrics, cas = metrics or found_metrics, found_cas if cas is None else cas
    if {c.dataset for c in cfgs} != {fcfg.dataset}:
        raise CardError(f"The GANs ({', '.join(sorted({c.dataset for c in cfgs}))}) and the filter ({fcfg.dataset}) "
                        f"were trained on different datasets; pass runs of one dataset.")
    gens = [load_generator(r.path) for r in gan_runs]
    clf = load_classifier(filter_run.path)
    train = load_dataset(fcfg.dataset, "train", fcfg.data_root)
    content = hashlib.sha256(train.images.numpy().tobytes())
    content.update(train.targets.numpy().astype("<i8").tobytes())
    entries = []
    for i, (run, cfg, G) in enumerate(zip(gan_runs, cfgs, gens)):
        e = _save(G.state_dict(), out / f"generator-{i}.safetensors")
        entries.append({**e, "config": cfg.to_dict(), "steps": run.done()["step"], "run": run.path.name,
                        "MiB": round(size_mb(G, "MiB"), 3)})
    filt = {**_save(clf.state_dict(), out / "filter.safetensors"), "config": fcfg.to_dict(),
            "test_error": filter_run.done().get("error"), "run": filter_run.path.name, "MiB": round(size_mb(clf, "MiB"), 3)}
    pool = sample_pool(gens, clf, n_per_class, seed=0)
    rates = acceptance_matrix(pool, THRESHOLDS)  # (C, T)
    card = {
        "format_version": FORMAT_VERSION, "lab_version": version("lab"),
        "dataset": {"name": fcfg.dataset, "classes": train.classes, "train_images": len(train),
                    "content_sha256": content.hexdigest(), "raw_MiB": round(train.images.numel() / 2**20, 3)},
        "generators": entries, "filter": filt, "recommended_threshold": threshold,
        "acceptance": {"n_per_class": n_per_class, "thresholds": list(THRESHOLDS),
                       "per_class": [[round(float(v), 4) for v in row] for row in rates]},
        "metrics": {k: (metrics or {}).get(k) for k in ("FID", "fid_n", "fid_reference_n", "feature_fd", "duplicate_rate", "n")}
                   | {"CAS": cas},
        "sizes_MiB": {"generators": round(sum(e["MiB"] for e in entries), 3), "filter": filt["MiB"],
                      "dataset_raw": round(train.images.numel() / 2**20, 3)},
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return out


def _store_metrics(gan_runs, filter_run):
    """The set's metrics record (most samples) and CAS from the run store holding the runs, else ({}, None)."""
    import pandas as pd

    from .tables import at_threshold, cached_metrics, classifier_results

    root = gan_runs[0].path.parent.parent
    names = sorted(r.path.name for r in gan_runs)
    recs = [m for m in cached_metrics(root) if m.get("gans") == names and m.get("filter") == filter_run.path.name]
    metrics = max(recs, key=lambda m: m.get("n", 0)) if recs else {}
    res = pd.DataFrame(classifier_results(root))
    cas = None
    if len(res):
        mine = res[(res["source"] == "gan") & (res["gan_names"] == tuple(names)) & (res["filter"] == filter_run.path.name)]
        unfiltered = at_threshold(mine, None)["error"]
        cas = round(100 - float(unfiltered.mean()), 2) if len(unfiltered) else None
    return metrics, cas


def load_card(card_dir, device="cpu"):
    """(generators, filter classifier, card) rebuilt from a card folder, in eval mode.

    Every tensor file must have the sha256, tensor names and shapes the card lists, and the card's networks
    must be the ones its configs build; anything else (tampered bytes, a missing tensor, another
    architecture, a newer format, a pickle or .pt in place of a card) is refused with one CardError naming the file.
    """
    from safetensors.torch import load_file

    d = Path(card_dir)
    if d.is_file():
        raise CardError(f"{d} is a file; a card is a folder holding {CARD} and .safetensors files (pickled "
                        f"checkpoints such as .pt files are never loaded).")
    if not (d / CARD).is_file():
        raise CardError(f"{d} holds no {CARD}: not a generator card (make one with `python -m lab export-card`).")
    try:
        card = json.loads((d / CARD).read_text())
    except json.JSONDecodeError as e:
        raise CardError(f"{d / CARD} is not valid JSON ({e}).") from None
    if card.get("format_version", 0) > FORMAT_VERSION:
        raise CardError(f"{d / CARD} has format version {card['format_version']}, newer than this lab's "
                        f"{FORMAT_VERSION}; update lab to read it.")

    def build(entry, net):
        path = d / entry["file"]
        if path.suffix != ".safetensors" or not re.fullmatch(r"[\w.-]+", entry["file"]):
            raise CardError(f"{d / CARD} names {entry['file']}: a card holds only .safetensors files of its own folder.")
        if not path.is_file():
            raise CardError(f"{path} is missing.")
        if file_digest(path) != entry["sha256"]:
            raise CardError(f"{path} does not match the sha256 on the card: its bytes were changed.")
        try:
            state = load_file(str(path))
        except Exception as e:  # not a safetensors file at all
            raise CardError(f"{path} is not a readable safetensors file ({type(e).__name__}).") from None
        want = {k: list(v.shape) for k, v in net.state_dict().items()}
        have = {k: list(v.shape) for k, v in state.items()}
        listed = entry.get("tensors", {})
        if have != listed:
            raise CardError(f"{path} holds other tensors than the card lists (missing: {sorted(set(listed) - set(have))[:3]}, "
                            f"extra: {sorted(set(have) - set(listed))[:3]}).")
        if have != want:
            diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            raise CardError(f"{path} is not the architecture of its config on the card (differs in {diff[:3]}).")
        net.load_state_dict(state)
        return net.to(device).eval().requires_grad_(False)

    try:
        gens = [build(e, build_gan(GANConfig.from_dict(e["config"]))[0]) for e in card["generators"]]
        fcfg = ClassifierConfig.from_dict(card["filter"]["config"])
        clf = build(card["filter"], ResNet18(fcfg.num_classes, fcfg.width))
    except (KeyError, TypeError) as e:
        raise CardError(f"{d / CARD} lacks a field this lab needs ({e}).") from None
    return gens, clf, card


# --- Synthetic datasets ------------------------------------------------------------------------
def _class_dirs(classes) -> list:
    """ImageFolder class folders that sort in label order: '003_Dress', ..."""
    return [f"{i:03d}_{re.sub(r'[^A-Za-z0-9.-]+', '_', str(c)).strip('_') or 'class'}" for i, c in enumerate(classes)]


def _check_threshold(t, what: str) -> None:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
        raise CardError(f"{what} of Algorithm 1 must be a number in [0, 1] (or none: unfiltered), got {t!r}.")


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CardError(f"{out} is a file; name a folder (new, or one this command wrote).")


def synthesize(card_dir, n: int, threshold: float, out_dir, fmt: str = "png", seed: int = 0, chunk: int = 1000,
               device="auto", max_draws_per_class: int = 10_000) -> Path:
    """Write `n` Algorithm-1-accepted samples of the card's generators (mixed uniformly) as a labelled dataset.

    The samples come in chunks of `chunk` (the last may be smaller); chunk k is one class-balanced batch of
    `lab.sampling.FilteredSampler` seeded from (seed, k), so every chunk is the same in every run, and an
    interrupted run resumes at the first chunk without its completion marker (no index missing or twice).
    PNG: `out_dir/<NNN_class>/<index>.png` (torchvision's ImageFolder layout, folders in label order); npz:
    `out_dir/synthetic.npz` (images uint8 (N, 3, R, R), labels int64, classes). The per-class filter
    statistics of all draws go to `out_dir/filter_stats.json`. A class with `max_draws_per_class` draws in a
    row and none accepted is starved: from then on the chunks are balanced over the other classes, and the
    class is listed under "starved_classes" there.
    """
    from tqdm.auto import tqdm

    from .algorithm1 import FilterStats
    from .sampling import FilteredSampler
    from .train.common import resolve_device

    if fmt not in ("png", "npz"):
        raise CardError(f"format must be png or npz, got {fmt!r}.")
    if n < 1 or chunk < 1:
        raise CardError(f"n and chunk must be positive, got n={n}, chunk={chunk}.")
    if threshold is not None:
        _check_threshold(threshold, "the threshold")
    if max_draws_per_class < 1:
        raise CardError(f"max_draws_per_class must be positive, got {max_draws_per_class}.")
    _check_out(Path(out_dir))  # all before anything is written
    dev = resolve_device(device)
    gens, clf, card = load_card(card_dir, dev)
    classes = card["dataset"]["classes"]
    out, marks = Path(out_dir), Path(out_dir) / ".chunks"
    marks.mkdir(parents=True, exist_ok=True)
    spec = {"card": file_digest(Path(card_dir) / CARD), "n": n, "threshold": threshold, "fmt": fmt, "seed": seed,
            "chunk": chunk, "max_draws_per_class": max_draws_per_class}
    spec_file = marks / "spec.json"
    if spec_file.exists() and json.loads(spec_file.read_text()) != spec:
        raise CardError(f"{out} holds a synthesis of other settings ({spec_file}); choose another folder.")
    spec_file.write_text(json.dumps(spec))
    dirs = _class_dirs(classes)
    if fmt == "png":  # every class folder, even one the filter starves, so that the labels keep their indices
        for folder in dirs:
            (out / folder).mkdir(exist_ok=True)
    n_chunks = -(-n // chunk)
    bar = tqdm(total=n, desc=f"synthesize t={threshold}", unit="img")
    for k in range(n_chunks):
        size = min(chunk, n - k * chunk)
        if (marks / f"{k}.json").exists():  # done before an interruption
            bar.update(size)
            continue
        stream = FilteredSampler(gens, clf, threshold, size, seed=seed * 1_000_003 + k, device=dev, class_names=classes,
                                 balanced=True, draw_batch=min(4 * size, 1024),  # bounded memory for wide GANs
                                 max_draws_per_class=max_draws_per_class)
        # A class starved in an earlier chunk stays out (its markers are on disk, so a resumed run agrees).
        stream.starved_classes = sorted({c for j in range(k) for c in json.loads((marks / f"{j}.json").read_text())["starved"]})
        x, y = stream.next_batch()
        order = torch.argsort(y.cpu(), stable=True)  # class by class within the chunk
        images, labels = to_uint8(x.cpu()[order]), y.cpu()[order]
        first = k * chunk
        if fmt == "png":
            from PIL import Image

            for i, (img, c) in enumerate(zip(images, labels.tolist())):
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(out / dirs[c] / f"{first + i:07d}.png")
        else:
            np.savez(marks / f"{k}.npz", images=images.numpy(), labels=labels.numpy())
        stats = {"rows": stream.stats.to_rows(classes), "starved": stream.starved_classes}
        tmp = marks / f"{k}.json.tmp"
        tmp.write_text(json.dumps(stats))
        tmp.replace(marks / f"{k}.json")  # the chunk's completion marker, written last
        bar.update(size)
    bar.close()

    total = FilterStats.zeros(len(classes))
    starved = set()
    for k in range(n_chunks):
        s = json.loads((marks / f"{k}.json").read_text())
        total.add(FilterStats(*(torch.tensor([r[f] for r in s["rows"]]) for f in
                                ("drawn", "accepted", "wrong_class", "low_confidence"))))
        starved |= set(s["starved"])
    if fmt == "npz":
        parts = [np.load(marks / f"{k}.npz") for k in range(n_chunks)]
        np.savez(out / "synthetic.npz", images=np.concatenate([p["images"] for p in parts]),
                 labels=np.concatenate([p["labels"] for p in parts]), classes=np.array(classes))
    (out / "filter_stats.json").write_text(json.dumps({
        "threshold": threshold, "n": n, "seed": seed, "card_dataset": card["dataset"]["name"],
        "per_class": total.to_rows(classes), "starved_classes": sorted(starved)}, indent=1) + "\n")
    if fmt == "npz":
        shutil.rmtree(marks)  # the npz is complete; PNG folders keep their markers (cheap, and tell what ran)
    return out



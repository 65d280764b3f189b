"""ResNet-18 training on real images or a live GAN-sample stream, and its evaluation on real test data."""
import math
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config import ClassifierConfig
from ..data import ImageDataset, augment_for, load_dataset, to_float
from ..errors import CheckpointError, ConfigError
from ..models import ResNet18
from ..runs import Run, rng_state, set_rng_state
from .common import (
    EpochSampler, Window, all_finite, autocast, check_finite, divergence, resolve_device, use_channels_last,
)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the peak lr at `step` of `total` (cosine to 0; step: /10 at 50 % and 75 %)."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / total))
    if schedule == "step":
        return 0.1 ** ((step >= total // 2) + (step >= 3 * total // 4))
    return 1.0


@torch.no_grad()
def evaluate(model, dataset: ImageDataset, batch_size: int = 500, device=None) -> dict:
    """Error (%) and per-class accuracy (%) of `model` on `dataset`, BatchNorm in eval mode."""
    dev = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    C = len(dataset.classes)
    correct, total = torch.zeros(C, device=dev), torch.zeros(C, device=dev)
    for i in range(0, len(dataset), batch_size):
        x = to_float(dataset.images[i : i + batch_size].to(dev))
        y = dataset.targets[i : i + batch_size].to(dev)
        hit = (model(x).argmax(1) == y).float()
        correct.index_add_(0, y, hit)
        total.index_add_(0, y, torch.ones_like(hit))
    model.train(was_training)
    per_class = (100 * correct / total.clamp(min=1)).tolist()
    acc = 100 * correct.sum().item() / total.sum().item()
    return {"error": 100 - acc, "accuracy": acc, "per_class_accuracy": per_class}


def _check_source(cfg: ClassifierConfig, data_source) -> None:
    is_real = isinstance(data_source, ImageDataset)
    if is_real != (cfg.source == "real"):
        raise ConfigError(
            f"ClassifierConfig.source is {cfg.source!r} but the data source is a "
            f"{'dataset' if is_real else 'sample stream'}; pass the matching source."
        )
    if is_real and len(data_source.classes) != cfg.num_classes:
        raise ConfigError(f"The dataset has {len(data_source.classes)} classes, the config's {cfg.dataset} {cfg.num_classes}.")


def train_classifier(config: ClassifierConfig, data_source, run_dir, on_step=None) -> Run:
    """Train (or resume, or just return) the classifier run of `config` in `run_dir`.

    Args:
        config: a ClassifierConfig; its source fields describe `data_source` (they are the run's identity).
        data_source: an ImageDataset of real training images (batches drawn epoch by epoch, augmented if
            `config.augment`), or an iterable of `(x, y)` device batches such as `lab.sampling.FilteredSampler`.
            A stream with `state_dict()`/`load_state_dict()` is resumed exactly.
        run_dir: the run directory; an existing checkpoint there is resumed.
        on_step: optional `on_step(step, stats)` called at every log line.
    """
    cfg = config
    _check_source(cfg, data_source)
    run = Run(run_dir)
    run.init(cfg)
    dev = resolve_device(cfg.device)
    amp = autocast(dev, cfg.precision)
    cl = torch.channels_last if use_channels_last(dev, cfg.channels_last) else torch.contiguous_format

    # Model, optimiser, schedule, the run's own random stream.
    torch.manual_seed(cfg.seed)
    model = ResNet18(cfg.num_classes, cfg.width).to(dev, memory_format=cl)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.schedule, s, cfg.steps))
    gen = torch.Generator(dev).manual_seed(cfg.seed)
    fwd = torch.compile(model) if cfg.compile else model
    test = load_dataset(cfg.dataset, "test", cfg.data_root)

    # Data: real images as uint8 on the device, or the caller's stream.
    if cfg.source == "real":
        images, labels = data_source.images.to(dev), data_source.targets.to(dev)
        sampler = EpochSampler(len(images), cfg.batch_size, gen)
        aug = augment_for(data_source.name) if cfg.augment else None

        def next_batch():
            idx = sampler.next()
            x = to_float(images[idx])
            return (aug(x, generator=gen) if aug else x), labels[idx]
        source_state = sampler
    else:
        stream = iter(data_source)

        def next_batch():
            return next(stream)
        source_state = data_source if hasattr(data_source, "state_dict") else None

    # Resume.
    window, step = Window(), 0
    if run.has_checkpoint():
        s = run.load_checkpoint()
        try:
            model.load_state_dict(s["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{run.checkpoint_path} holds another architecture ({str(e).splitlines()[0]}).") from None
        opt.load_state_dict(s["opt"])
        sched.load_state_dict(s["sched"])
        gen.set_state(s["gen"])
        set_rng_state(s["rng"])
        if source_state is not None and s.get("source") is not None:
            source_state.load_state_dict(_to(s["source"], dev))
        window.load_state_dict(_to(s["window"], dev))
        step = s["step"]
    run.truncate_stats(step)

    last_ckpt, t_last, steps_timed, last_eval = step, time.perf_counter(), 0, None
    bar = tqdm(total=cfg.steps, initial=step, desc=f"classifier {run.path.name}", mininterval=1.0)
    model.train()
    while step < cfg.steps:
        # Optimisation step.
        x, y = next_batch()
        with amp:
            logits = fwd(x.contiguous(memory_format=cl))
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        steps_timed += 1
        window.add(loss=loss, train_acc=(logits.argmax(1) == y).float().mean() * 100)

        # Log (and evaluate on the real test split every eval_every steps).
        evaluate_now = step % cfg.eval_every == 0 or step == cfg.steps
        if step % cfg.log_every == 0 or evaluate_now:
            stats = {"step": step, "lr": opt.param_groups[0]["lr"], **window.means()}
            check_finite(stats, step, last_ckpt, run.path)
            now = time.perf_counter()
            stats["sec_per_step"], t_last, steps_timed = (now - t_last) / steps_timed, now, 0
            if evaluate_now:
                last_eval = (step, evaluate(model, test))
                stats["test_error"] = last_eval[1]["error"]
                t_last = time.perf_counter()  # evaluation time is not training time
            window.reset()
            run.log(stats)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", **({"test_err": f"{stats['test_error']:.2f}"} if evaluate_now else {}))
            if on_step is not None:
                on_step(step, stats)

        # Checkpoint, only of finite weights: a diverged run keeps its last good checkpoint.
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            if not all_finite(model):
                raise divergence("a weight", step, last_ckpt, run.path)
            run.save_checkpoint({
                "step": step, "config": cfg.to_dict(), "model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "gen": gen.get_state(), "rng": rng_state(), "window": window.state_dict(),
                "source": source_state.state_dict() if source_state is not None else None,
            })
            last_ckpt = step
        bar.update(1)
    bar.close()

    if not run.is_done(cfg.steps):
        final = last_eval[1] if last_eval and last_eval[0] == step else evaluate(model, test)
        stream = {"train_images": len(data_source)} if cfg.source == "real" else {}
        if hasattr(data_source, "stats"):  # Algorithm 1's per-class counts over the whole run, starved classes
            stream |= {"filter_stats": data_source.stats.to_rows(),
                      "starved_classes": list(getattr(data_source, "starved_classes", []))}
        run.mark_done({"step": step, **final, "params": sum(p.numel() for p in model.parameters()), **stream})
    return run


def _to(tree, device):
    """Move every tensor of a nested dict/list to `device`."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: _to(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to(v, device) for v in tree)
    return tree


def load_classifier(run_dir, device="cpu") -> torch.nn.Module:
    """The trained classifier of a run, in eval mode."""
    run = Run(run_dir)
    cfg = run.config(ClassifierConfig)
    model = ResNet18(cfg.num_classes, cfg.width)
    try:
        model.load_state_dict(run.load_checkpoint()["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{run.checkpoint_path} does not match its config.json ({str(e).splitlines()[0]}).") from None
    return model.to(device).eval().requires_grad_(False)

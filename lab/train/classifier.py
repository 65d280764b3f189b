"""ResNet-18 training on real images or a live GAN-sample stream, and its evaluation on real test data."""
import math

import torch
import torch.nn.functional as F

from ..config import ClassifierConfig
from ..augment import augment_for
from ..data import ImageDataset, load_dataset, to_float
from ..errors import ConfigError
from ..models import ResNet18
from ..runs import Run, locked
from .common import EpochSampler, all_finite, divergence
from .loop import LogWindow, Runtime, load_models, model_states, restore, save_checkpoint


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
    if is_real and data_source.resolution != cfg.resolution:  # e.g. a synthetic set made at another size
        side, want = data_source.resolution, cfg.resolution
        raise ConfigError(f"The training images are {side}x{side} but the test split of {cfg.dataset} is {want}x{want}; "
                          f"train on images of the config's dataset (a synthetic set from a {cfg.dataset} card).")


@locked
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
    rt = Runtime.for_run(cfg, run)
    dev, amp = rt.device, rt.amp  # the memory format: rt.layout_for(the models), below

    # Model, optimiser, schedule, the run's own random stream.
    torch.manual_seed(cfg.seed)
    model = ResNet18(cfg.num_classes, cfg.width)
    cl = rt.layout_for(model)
    model = model.to(dev, memory_format=cl)
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
        aug = augment_for(data_source) if cfg.augment else None

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
    state = dict(models={"model": model}, opts={"opt": opt, "sched": sched}, rngs={"gen": gen},
                 samplers={"source": source_state})

    # Resume: weights, optimiser, schedule, the source's position, RNG states, log window.
    step, extra = restore(run, dev, **state)
    run.truncate_stats(step)
    postfix = lambda s: {"loss": f"{s['loss']:.3f}", **({"test_err": f"{s['test_error']:.2f}"} if "test_error" in s else {})}
    log = LogWindow(run, cfg.steps, step, cfg.log_every, f"classifier {run.path.name}", postfix, on_step)
    if extra:
        log.load_state_dict(extra["window"])

    last_eval = None
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
        log.add(loss=loss, train_acc=(logits.argmax(1) == y).float().mean() * 100)

        # Log (and evaluate on the real test split every eval_every steps).
        evaluate_now = step % cfg.eval_every == 0 or step == cfg.steps
        if log.due(step) or evaluate_now:
            def test_error():
                nonlocal last_eval
                last_eval = (step, evaluate(model, test))
                return {"test_error": last_eval[1]["error"]}
            log.log(step, {"lr": opt.param_groups[0]["lr"]}, test_error if evaluate_now else None)

        # Checkpoint, only of finite weights: a diverged run keeps its last good checkpoint.
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            if not all_finite(model):
                raise divergence("a weight", step, log.last_good, run.path)
            save_checkpoint(run, step, cfg, **state, extra={"window": log.state_dict()})
            log.checkpointed(step)
        log.update()
    log.close()

    if not run.is_done(cfg.steps):
        final = last_eval[1] if last_eval and last_eval[0] == step else evaluate(model, test)
        stream = {"train_images": len(data_source)} if cfg.source == "real" else {}
        if hasattr(data_source, "stats"):  # Algorithm 1's per-class counts over the whole run, starved classes
            stream |= {"filter_stats": data_source.stats.to_rows(),
                      "starved_classes": list(getattr(data_source, "starved_classes", []))}
            rule = getattr(data_source, "rule", None)
            if rule is not None and rule.mode != "fixed":  # the per-class thresholds: at the end, and over the run
                stream |= {"thresholds": rule.thresholds().tolist(),
                           "threshold_history": [[n, t] for n, t in data_source.threshold_history]}
        run.mark_done({"step": step, **final, "params": sum(p.numel() for p in model.parameters()), **stream})
    return run


def load_classifier(run_dir, device="cpu") -> torch.nn.Module:
    """The trained classifier of a run, in eval mode."""
    run = Run(run_dir)
    cfg = run.config(ClassifierConfig)
    model = ResNet18(cfg.num_classes, cfg.width)
    load_models({"model": model}, model_states(run, "model"), f"{run.path} holds weights that do not match its config.json")
    return model.to(device).eval().requires_grad_(False)

"""``cnntool train`` and ``cnntool finetune``: train a classifier from scratch, or from a model.

Thin on purpose: the options become a :class:`~cnntool.train.config.TrainConfig`, and
:func:`cnntool.train.classify.train_classifier` does the work. Per-epoch lines go to stderr;
stdout gets one summary record (``path`` is the run folder). Under ``torchrun`` every process
runs this and only rank 0 writes files and the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import Device, Format, MaxPixels, Quiet, Seed, Verbose, make_output
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import UsageError


Data = Annotated[
    Optional[Path],
    typer.Argument(help="Dataset folder: DATA/<class>/*.png, or DATA/train, DATA/val (and DATA/test) "
                        "holding class folders. Not needed with --resume.", show_default=False),
]
Out = Annotated[Optional[Path], typer.Option("--out", "-o", file_okay=False,
                                             help="Run folder [default: runs/<arch>-<n>].", show_default=False)]
Resume = Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder exactly where it "
                                                                 "stopped (its saved options are used).",
                                                show_default=False)]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Start over in an --out folder that already holds a run.")]
ValSplit = Annotated[float, typer.Option("--val-split", help="Validation fraction when DATA has no val/ folder "
                                                             "(stratified, seeded by --seed).")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", "-e", min=1, help="Epochs [default: about 1500 steps, "
                                                                             "10 to 60 epochs].", show_default=False)]
Batch = Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1,
                                              help="Images per step, per process [default: 64; for datasets under "
                                                   "512 images less, down to 16, for at least 8 steps an epoch].",
                                              show_default=False)]
Optimizer = Annotated[str, typer.Option("--optimizer", help="sgd (Nesterov momentum) | adamw.")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate [default: sgd 0.05 x batch/64, "
                                                          "adamw 1e-3; fine-tuning 0.01 / 1e-4].", show_default=False)]
Momentum = Annotated[float, typer.Option("--momentum", help="SGD momentum (AdamW beta1).")]
WeightDecay = Annotated[Optional[float], typer.Option("--weight-decay", help="[default: sgd 5e-4, adamw 0.05]; "
                                                                            "biases and norm layers get none.",
                                                     show_default=False)]
Schedule = Annotated[str, typer.Option("--schedule", help="cosine (decay to 0) | constant, after the warmup.")]
Warmup = Annotated[float, typer.Option("--warmup-epochs", min=0.0, help="Linear warmup from lr/100, in epochs.")]
Smoothing = Annotated[float, typer.Option("--label-smoothing", help="Label smoothing epsilon (0: off).")]
Mixup = Annotated[float, typer.Option("--mixup", min=0.0, help="Mixup Beta alpha, e.g. 0.2 (0: off).")]
Cutmix = Annotated[float, typer.Option("--cutmix", min=0.0, help="CutMix Beta alpha, e.g. 1.0 (0: off).")]
GradClip = Annotated[Optional[float], typer.Option("--grad-clip", min=0.0, help="Clip the gradient norm to this "
                                                                                "[default: no clipping].",
                                                   show_default=False)]
Patience = Annotated[Optional[int], typer.Option("--patience", min=1, help="Stop after this many epochs without a "
                                                                           "better val accuracy [default: never].",
                                                 show_default=False)]
Ema = Annotated[Optional[float], typer.Option("--ema", help="Average weights with this EMA decay, e.g. 0.999, and "
                                                            "evaluate/save the average [default: off].",
                                              show_default=False)]
Init = Annotated[str, typer.Option("--init", help="From-scratch initialisation: auto (Kaiming for ReLU nets, "
                                                  "Xavier for tanh nets) | kaiming | xavier | torch.")]
Augment = Annotated[bool, typer.Option("--augment/--no-augment", help="Random distortions of training images.")]
Rotate = Annotated[float, typer.Option("--rotate", min=0.0, help="Max rotation, degrees.")]
Shift = Annotated[float, typer.Option("--shift", min=0.0, help="Max shift, fraction of the image size.")]
Zoom = Annotated[float, typer.Option("--zoom", min=0.0, help="Max zoom in/out, fraction.")]
Shear = Annotated[float, typer.Option("--shear", min=0.0, help="Max shear, degrees.")]
CropScale = Annotated[Optional[str], typer.Option("--crop-scale", metavar="MIN,MAX",
                                                  help="Random resized crop over this fraction of the area, e.g. "
                                                       "0.08,1 (the ImageNet recipe) [default: off].",
                                                  show_default=False)]
Hflip = Annotated[bool, typer.Option("--hflip/--no-hflip", help="Random left-right flips (off: digits and text "
                                                                "are not mirror-symmetric).")]
Vflip = Annotated[bool, typer.Option("--vflip/--no-vflip", help="Random top-bottom flips.")]
ColorJitter = Annotated[float, typer.Option("--color-jitter", min=0.0, help="Brightness, contrast and saturation "
                                                                            "jitter, e.g. 0.2 (0: off).")]
Amp = Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="Mixed precision [default: on for CUDA].",
                                             show_default=False)]
ChannelsLast = Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last",
                                                      help="NHWC memory layout [default: on for CUDA].",
                                                      show_default=False)]
LoaderWorkers = Annotated[Optional[int], typer.Option("--workers", "-j", min=0,
                                                      help="DataLoader worker processes; 0 loads in the main process "
                                                           "[default: 0 for cached data, else by cores].",
                                                      show_default=False)]
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU compute threads [default: physical "
                                                                         "cores minus loader workers].",
                                                show_default=False)]
Cache = Annotated[str, typer.Option("--cache", help="Keep decoded images in memory: auto (when under 2 GiB) | on | off.")]
Verify = Annotated[bool, typer.Option("--verify/--no-verify", help="Decode every image once up front and skip "
                                                                   "corrupt ones (always done when caching).")]
Deterministic = Annotated[bool, typer.Option("--deterministic", help="Deterministic GPU kernels (slower); CPU runs "
                                                                     "repeat exactly anyway.")]


def train_command(
    data: Data = None,
    arch: Annotated[Optional[str], typer.Option("--arch", "-a", help="Registry model to train from scratch "
                                                                   "(see `cnntool models list`).",
                                                show_default=False)] = None,
    out: Out = None, resume: Resume = None, overwrite: Overwrite = False, val_split: ValSplit = 0.2,
    epochs: Epochs = None, batch_size: Batch = None, optimizer: Optimizer = "sgd", lr: Lr = None,
    momentum: Momentum = 0.9, weight_decay: WeightDecay = None, schedule: Schedule = "cosine",
    warmup_epochs: Warmup = 1.0, label_smoothing: Smoothing = 0.1, mixup: Mixup = 0.0, cutmix: Cutmix = 0.0,
    grad_clip: GradClip = None, patience: Patience = None, ema: Ema = None, init: Init = "auto",
    augment: Augment = True, rotate: Rotate = 10.0, shift: Shift = 0.1, zoom: Zoom = 0.1, shear: Shear = 5.0,
    crop_scale: CropScale = None, hflip: Hflip = False, vflip: Vflip = False, color_jitter: ColorJitter = 0.0,
    device: Device = "auto", amp: Amp = None, channels_last: ChannelsLast = None, workers: LoaderWorkers = None,
    threads: Threads = None, cache: Cache = "auto", verify: Verify = True, max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    seed: Seed = 0, deterministic: Deterministic = False,
    format: Format = None, quiet: Quiet = False, verbose: Verbose = False,
) -> int:
    """Train a classifier from scratch on an ImageFolder dataset.

    Writes best.pt, last.pt, config.json, metrics.csv/.jsonl, curves.png and confusion.png to
    the run folder and prints one summary record. Multi-GPU or multi-process: run it under
    torchrun (torchrun --nproc_per_node=2 -m cnntool train ...).

    Examples:

    \b
      cnntool train samples/digits --arch lenet5
      cnntool train photos/ --arch resnet18 --val-split 0.2 --hflip --crop-scale 0.08,1 --mixup 0.2
      cnntool train --resume runs/lenet5-1
    """
    if resume is None and not arch:
        raise UsageError("--arch is required", hint="e.g. cnntool train DATA --arch lenet5 (see `cnntool models list`)")
    return _run(locals(), init_from=None)


def finetune_command(
    data: Data = None,
    init_from: Annotated[Optional[str], typer.Option("--from", help="Start from NAME:WEIGHTS (pretrained, e.g. "
                                                                   "resnet18:DEFAULT) or a cnntool checkpoint.",
                                                     show_default=False)] = None,
    freeze: Annotated[str, typer.Option("--freeze", help="none (train everything) | backbone (the new head only) | "
                                                         "N (the head and the last N blocks).")] = "none",
    backbone_lr_scale: Annotated[float, typer.Option("--backbone-lr-scale", min=0.0,
                                                     help="Backbone learning rate = lr x this.")] = 0.1,
    out: Out = None, resume: Resume = None, overwrite: Overwrite = False, val_split: ValSplit = 0.2,
    epochs: Epochs = None, batch_size: Batch = None, optimizer: Optimizer = "sgd", lr: Lr = None,
    momentum: Momentum = 0.9, weight_decay: WeightDecay = None, schedule: Schedule = "cosine",
    warmup_epochs: Warmup = 1.0, label_smoothing: Smoothing = 0.1, mixup: Mixup = 0.0, cutmix: Cutmix = 0.0,
    grad_clip: GradClip = None, patience: Patience = None, ema: Ema = None,
    augment: Augment = True, rotate: Rotate = 10.0, shift: Shift = 0.1, zoom: Zoom = 0.1, shear: Shear = 5.0,
    crop_scale: CropScale = None, hflip: Hflip = False, vflip: Vflip = False, color_jitter: ColorJitter = 0.0,
    device: Device = "auto", amp: Amp = None, channels_last: ChannelsLast = None, workers: LoaderWorkers = None,
    threads: Threads = None, cache: Cache = "auto", verify: Verify = True, max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    seed: Seed = 0, deterministic: Deterministic = False,
    format: Format = None, quiet: Quiet = False, verbose: Verbose = False,
) -> int:
    """Fine-tune a pretrained model or a cnntool checkpoint on new classes (transfer learning).

    The head named by the registry entry is replaced for DATA's classes; --freeze picks what
    trains; the backbone learns at --backbone-lr-scale times the head's rate. Same outputs as
    `cnntool train`.

    Examples:

    \b
      cnntool finetune flowers/ --from resnet18:DEFAULT --freeze backbone
      cnntool finetune letters/ --from runs/lenet5-1/best.pt --freeze 2 --epochs 20
    """
    if resume is None and not init_from:
        raise UsageError("--from is required",
                         hint="e.g. --from resnet18:DEFAULT (pretrained) or --from runs/NAME/best.pt")
    options = locals()
    return _run(options, init_from=init_from)


def _run(options: dict, *, init_from: str | None) -> int:
    from cnntool.train.classify import train_classifier
    from cnntool.train.config import TrainConfig
    from cnntool.train.distributed import env_info

    dist = env_info()
    output = make_output(options["format"], options["quiet"] or not dist.is_main, options["verbose"])
    resume = options["resume"]
    if resume is None and options["data"] is None:
        raise UsageError("no dataset folder given", hint="cnntool train DATA --arch NAME (or --resume RUN_FOLDER)")
    cfg = None if resume is not None else _config(options, init_from, TrainConfig)
    summary = train_classifier(cfg or TrainConfig(), resume=str(resume) if resume is not None else None,
                               overwrite=options["overwrite"], messages=output)
    if dist.is_main and summary:
        if output.format == "table":  # one wide row is unreadable at a terminal: field/value rows
            for key, value in summary.items():
                output.emit({"field": key, "value": value})
        else:
            output.emit(summary)
        output.close()
    return 0


def _config(o: dict, init_from: str | None, TrainConfig):
    from cnntool.data.transforms import AugmentConfig

    aug = AugmentConfig(rotate=o["rotate"], shift=o["shift"], zoom=o["zoom"], shear=o["shear"],
                        crop_scale=_crop_scale(o["crop_scale"]), hflip=o["hflip"], vflip=o["vflip"],
                        brightness=o["color_jitter"], contrast=o["color_jitter"], saturation=o["color_jitter"])
    cfg = TrainConfig(
        data=str(o["data"]), arch=(o.get("arch") or "").lower(), init_from=init_from,
        out=str(o["out"]) if o["out"] is not None else None, val_split=o["val_split"],
        epochs=o["epochs"], batch_size=o["batch_size"], optimizer=o["optimizer"].lower(), lr=o["lr"],
        momentum=o["momentum"], weight_decay=o["weight_decay"], schedule=o["schedule"].lower(),
        warmup_epochs=o["warmup_epochs"], label_smoothing=o["label_smoothing"], mixup=o["mixup"],
        cutmix=o["cutmix"], grad_clip=o["grad_clip"], patience=o["patience"], ema=o["ema"],
        init=o.get("init", "auto").lower(), augment=o["augment"], aug=aug,
        freeze=o.get("freeze", "none"), backbone_lr_scale=o.get("backbone_lr_scale", 0.1),
        device=o["device"], amp=o["amp"], channels_last=o["channels_last"], workers=o["workers"],
        threads=o["threads"], cache=o["cache"].lower(), verify=o["verify"], max_pixels=o["max_pixels"],
        seed=o["seed"], deterministic=o["deterministic"],
    )
    return cfg.validate()


def _crop_scale(text: str | None):
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"bad --crop-scale {text!r}", hint="two fractions MIN,MAX, e.g. 0.08,1") from None
    if not 0.0 < low <= high <= 1.0:
        raise UsageError(f"bad --crop-scale {text!r}", hint="need 0 < MIN <= MAX <= 1")
    return (low, high)

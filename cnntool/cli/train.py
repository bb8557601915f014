"""``cnntool train`` and ``cnntool finetune``: train a model for any task, from scratch or from a model.

Thin on purpose: the options become a :class:`~cnntool.train.config.TrainConfig` (every config
field has its option here, :data:`OPTION_OF_FIELD` names it, and a test checks that none is
missing), and :func:`cnntool.train.runner.train` does the work. Per-epoch lines go to stderr;
stdout gets one summary record (``path`` is the run folder). Under ``torchrun`` every process
runs this and only rank 0 writes files and the record. Exit 1 when images of the dataset were
skipped as unreadable (the run still completes).

Recipe options default to ``None`` here and are filled from :class:`TrainConfig` (and the
task's recipe), so that ``--resume`` can tell which were given: it takes the machine options and
a larger ``--epochs`` (the cosine schedule is then recomputed for the new length) and refuses the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cnntool.cli._options import Format, ImgSize, Quiet, Verbose, in_group, make_output, parse_imgsz
from cnntool.data.limits import DEFAULT_MAX_PIXELS
from cnntool.errors import UsageError


Data = Annotated[
    Optional[Path],
    typer.Argument(help="Dataset folder: class folders (DATA/<class>/*.png; videos for --task video), COCO "
                        "(images/ + annotations.json) or YOLO (images/ + labels/) for detection, images/ + masks/ "
                        "for segmentation; each optionally split into DATA/train, DATA/val (and DATA/test). "
                        "Not needed with --resume.", show_default=False),
]
TaskOption = Annotated[Optional[str], typer.Option("--task", help="classify | detect | segment | video [default: the "
                                                                  "model's task, else the dataset's layout].",
                                                   show_default=False, rich_help_panel="What to train")]
TrainImgSize = in_group(ImgSize, "What to train")
ArchArg = Annotated[Optional[list[str]], typer.Option("--arch-arg", metavar="KEY=VALUE",
                                                      help="A model builder option, repeatable, e.g. depth=5 "
                                                           "(see `cnntool models info NAME`).", show_default=False, rich_help_panel="What to train")]
Accumulate = Annotated[Optional[int], typer.Option("--accumulate", min=1, help="Optimiser step every N batches "
                                                                               "(gradient accumulation) [default: 1].",
                                                   show_default=False, rich_help_panel="Schedule and optimiser")]
Tensorboard = Annotated[Optional[bool], typer.Option("--tensorboard/--no-tensorboard",
                                                     help="Also write TensorBoard event files to RUN/tensorboard "
                                                          "[default: off].", show_default=False, rich_help_panel="Machine")]
AutoAugment = Annotated[Optional[str], typer.Option("--auto-augment", metavar="POLICY",
                                                    help="randaugment | trivialaugment: torchvision's automatic "
                                                         "augmentation policy after the warp [default: none].",
                                                    show_default=False, rich_help_panel="Augmentation")]
Erasing = Annotated[Optional[float], typer.Option("--erasing", min=0.0, max=1.0, help="Random erasing probability "
                                                                                     "per image [default: 0].",
                                                  show_default=False, rich_help_panel="Augmentation")]
CropRatio = Annotated[Optional[str], typer.Option("--crop-ratio", metavar="MIN,MAX",
                                                  help="Aspect ratio range of --crop-scale's crops [default: 0.75,1.333].",
                                                  show_default=False, rich_help_panel="Augmentation")]
Out = Annotated[Optional[Path], typer.Option("--out", "-o", file_okay=False,
                                             help="Run folder [default: runs/<arch>-<n>].", show_default=False, rich_help_panel="What to train")]
Resume = Annotated[Optional[Path], typer.Option("--resume", help="Continue the run in this folder exactly where it "
                                                                 "stopped, with its saved recipe. Only --epochs (to "
                                                                 "extend it: the cosine schedule is recomputed for the "
                                                                 "new length) and the machine options --device, "
                                                                 "--amp, --channels-last, --workers, --threads, "
                                                                 "--cache-images and --tensorboard may be given "
                                                                 "with it.",
                                                show_default=False, rich_help_panel="What to train")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Start over in an --out folder that already holds a run.", rich_help_panel="What to train")]
ValSplit = Annotated[Optional[float], typer.Option("--val-split", help="Validation fraction when DATA has no val/ "
                                                                       "folder (stratified, seeded by --seed) "
                                                                       "[default: 0.2].", show_default=False, rich_help_panel="What to train")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", "-e", min=1, help="Epochs [default: about 1500 steps, "
                                                                             "10 to 60 epochs]. With --resume: a "
                                                                             "larger number extends the run.",
                                                show_default=False, rich_help_panel="Schedule and optimiser")]
Batch = Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1,
                                              help="Images per step, per process [default: 64; for datasets under "
                                                   "512 images less, down to 16, for at least 8 steps an epoch].",
                                              show_default=False, rich_help_panel="Schedule and optimiser")]
Optimizer = Annotated[Optional[str], typer.Option("--optimizer", help="sgd (Nesterov momentum) | adamw "
                                                                      "[default: sgd].", show_default=False, rich_help_panel="Schedule and optimiser")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate [default: sgd 0.05 x batch/64, "
                                                          "adamw 1e-3; fine-tuning 0.01 / 1e-4].", show_default=False, rich_help_panel="Schedule and optimiser")]
Momentum = Annotated[Optional[float], typer.Option("--momentum", help="SGD momentum (AdamW beta1) [default: 0.9].",
                                                   show_default=False, rich_help_panel="Schedule and optimiser")]
WeightDecay = Annotated[Optional[float], typer.Option("--weight-decay", help="[default: sgd 5e-4, adamw 0.05]; "
                                                                            "biases and norm layers get none.",
                                                     show_default=False, rich_help_panel="Schedule and optimiser")]
Schedule = Annotated[Optional[str], typer.Option("--schedule", help="cosine (decay to 0) | constant | step (x --gamma "
                                                                    "every --lr-step epochs) | plateau (x --gamma after "
                                                                    "--plateau-patience epochs without a better best "
                                                                    "metric), after the warmup [default: cosine].",
                                                 show_default=False, rich_help_panel="Schedule and optimiser")]
LrStep = Annotated[Optional[int], typer.Option("--lr-step", min=1, help="step schedule: epochs between decays "
                                                                        "[default: 30].", show_default=False, rich_help_panel="Schedule and optimiser")]
Gamma = Annotated[Optional[float], typer.Option("--gamma", help="step/plateau schedule: the decay factor "
                                                                "[default: 0.1].", show_default=False, rich_help_panel="Schedule and optimiser")]
PlateauPatience = Annotated[Optional[int], typer.Option("--plateau-patience", min=1,
                                                        help="plateau schedule: epochs without improvement before a "
                                                             "decay [default: 3].", show_default=False, rich_help_panel="Schedule and optimiser")]
DiceWeight = Annotated[Optional[float], typer.Option("--dice-weight", min=0.0, rich_help_panel="Regularisation",
                                                    help="Segmentation: add this times a soft Dice loss to the "
                                                         "cross-entropy (0: off) [default: 0].", show_default=False)]
Balance = Annotated[Optional[str], typer.Option("--balance", help="Skewed classes: none | weights (loss weights ~ "
                                                                  "1/class size) | sampler (class-balanced sampling) "
                                                                  "[default: none].", show_default=False, rich_help_panel="Regularisation")]
Config = Annotated[Optional[Path], typer.Option("--config", exists=False, dir_okay=False,
                                                help="A recipe file (TOML): option names as keys, e.g. lr = 0.01, "
                                                     "hflip = true. Options on the command line win; the "
                                                     "effective recipe is saved in the run folder (config.json).",
                                                show_default=False, rich_help_panel="What to train")]
Warmup = Annotated[Optional[float], typer.Option("--warmup-epochs", min=0.0, help="Linear warmup from lr/100, in "
                                                                                  "epochs [default: 1].",
                                                 show_default=False, rich_help_panel="Schedule and optimiser")]
Smoothing = Annotated[Optional[float], typer.Option("--label-smoothing", help="Label smoothing epsilon (0: off) "
                                                                              "[default: 0.1].", show_default=False, rich_help_panel="Regularisation")]
Mixup = Annotated[Optional[float], typer.Option("--mixup", min=0.0, help="Mixup Beta alpha, e.g. 0.2 (0: off) "
                                                                         "[default: 0].", show_default=False, rich_help_panel="Regularisation")]
Cutmix = Annotated[Optional[float], typer.Option("--cutmix", min=0.0, help="CutMix Beta alpha, e.g. 1.0 (0: off) "
                                                                           "[default: 0].", show_default=False, rich_help_panel="Regularisation")]
GradClip = Annotated[Optional[float], typer.Option("--grad-clip", min=0.0, help="Clip the gradient norm to this "
                                                                                "[default: no clipping].",
                                                   show_default=False, rich_help_panel="Regularisation")]
Patience = Annotated[Optional[int], typer.Option("--patience", min=1, help="Stop after this many epochs without a "
                                                                           "better val accuracy [default: never].",
                                                 show_default=False, rich_help_panel="Schedule and optimiser")]
Ema = Annotated[Optional[float], typer.Option("--ema", help="Average weights with this EMA decay, e.g. 0.999, and "
                                                            "evaluate/save the average [default: off].",
                                              show_default=False, rich_help_panel="Regularisation")]
Init = Annotated[Optional[str], typer.Option("--init", help="From-scratch initialisation: auto (Kaiming for ReLU "
                                                            "nets, Xavier for tanh nets) | kaiming | xavier | torch "
                                                            "[default: auto].", show_default=False, rich_help_panel="Regularisation")]
Augment = Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Random distortions of training "
                                                                                "images [default: on].",
                                                 show_default=False, rich_help_panel="Augmentation")]
Rotate = Annotated[Optional[float], typer.Option("--rotate", min=0.0, help="Max rotation, degrees [default: 10; segmentation: off].",
                                                 show_default=False, rich_help_panel="Augmentation")]
Shift = Annotated[Optional[float], typer.Option("--shift", min=0.0, help="Max shift, fraction of the image size "
                                                                         "[default: 0.1; segmentation: off].", show_default=False, rich_help_panel="Augmentation")]
Zoom = Annotated[Optional[float], typer.Option("--zoom", min=0.0, help="Max zoom in/out, fraction: a scale in "
                                                                        "[1-X, 1+X]. Detection: zoom out only, half "
                                                                        "the images onto a canvas up to 1/(1-X) times "
                                                                        "their size [default: 0.1; detection, segmentation: off].",
                                               show_default=False, rich_help_panel="Augmentation")]
Shear = Annotated[Optional[float], typer.Option("--shear", min=0.0, help="Max shear, degrees [default: 5; segmentation: off].",
                                                show_default=False, rich_help_panel="Augmentation")]
CropScale = Annotated[Optional[str], typer.Option("--crop-scale", metavar="MIN,MAX",
                                                  help="Random resized crop over this fraction of the area, e.g. "
                                                       "0.08,1 (the ImageNet recipe). Detection: half the images "
                                                       "get SSD's IoU crop of that area, boxes kept with their "
                                                       "objects, e.g. 0.1,1 [default: off].",
                                                  show_default=False, rich_help_panel="Augmentation")]
Hflip = Annotated[Optional[bool], typer.Option("--hflip/--no-hflip", help="Random left-right flips [default: off, as "
                                                                          "digits and text are not mirror-"
                                                                          "symmetric; detection, "
                                                                          "segmentation: on].", show_default=False, rich_help_panel="Augmentation")]
Vflip = Annotated[Optional[bool], typer.Option("--vflip/--no-vflip", help="Random top-bottom flips [default: off].",
                                               show_default=False, rich_help_panel="Augmentation")]
ColorJitter = Annotated[Optional[float], typer.Option("--color-jitter", min=0.0, help="Brightness, contrast and "
                                                                                      "saturation jitter, e.g. 0.2 "
                                                                                      "(0: off) [default: 0].",
                                                      show_default=False, rich_help_panel="Augmentation")]
Amp = Annotated[Optional[bool], typer.Option("--amp/--no-amp", help="Mixed precision [default: on for CUDA].",
                                             show_default=False, rich_help_panel="Machine")]
ChannelsLast = Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last",
                                                      help="NHWC memory layout [default: on for CUDA and the CPU, off on MPS].",
                                                      show_default=False, rich_help_panel="Machine")]
LoaderWorkers = Annotated[Optional[int], typer.Option("--workers", "-j", min=0,
                                                      help="DataLoader worker processes; 0 loads in the main process "
                                                           "[default: 0 for cached data, else by cores].",
                                                      show_default=False, rich_help_panel="Machine")]
Threads = Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU compute threads [default: "
                                                                         "$OMP_NUM_THREADS, else physical cores "
                                                                         "minus loader workers]. On a busy machine "
                                                                         "--threads 1 can be many times faster.",
                                                show_default=False, rich_help_panel="Machine")]
TrainDevice = Annotated[Optional[str], typer.Option("--device", help="auto|cpu|cuda|cuda:N|mps; auto picks the GPU "
                                                                      "when there is one [default: auto].",
                                                     show_default=False, rich_help_panel="Machine")]
CacheImages = Annotated[Optional[str], typer.Option("--cache-images", help="Keep decoded images in memory: auto "
                                                                          "(when under 2 GiB) | on | off "
                                                                          "[default: auto].", show_default=False, rich_help_panel="Machine")]
Verify = Annotated[Optional[bool], typer.Option("--verify/--no-verify", help="Decode every image once up front and "
                                                                             "skip corrupt ones (always done when "
                                                                             "caching) [default: on].",
                                                show_default=False, rich_help_panel="Machine")]
TrainMaxPixels = Annotated[Optional[int], typer.Option("--max-pixels", min=1, help="Refuse images with more pixels "
                                                                                  "than this (decompression-bomb "
                                                                                  f"guard) [default: {DEFAULT_MAX_PIXELS}].",
                                                       show_default=False, rich_help_panel="Machine")]
TrainSeed = Annotated[Optional[int], typer.Option("--seed", help="Random seed; same inputs and options give the same "
                                                                 "records [default: 0].", show_default=False, rich_help_panel="Machine")]
Deterministic = Annotated[Optional[bool], typer.Option("--deterministic", help="Deterministic GPU kernels (slower); "
                                                                               "CPU runs repeat exactly anyway.",
                                                       show_default=False, rich_help_panel="Machine")]


def train_command(
    ctx: typer.Context,
    data: Data = None,
    arch: Annotated[Optional[str], typer.Option("--arch", "-a", help="Registry model to train from scratch "
                                                                   "[default: the task's: tiny_fcos, unet, c3d_small; "
                                                                   "required for classification] (see `cnntool "
                                                                   "models list`).", show_default=False, rich_help_panel="What to train")] = None,
    task: TaskOption = None, imgsz: TrainImgSize = None, arch_arg: ArchArg = None,
    out: Out = None, resume: Resume = None, overwrite: Overwrite = False, val_split: ValSplit = None,
    epochs: Epochs = None, batch_size: Batch = None, accumulate: Accumulate = None, optimizer: Optimizer = None,
    lr: Lr = None, momentum: Momentum = None, weight_decay: WeightDecay = None, schedule: Schedule = None,
    lr_step: LrStep = None, gamma: Gamma = None, plateau_patience: PlateauPatience = None,
    warmup_epochs: Warmup = None, label_smoothing: Smoothing = None, dice_weight: DiceWeight = None,
    balance: Balance = None, mixup: Mixup = None,
    cutmix: Cutmix = None,
    grad_clip: GradClip = None, patience: Patience = None, ema: Ema = None, init: Init = None,
    augment: Augment = None, rotate: Rotate = None, shift: Shift = None, zoom: Zoom = None, shear: Shear = None,
    crop_scale: CropScale = None, crop_ratio: CropRatio = None, hflip: Hflip = None, vflip: Vflip = None,
    color_jitter: ColorJitter = None, auto_augment: AutoAugment = None, erasing: Erasing = None,
    device: TrainDevice = None, amp: Amp = None, channels_last: ChannelsLast = None, workers: LoaderWorkers = None,
    threads: Threads = None, cache_images: CacheImages = None, verify: Verify = None,
    max_pixels: TrainMaxPixels = None, seed: TrainSeed = None, deterministic: Deterministic = None,
    tensorboard: Tensorboard = None, config: Config = None, format: Format = None, quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Train a model from scratch: a classifier, detector, segmenter or video classifier.

    The task comes from --task, else the model, else the dataset's layout. Writes best.pt,
    last.pt, config.json, metrics.csv/.jsonl, curves.png and the task's figures to the run
    folder and prints one summary record. Multi-GPU or multi-process: run it under torchrun
    (torchrun --nproc_per_node=2 -m cnntool train ...).

    Examples:

    \b
      cnntool train samples/digits --arch lenet5
      cnntool train photos/ --arch resnet18 --imgsz 128 --hflip --crop-scale 0.08,1 --mixup 0.2
      cnntool train shapes-coco/ --task detect
      cnntool train shapes-masks/ --task segment --arch-arg width=16
      cnntool train --resume runs/lenet5-1 --epochs 80 --device cpu
    """
    return _run(_with_recipe_file(locals()), init_from=None)


def finetune_command(
    ctx: typer.Context,
    data: Data = None,
    init_from: Annotated[Optional[str], typer.Option("--from", help="Start from NAME:WEIGHTS (pretrained, e.g. "
                                                                   "resnet18:DEFAULT) or a cnntool checkpoint "
                                                                   "or run folder.", show_default=False, rich_help_panel="What to train")] = None,
    freeze: Annotated[Optional[str], typer.Option("--freeze", help="none (train everything) | backbone (the new "
                                                                   "head only) | N (the head and the last N blocks) "
                                                                   "[default: none].", show_default=False, rich_help_panel="Fine-tuning")] = None,
    backbone_lr_scale: Annotated[Optional[float], typer.Option("--backbone-lr-scale", min=0.0,
                                                               help="Backbone learning rate = lr x this "
                                                                    "[default: 0.1].", show_default=False, rich_help_panel="Fine-tuning")] = None,
    task: TaskOption = None, imgsz: TrainImgSize = None,
    out: Out = None, resume: Resume = None, overwrite: Overwrite = False, val_split: ValSplit = None,
    epochs: Epochs = None, batch_size: Batch = None, accumulate: Accumulate = None, optimizer: Optimizer = None,
    lr: Lr = None, momentum: Momentum = None, weight_decay: WeightDecay = None, schedule: Schedule = None,
    lr_step: LrStep = None, gamma: Gamma = None, plateau_patience: PlateauPatience = None,
    warmup_epochs: Warmup = None, label_smoothing: Smoothing = None, dice_weight: DiceWeight = None,
    balance: Balance = None, mixup: Mixup = None,
    cutmix: Cutmix = None,
    grad_clip: GradClip = None, patience: Patience = None, ema: Ema = None,
    augment: Augment = None, rotate: Rotate = None, shift: Shift = None, zoom: Zoom = None, shear: Shear = None,
    crop_scale: CropScale = None, crop_ratio: CropRatio = None, hflip: Hflip = None, vflip: Vflip = None,
    color_jitter: ColorJitter = None, auto_augment: AutoAugment = None, erasing: Erasing = None,
    device: TrainDevice = None, amp: Amp = None, channels_last: ChannelsLast = None, workers: LoaderWorkers = None,
    threads: Threads = None, cache_images: CacheImages = None, verify: Verify = None,
    max_pixels: TrainMaxPixels = None, seed: TrainSeed = None, deterministic: Deterministic = None,
    tensorboard: Tensorboard = None, config: Config = None, format: Format = None, quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Fine-tune a pretrained model or a cnntool checkpoint on new classes (transfer learning).

    The head layers named by the registry entry are replaced for DATA's classes (a detector's
    box predictor or classification head, a segmenter's classifiers); --freeze picks what
    trains; the backbone learns at --backbone-lr-scale times the head's rate. Same outputs as
    `cnntool train`.

    Examples:

    \b
      cnntool finetune flowers/ --from resnet18:DEFAULT --freeze backbone
      cnntool finetune letters/ --from runs/lenet5-1/best.pt --freeze 2 --epochs 20
      cnntool finetune boxes/ --from fasterrcnn_mobilenet_v3_large_320_fpn:COCO_V1 --task detect
    """
    if resume is None and not init_from and config is None:
        raise UsageError("--from is required",
                         hint="e.g. --from resnet18:DEFAULT (pretrained) or --from runs/NAME/best.pt")
    options = _with_recipe_file(locals())
    return _run(options, init_from=options.get("init_from") or init_from)


#: The command-line option (parameter name) of each TrainConfig / AugmentConfig field whose
#: option is not named like the field. Every other field's option has the field's name; a test
#: checks that every field has its option, so a new field cannot be silently left out.
OPTION_OF_FIELD = {"cache": "cache_images", "arch_kwargs": "arch_arg", "brightness": "color_jitter",
                   "contrast": "color_jitter", "saturation": "color_jitter", "policy": "auto_augment"}
#: Fields that are not options: the dataset argument and the nested augmentation config.
NOT_OPTIONS = ("data", "aug")


def config_options() -> dict[str, str]:
    """``{field: option parameter}`` for every TrainConfig and AugmentConfig field."""
    import dataclasses

    from cnntool.data.transforms import AugmentConfig
    from cnntool.train.config import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_OPTIONS]
    names += [f.name for f in dataclasses.fields(AugmentConfig)]
    return {name: OPTION_OF_FIELD.get(name, name) for name in names}


def _run(options: dict, *, init_from: str | None) -> int:
    from cnntool.train.config import TrainConfig
    from cnntool.train.distributed import env_info
    from cnntool.train.runner import train

    dist = env_info()
    output = make_output(options["format"], options["quiet"] or not dist.is_main, options["verbose"])
    resume = options["resume"]
    if resume is None and options["data"] is None:
        raise UsageError("no dataset folder given", hint="cnntool train DATA --arch NAME (or --resume RUN_FOLDER)")
    if resume is not None:
        cfg, overrides = TrainConfig(), _resume_overrides(options)
    else:
        cfg, overrides = _config(options, init_from), None
    summary = train(cfg, resume=str(resume) if resume is not None else None,
                    overwrite=bool(options["overwrite"]), overrides=overrides, messages=output)
    if dist.is_main and summary:
        output.emit_one(summary)
        output.close()
    # some images were unreadable: the run is complete, but not every input was used (exit 1)
    return 1 if summary and summary.get("skipped") else 0


def _with_recipe_file(options: dict) -> dict:
    """``--config recipe.toml`` fills every option not given on the command line.

    Keys are option names, with dashes or underscores (``lr``, ``weight-decay``, ``hflip``,
    ``crop-scale = "0.08,1"``, ``arch-arg = ["depth=5"]``); an unknown key or a value of the
    wrong type is a usage error naming it.
    """
    path = options.get("config")
    if path is None:
        return options
    import tomllib

    from cnntool.cli._options import given_options
    from cnntool.errors import did_you_mean

    ctx = options["ctx"]
    try:
        recipe = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"--config {path} is not a TOML file: {str(exc).splitlines()[0]}") from None
    params = {p.name: p for p in ctx.command.params}
    given = given_options(ctx)
    merged = dict(options)
    for key, value in recipe.items():
        name = key.replace("-", "_")
        if name == "from":
            name = "init_from"
        if name not in params or name in ("ctx", "config", "resume", "format", "quiet", "verbose"):
            raise UsageError(f"--config {path}: unknown option {key!r}",
                             hint=did_you_mean(name, [n for n in params if n not in ("ctx", "config")]))
        if name in given:
            continue  # the command line wins
        try:
            merged[name] = params[name].process_value(ctx, value)
        except Exception as exc:  # click's BadParameter and friends
            raise UsageError(f"--config {path}: bad value for {key}: {value!r} ({str(exc).splitlines()[0]})") from None
    return merged


def _resume_overrides(o: dict) -> dict:
    """Every option given with --resume, for :meth:`TrainConfig.resumed` to take or refuse
    (recipe options first, so a refusal names one of them)."""
    from cnntool.train.config import MACHINE_OPTIONS

    values = _field_values(o, None)
    recipe = [name for name in values if name not in (*MACHINE_OPTIONS, "epochs")]
    overrides = {name: values[name] for name in (*recipe, *MACHINE_OPTIONS, "epochs") if name in values}
    if o.get("overwrite"):
        overrides = {"overwrite": True, **overrides}
    if o["data"] is not None:
        overrides["data"] = str(o["data"])
    return overrides


def _field_values(o: dict, init_from: str | None) -> dict:
    """The config fields the user gave (options left out are absent), converted; augmentation
    fields keep their own names (``rotate``, ``brightness``...)."""
    converters = {"crop_scale": lambda v: _pair(v, "--crop-scale", unit=True),
                  "crop_ratio": lambda v: _pair(v, "--crop-ratio", unit=False),
                  "imgsz": parse_imgsz, "arch_kwargs": _arch_args, "out": str,
                  "arch": str.lower, "optimizer": str.lower, "schedule": str.lower, "init": str.lower,
                  "cache": str.lower, "policy": str.lower, "balance": str.lower}
    values = {}
    for name, option in config_options().items():
        value = o.get(option)
        if value is None or (option == "arch_arg" and not value):
            continue
        values[name] = converters.get(name, lambda v: v)(value)
    if init_from is not None:
        values["init_from"] = init_from
    return values


def _config(o: dict, init_from: str | None):
    import dataclasses

    from cnntool.data.transforms import AugmentConfig
    from cnntool.train.config import TrainConfig

    values = _field_values(o, init_from)
    aug_names = {f.name for f in dataclasses.fields(AugmentConfig)}
    aug = AugmentConfig(**{k: v for k, v in values.items() if k in aug_names})
    top = {k: v for k, v in values.items() if k not in aug_names}
    top.setdefault("max_pixels", DEFAULT_MAX_PIXELS)
    return dataclasses.replace(TrainConfig(), data=str(o["data"]), aug=aug, **top).validate()


def _pair(text: str, flag: str, *, unit: bool):
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"bad {flag} {text!r}", hint="two numbers MIN,MAX, e.g. 0.08,1") from None
    if unit and not 0.0 < low <= high <= 1.0:
        raise UsageError(f"bad {flag} {text!r}", hint="need 0 < MIN <= MAX <= 1")
    if not unit and not 0.0 < low <= high:
        raise UsageError(f"bad {flag} {text!r}", hint="need 0 < MIN <= MAX")
    return (low, high)


def _arch_args(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs; values parse as JSON when they can (numbers, true/false), else text."""
    import json

    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"bad --arch-arg {pair!r}", hint="KEY=VALUE, e.g. depth=5")
        try:
            result[key.strip()] = json.loads(value)
        except ValueError:
            result[key.strip()] = value
    return result

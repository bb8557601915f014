"""``cnntool explain``: why did the model say that? Heatmaps, feature maps, kernels, maximisation.

Thin: parse options, load the model, build the :class:`~cnntool.infer.explain.Explainer`, emit
records. The record schema is documented in :mod:`cnntool.infer.explain`.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cnntool.cli._options import (
    BatchSize,
    Device,
    Format,
    ImgSize,
    Inputs,
    MaxPixels,
    Model,
    OutDir,
    Overwrite,
    Quiet,
    Seed,
    Verbose,
    Workers,
    default_workers,
    make_output,
)
from cnntool.data.limits import DEFAULT_MAX_PIXELS

Method = Annotated[str, typer.Option(
    "--method",
    help="cam | gradcam | gradcam++ | xgradcam | hirescam | layercam | scorecam | eigencam "
         "(heatmaps); featuremaps (a layer's activation maps); kernels (the first convolution's "
         "kernels); maximize (the input that maximises --channel of --layer).",
)]
Layer = Annotated[Optional[str], typer.Option(
    "--layer", help="Target layer, a dotted module name [default: the model's cam_layer; first_conv for kernels].")]
Target = Annotated[Optional[str], typer.Option(
    "--target", help="Class to explain, by name or index [default: each image's predicted class].")]
Score = Annotated[bool, typer.Option(
    "--score", help="Add a faithfulness score per image (confidence drop when the hot pixels are removed; "
                    "higher road is better) and a per-method summary record.")]
Channel = Annotated[int, typer.Option("--channel", min=0, help="maximize: the channel of --layer.")]
Steps = Annotated[int, typer.Option("--steps", min=1, help="maximize: gradient-ascent steps.")]
MaxMaps = Annotated[int, typer.Option("--max-maps", min=1, help="featuremaps: channels shown per image.")]
AugSmooth = Annotated[bool, typer.Option(
    "--aug-smooth", help="Average over flips and brightness changes (6x the work; smoother maps).")]
EigenSmooth = Annotated[bool, typer.Option(
    "--eigen-smooth", help="Use the first principal component of the weighted activations (less noise).")]


def explain_command(
    ctx: typer.Context,
    inputs: Inputs = None,
    model: Model = ...,
    method: Method = "gradcam",
    layer: Layer = None,
    target: Target = None,
    score: Score = False,
    channel: Channel = 0,
    steps: Steps = 256,
    max_maps: MaxMaps = 64,
    aug_smooth: AugSmooth = False,
    eigen_smooth: EigenSmooth = False,
    out: OutDir = None,
    overwrite: Overwrite = False,
    imgsz: ImgSize = None,
    batch_size: BatchSize = 16,
    workers: Workers = 0,
    device: Device = "auto",
    seed: Seed = 0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    format: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> int:
    """Explain a classifier's decisions: Grad-CAM and friends over folders of images.

    Writes, per image, an overlay PNG and the heatmap .npy under -o, and one record with the
    class, its score, the heatmap's peak and the box around its hot region.

    \b
    Examples:
      cnntool explain photos/ -m runs/cats/best.pt -o cams/
      cnntool explain cat.jpg -m resnet18:DEFAULT --method gradcam++ --target "tabby"
      cnntool explain photos/ -m runs/cats/best.pt --method scorecam --score
      cnntool explain cat.jpg -m resnet18:DEFAULT --method featuremaps --layer layer1 -o maps/
      cnntool explain -m alexnet:DEFAULT --method kernels -o figs/
      cnntool explain -m vgg16:DEFAULT --method maximize --layer features.28 --channel 7 -o figs/
    """
    from dataclasses import replace

    from cnntool.cli._options import refuse_unused
    from cnntool.data.sources import resolve_inputs
    from cnntool.device import resolve_device
    from cnntool.errors import UsageError
    from cnntool.infer.explain import (
        METHOD_OPTIONS,
        MODEL_METHODS,
        ExplainConfig,
        Explainer,
        RunOptions,
        canonical,
        explain_inputs,
        explain_model,
    )
    from cnntool.models.loading import load

    out_dir = out
    out = make_output(format, quiet, verbose)
    method = canonical(method)
    refuse_unused(ctx, {"method", "out", *METHOD_OPTIONS[method]}, what=f"--method {method}")
    if method in MODEL_METHODS:
        if out_dir is None:
            raise UsageError(f"--method {method} writes an image: give -o DIR")
        if inputs:
            raise UsageError(f"--method {method} looks at the model only: give no inputs",
                             hint=f"cnntool explain -m MODEL --method {method} -o DIR")
    elif not inputs:
        raise UsageError("give images to explain", hint="files, folders, globs, @list.txt or -")

    import torch

    torch.manual_seed(seed)
    from cnntool.cli._options import with_imgsz

    loaded = with_imgsz(load(model, task="classification", device=str(resolve_device(device))), imgsz)
    config = ExplainConfig(method=method, layer=layer, target=target, score=score, aug_smooth=aug_smooth,
                           eigen_smooth=eigen_smooth, batch_size=batch_size, max_maps=max_maps, channel=channel)
    config = replace(config, maximize=replace(config.maximize, steps=steps, seed=seed))
    explainer = Explainer(loaded, config)
    if loaded.random_weights:  # after every usage check: a refusal comes first
        out.warn(f"{model} has random weights (no checkpoint or pretrained weights): its explanations mean nothing")
    out.debug(f"explain: {method} on {loaded.entry.name} layer {explainer.layer}, device {explainer.device}")

    from cnntool.models.loading import model_identity

    model_id = model_identity(model, seed=seed)
    if method in MODEL_METHODS:
        out.emit(explain_model(model, explainer, out_dir, overwrite=overwrite, model_id=model_id))
        out.close()
        return out.exit_code

    from cnntool.data.sources import require_inputs
    from cnntool.data.writers import skipped_message

    items = resolve_inputs(inputs, exclude=out_dir)
    require_inputs(items, inputs)
    options = RunOptions(out_dir=out_dir, overwrite=overwrite, workers=default_workers(workers),
                         max_pixels=max_pixels, model_id=model_id)
    records = explain_inputs(items, explainer, options)
    skipped = 0
    scores: list[dict] = []
    for record in out.progress(records, total=len(items), desc=method):
        skipped += bool(record.get("skipped"))
        if record.get("faithfulness"):
            scores.append(record["faithfulness"])
        out.emit(record)
    if score:
        summary = _score_summary(method, scores)
        out.emit_summary(summary)
        out.log(f"{method}: mean road {summary['road']:.4f} over {len(scores)} images "
                f"(morf {summary['morf']:.4f}, lerf {summary['lerf']:.4f}); {summary['better']}"
                if scores else f"{method}: no image was scored")
    out.close()
    if skipped:
        out.log(skipped_message(skipped))
    out.summary("images")
    return out.exit_code


def _score_summary(method: str, scores: list[dict]) -> dict:
    """The method's mean faithfulness over the images: compare methods on the same data by it."""
    import numpy as np

    means = {k: float(np.mean([s[k] for s in scores])) if scores else None for k in ("road", "morf", "lerf")}
    return {"method": method, "images": len(scores), **means,
            "better": "higher road is more faithful (removing the hot pixels lowers the score more than "
                      "removing the cold ones)"}

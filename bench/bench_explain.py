"""Benchmark: cnntool's CAM core against calling pytorch-grad-cam directly.

Same model (ResNet-18, random init, seeded), same target layer (``layer4``), same images
(seeded noise at 224 x 224), same batch size, same targets (each image's predicted class), on
the CPU, in one process. pytorch-grad-cam back-propagates through the whole network and fills
every parameter's ``.grad``; cnntool freezes the parameters and stops the backward pass at the
target layer. Both are timed over the same batches (after one warm-up batch each), alternating
rounds so that background load hits both alike; the best round of each is reported, and the
heatmaps are checked to agree.

Usage: python bench/bench_explain.py [--images 32] [--batch-size 8] [--size 224] [--rounds 3]
       [--method gradcam] [--threads N]
"""

from __future__ import annotations

import argparse
import time

#: cnntool method -> pytorch-grad-cam class.
ORACLE = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM",
          "hirescam": "HiResCAM", "layercam": "LayerCAM", "eigencam": "EigenCAM"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--method", default="gradcam", choices=sorted(ORACLE))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    args = parser.parse_args()

    import numpy as np
    import pytorch_grad_cam
    import torch
    import torchvision

    from cnntool.infer.cam import compute_cams

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(args.images, 3, args.size, args.size, generator=generator)
    batches = list(images.split(args.batch_size))
    oracle = getattr(pytorch_grad_cam, ORACLE[args.method])(model, [model.layer4])

    def ours(batch):
        return compute_cams(model, batch, layer="layer4", method=args.method).heatmaps

    def theirs(batch):
        out = oracle(batch, None)
        model.zero_grad(set_to_none=True)
        return out

    def timed(fn):
        start = time.perf_counter()
        maps = [fn(b) for b in batches]
        return time.perf_counter() - start, np.concatenate(maps)

    ours(batches[0]), theirs(batches[0])  # warm-up
    best = {"cnntool": float("inf"), "pytorch-grad-cam": float("inf")}
    maps = {}
    for _ in range(args.rounds):
        for name, fn in (("cnntool", ours), ("pytorch-grad-cam", theirs)):
            seconds, maps[name] = timed(fn)
            best[name] = min(best[name], seconds)
    diff = float(np.abs(maps["cnntool"] - maps["pytorch-grad-cam"]).max())

    print(f"{args.method} on resnet18 (layer4), {args.images} images of {args.size}x{args.size}, "
          f"batch {args.batch_size}, CPU, {torch.get_num_threads()} threads, best of {args.rounds}")
    for name, seconds in best.items():
        print(f"  {name:17s} {args.images / seconds:7.2f} heatmaps/s  ({seconds:.2f} s)")
    print(f"  speed-up          {best['pytorch-grad-cam'] / best['cnntool']:7.2f}x")
    print(f"  max |difference|  {diff:.2e}")


if __name__ == "__main__":
    main()

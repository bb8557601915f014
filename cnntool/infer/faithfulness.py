"""How faithful a heatmap is to the model: a ROAD-style confidence-drop score.

Remove the most (MoRF) or least (LeRF) relevant pixels by a heatmap, fill them in from the kept
ones, and measure how much the class's probability drops; a faithful heatmap makes MoRF drop it
a lot and LeRF little, so ``road = (lerf - morf) / 2`` is higher for more faithful heatmaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnntool.infer.hooks import frozen, model_logits

#: Fractions of the pixels removed by :func:`faithfulness_scores`, most (MoRF) or least (LeRF)
#: relevant first.
ROAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


def faithfulness_scores(model, x, heatmaps, targets, *, fractions: Sequence[float] = ROAD_FRACTIONS,
                        batch_size: int = 64, before=None) -> dict[str, np.ndarray]:
    """ROAD-style confidence changes when the most or least relevant pixels are removed.

    For each fraction f, the f most relevant pixels of each image (ranked by its heatmap; MoRF)
    are removed, and so are the f least relevant ones (LeRF); removed pixels are filled in from
    the kept ones (:func:`fill_from_kept`). The change in the softmax probability of the target
    class is averaged over the fractions. A faithful heatmap loses much confidence under MoRF
    and little under LeRF.

    Parameters
    ----------
    model : torch.nn.Module
    x : torch.Tensor
        (N, C, H, W) preprocessed inputs.
    heatmaps : array-like
        (N, H, W) heatmaps at the input size.
    targets : sequence of int
        Class per image.
    fractions : sequence of float
        Fractions of the pixels removed.
    batch_size : int
        Perturbed images per forward pass.
    before : array-like, optional
        (N,) the target classes' probabilities for ``x`` when already known (a CAM pass has
        them); None computes them.

    Returns
    -------
    dict
        ``morf`` and ``lerf``: mean probability change (after - before), (N,) each;
        ``road``: ``(lerf - morf) / 2`` (pytorch-grad-cam's ROADCombined; higher is more faithful).

    Notes
    -----
    ROAD (Rong et al., 2022) fills removed pixels by noisy linear imputation, a sparse solve per
    image and fraction. Push-pull interpolation (a pyramid fill, linear time and batched) is the
    fast stand-in here: like ROAD it fills smoothly from the surrounding kept pixels, so the
    shape of the removed region says little, but its numbers are not published ROAD numbers.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    >>> out = faithfulness_scores(net, torch.randn(2, 3, 8, 8), np.random.rand(2, 8, 8), [0, 1])
    >>> sorted(out), out["road"].shape
    (['lerf', 'morf', 'road'], (2,))
    """
    import torch

    n, _, h, w = x.shape
    targets = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=x.device)
    heat = torch.as_tensor(np.asarray(heatmaps, dtype=np.float32), device=x.device).reshape(n, -1)
    with frozen(model), torch.no_grad():
        if before is None:
            before = _target_probability(model, x, targets, batch_size)
        else:
            before = torch.as_tensor(np.asarray(before, dtype=np.float32), device=x.device)
        order = torch.argsort(heat, dim=1, descending=True, stable=True)  # most relevant first
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(h * w, device=x.device).expand(n, -1))
        changes = {"morf": [], "lerf": []}
        for fraction in fractions:
            k = int(round(fraction * h * w))
            most = (ranks < k).reshape(n, 1, h, w)
            least = (ranks >= h * w - k).reshape(n, 1, h, w)
            for key, removed in (("morf", most), ("lerf", least)):
                perturbed = fill_from_kept(x, ~removed)
                after = _target_probability(model, perturbed, targets, batch_size)
                changes[key].append(after - before)
    morf = torch.stack(changes["morf"]).mean(0).cpu().numpy()
    lerf = torch.stack(changes["lerf"]).mean(0).cpu().numpy()
    return {"morf": morf, "lerf": lerf, "road": (lerf - morf) / 2}


def fill_from_kept(x, keep):
    """Replace the pixels where ``keep`` is False by a smooth fill from the kept ones (push-pull).

    The kept pixels are averaged down an image pyramid (each level the mean of the kept pixels
    below it), then the coarse means are interpolated back up into the holes. Kept pixels are
    returned unchanged.

    Parameters
    ----------
    x : torch.Tensor
        (N, C, H, W).
    keep : torch.Tensor
        bool (N, 1, H, W).

    Returns
    -------
    torch.Tensor
        A new (N, C, H, W) tensor.

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4); keep = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    >>> keep[0, 0, 1:3, 1:3] = False
    >>> out = fill_from_kept(x, keep)
    >>> bool((out[keep.expand_as(x)] == x[keep.expand_as(x)]).all()), 0 < float(out[0, 0, 1, 1]) < 15
    (True, True)
    """
    import torch
    import torch.nn.functional as F

    weight = keep.to(x.dtype)
    if x.shape[-1] <= 1 and x.shape[-2] <= 1:
        total = weight.sum(dim=(2, 3), keepdim=True)
        return (x * weight).sum(dim=(2, 3), keepdim=True) / total.clamp(min=1.0)
    num = F.avg_pool2d(x * weight, 2, ceil_mode=True)
    den = F.avg_pool2d(weight, 2, ceil_mode=True)
    coarse_keep = den > 0
    coarse = num / den.clamp(min=1e-12)
    filled = fill_from_kept(coarse, coarse_keep)
    up = F.interpolate(filled, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(keep, x, up)


def _target_probability(model, x, targets, batch_size: int):
    import torch

    probs = []
    for start in range(0, x.shape[0], batch_size):
        logits = model_logits(model(x[start:start + batch_size]))
        p = torch.softmax(logits.float(), dim=1)
        probs.append(p.gather(1, targets[start:start + batch_size, None])[:, 0])
    return torch.cat(probs)

"""Batch augmentations that mix images and their labels: mixup and cutmix.

Geometric and colour augmentation of single images lives in the data layer
(:class:`cnntool.data.transforms.TrainTransform`); these act on a whole normalised batch on
the training device. The loss of a mixed batch is ``lam * loss(y) + (1 - lam) * loss(y[perm])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Mixer:
    """Mixup (Zhang et al., 2018) and/or CutMix (Yun et al., 2019) on a batch.

    Parameters
    ----------
    mixup : float
        Beta(alpha, alpha) for the mixing weight; 0 turns mixup off.
    cutmix : float
        Beta(alpha, alpha) for the pasted box's area; 0 turns cutmix off. With both on, each
        batch uses one of the two, chosen with equal odds.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> x, y = torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    >>> mixed, y_a, y_b, lam = Mixer(mixup=0.2)(x, y)
    >>> mixed.shape, 0.0 <= lam <= 1.0
    (torch.Size([4, 1, 8, 8]), True)
    """

    mixup: float = 0.0
    cutmix: float = 0.0

    @property
    def active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, images, labels):
        """Returns ``(mixed images, labels, labels of the partner images, lam)``.

        Randomness comes from torch's global generator (saved in checkpoints for ``--resume``).
        """
        import torch

        perm = torch.randperm(images.shape[0]).to(images.device)
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or torch.rand(()).item() < 0.5)
        if use_cutmix:
            lam = _beta(self.cutmix)
            mixed, lam = cutmix_images(images, perm, lam)
        else:
            lam = _beta(self.mixup)
            mixed = images.mul(lam).add_(images[perm], alpha=1.0 - lam)
        return mixed, labels, labels[perm], lam


def cutmix_images(images, perm, lam: float):
    """Paste a box from ``images[perm]`` covering about ``1 - lam`` of the area.

    Returns the new batch and ``lam`` corrected to the box actually pasted (after clipping
    at the border).
    """
    import torch

    _, _, height, width = images.shape
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy = int(torch.randint(height, ()).item())
    cx = int(torch.randint(width, ()).item())
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[perm][:, :, top:bottom, left:right]
    lam = 1.0 - (bottom - top) * (right - left) / float(height * width)
    return mixed, lam


def _beta(alpha: float) -> float:
    import torch

    return float(torch.distributions.Beta(alpha, alpha).sample(()).item())

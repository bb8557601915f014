"""Class activation maps on one efficient core: CAM, Grad-CAM and its relatives.

Every method is a closed form of the target layer's activations ``A`` (N, C, h, w) and, for the
gradient methods, the gradients ``G = d score_c / d A``:

==============  ===========================================================================
``cam``         ``sum_k w_ck A_k`` with ``w`` the Linear head after global average pooling
``gradcam``     ``sum_k mean(G_k) A_k``
``gradcam++``   ``sum_k (sum_ij relu(G_k) a_kij) A_k``, ``a = G^2 / (2 G^2 + sum(A_k) G^3)``
``xgradcam``    ``sum_k (sum_ij G_k A_k / sum(A_k)) A_k``
``hirescam``    ``sum_k G_k * A_k`` (element-wise, no averaging)
``layercam``    ``sum_k relu(G_k) * A_k``
``scorecam``    ``sum_k softmax_k(score_c(x * norm(up(A_k)))) A_k`` (batched masked forwards)
``eigencam``    projection of the centred ``A`` on its first principal component (no gradient)
==============  ===========================================================================

then ReLU, min-max normalisation per image, bilinear upsampling to the input size, and a second
min-max normalisation: exactly the definitions and defaults of pytorch-grad-cam (MIT), which the
tests use as an oracle (same heatmap to 1e-4), including ``aug_smooth`` (horizontal flip x
brightness 0.9/1/1.1, averaged) and ``eigen_smooth`` (first principal component of the weighted
activations instead of their sum).

What makes it fast: the parameters are frozen, the layers before the target layer run in
inference mode, a forward hook makes the target layer's output the only tensor that requires
grad, and ``torch.autograd.grad(scores, activation)`` stops the backward pass at that layer; no
parameter gradient is ever computed. A batch of images goes through one forward pass and a
backward pass through the layers after the target only. Eigen-CAM needs no gradient, Score-CAM
runs its masked images through the model in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cnntool.errors import UsageError
from cnntool.infer.hooks import LayerTap, forward_recording_from, frozen, model_logits, resolve_layer

#: Heatmap methods, in the order the docs list them.
CAM_METHODS = ("cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "scorecam", "eigencam")
#: Methods that need the gradient of the target score with respect to the layer's activations.
GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam")
#: Other spellings accepted for ``method``.
METHOD_ALIASES = {"gradcampp": "gradcam++", "grad-cam": "gradcam", "grad-cam++": "gradcam++",
                  "score-cam": "scorecam", "eigen-cam": "eigencam", "xgrad-cam": "xgradcam",
                  "layer-cam": "layercam", "hires-cam": "hirescam"}

# pytorch-grad-cam's constants, kept so that the heatmaps agree with it.
_NORM_EPS = 1e-7  # scale_cam_image: x / (eps + max)
_GRADCAMPP_EPS = 1e-6
_XGRADCAM_EPS = 1e-7
_SCORECAM_EPS = 1e-8
#: aug_smooth: every combination of these flips and brightness factors, averaged.
AUG_FLIPS = (False, True)
AUG_FACTORS = (1.0, 0.9, 1.1)



@dataclass
class CamBatch:
    """What :func:`compute_cams` returns for a batch of N images.

    Attributes
    ----------
    heatmaps : numpy.ndarray
        float32 (N, H, W) in [0, 1] at the model's input size.
    logits : numpy.ndarray
        float32 (N, K) class scores of the unaugmented images.
    targets : numpy.ndarray
        int64 (N,) the class each heatmap explains.
    """

    heatmaps: np.ndarray
    logits: np.ndarray
    targets: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of :attr:`logits`."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def canonical_method(method: str, choices: Sequence[str] = CAM_METHODS, *, option: str = "method") -> str:
    """The canonical name of ``method`` (case-insensitive, aliases allowed), or :class:`UsageError`.

    ``option`` names the method in the error (``unknown --method 'x'`` for the command line).

    Examples
    --------
    >>> canonical_method("GradCAMpp")
    'gradcam++'
    """
    key = method.lower()
    key = METHOD_ALIASES.get(key, key)
    if key not in choices:
        raise UsageError(f"unknown {option} {method!r}", hint="use one of: " + ", ".join(choices))
    return key


def check_targets(targets, num_classes: int):
    """Raise :class:`UsageError` for a target class outside ``0..num_classes-1``."""
    for t in np.atleast_1d(np.asarray(targets)):
        if not 0 <= int(t) < num_classes:
            raise UsageError(f"target class {int(t)} is out of range: the model has {num_classes} classes",
                             hint=f"give an index 0..{num_classes - 1} or a class name")


def compute_cams(model, x, *, layer: str, method: str = "gradcam", targets=None, head: str | None = None,
                 aug_smooth: bool = False, eigen_smooth: bool = False, score_batch_size: int = 64) -> CamBatch:
    """Heatmaps of ``method`` for a batch of preprocessed images.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning (N, K) scores. Used in eval mode with frozen parameters (both
        restored afterwards).
    x : torch.Tensor
        (N, C, H, W) preprocessed inputs, on the model's device.
    layer : str
        Dotted name of the target layer (``layer4``, ``features.29``).
    method : str
        One of :data:`CAM_METHODS`.
    targets : int, sequence of int or None
        Class per image (one int for all); None explains each image's predicted class.
    head : str, optional
        Dotted name of the Linear head after global average pooling (``cam`` only).
    aug_smooth, eigen_smooth : bool
        pytorch-grad-cam's smoothing options (both off by default, as there).
    score_batch_size : int
        Masked images per forward pass for ``scorecam``.

    Returns
    -------
    CamBatch

    Raises
    ------
    UsageError
        Unknown layer or method, a layer that is not a feature map, a target out of range, or
        ``cam`` on a network whose layer does not feed global average pooling and a Linear head.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> out = compute_cams(net, torch.randn(2, 3, 8, 8), layer="1", method="gradcam")
    >>> out.heatmaps.shape
    (2, 8, 8)
    """
    import torch

    method = canonical_method(method)
    module = resolve_layer(model, layer)
    if method == "cam" and not head:
        raise UsageError("CAM needs the name of the Linear head", hint="the registry entry's head")
    with frozen(model):
        fixed = None if targets is None else np.broadcast_to(np.asarray(targets, dtype=np.int64), (x.shape[0],))
        parts, logits = [], None
        for flip, factor in _augmentations(aug_smooth):  # the first one is the unaugmented batch
            xa = x.flip(-1) if flip else x
            xa = xa * factor if factor != 1.0 else xa
            cam, out, fixed = _cam_once(model, module, layer, xa, fixed, method=method, head=head,
                                        eigen_smooth=eigen_smooth, score_batch_size=score_batch_size)
            logits = out if logits is None else logits
            parts.append(cam.flip(-1) if flip else cam)
        heatmaps = parts[0] if len(parts) == 1 else torch.stack(parts).mean(0)
    return CamBatch(heatmaps=heatmaps.cpu().numpy().astype(np.float32, copy=False),
                    logits=logits.detach().float().cpu().numpy(),
                    targets=fixed.cpu().numpy().astype(np.int64))


def _augmentations(aug_smooth: bool):
    if not aug_smooth:
        return [(False, 1.0)]
    return [(flip, factor) for flip in AUG_FLIPS for factor in AUG_FACTORS]


def _resolve_targets(logits, targets):
    """Each image's target class: the given ones (checked against the number of classes) or the
    predicted ones."""
    import torch

    if targets is None:
        return logits.detach().argmax(dim=1)
    if torch.is_tensor(targets):
        return targets
    check_targets(targets, logits.shape[1])
    return torch.as_tensor(np.array(targets), device=logits.device)


def _cam_once(model, module, layer, x, targets, *, method, head, eigen_smooth, score_batch_size):
    """One method on one (possibly augmented) batch: (N, H, W) normalised heatmaps, logits, targets."""
    import torch

    grad_needed = method in GRADIENT_METHODS
    with LayerTap(module, layer, grad=grad_needed) as tap:
        if grad_needed:
            logits = model_logits(forward_recording_from(model, tap, x))
        else:
            with torch.inference_mode():
                logits = model_logits(tap.run(model, x))
        with torch.enable_grad() if grad_needed else torch.no_grad():
            targets = _resolve_targets(logits, targets)
            acts = tap.activation
            grads = None
            if grad_needed:
                scores = logits.gather(1, targets[:, None]).sum()
                (grads,) = torch.autograd.grad(scores, acts, allow_unused=True)
                if grads is None:
                    raise UsageError(f"the class scores do not depend on layer {layer!r}",
                                     hint="pick a layer before the head")
                acts = acts.detach()
            logits = logits.detach()
    _check_map_size(acts, layer)
    with torch.no_grad():
        if method == "cam":
            acts, weights = cam_weights(model, acts, logits, targets, head=head, layer=layer)
            weighted = weights[:, :, None, None] * acts
        elif method == "scorecam":
            weights = scorecam_weights(model, x, acts, targets, batch_size=score_batch_size)
            weighted = weights[:, :, None, None] * acts
        elif method == "eigencam":
            weighted = None
        else:
            weighted = _weighted_activations(method, acts, grads)
        if method == "eigencam":
            cam = pca_projection(acts)
        elif eigen_smooth:
            cam = pca_projection(weighted)
        else:
            cam = weighted.sum(dim=1)
        return normalize_and_resize(cam, size=tuple(x.shape[-2:])), logits, targets


def check_method(model, x, *, layer: str, method: str, head: str | None = None, target: int | None = None) -> None:
    """Raise :class:`UsageError` when ``method`` cannot explain ``model`` at ``layer``; one forward pass.

    Checks that the layer exists, runs once per forward pass and outputs a feature map larger
    than 1 x 1, that the model returns class scores, that ``target`` is one of them, and for
    ``cam`` that the layer feeds global average pooling and the Linear ``head``.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    >>> check_method(net, torch.randn(1, 3, 8, 8), layer="0", method="cam", head="2")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cnntool.errors.UsageError: CAM does not apply: the head '2' takes 144 features but layer '0' has 4 channels ...
    """
    import torch

    method = canonical_method(method)
    module = resolve_layer(model, layer)
    with frozen(model), torch.no_grad(), LayerTap(module, layer) as tap:
        logits = model_logits(tap.run(model, x))
    if target is not None:
        check_targets([target], logits.shape[1])
    _check_map_size(tap.activation, layer)
    if method == "cam":
        if not head:
            raise UsageError("CAM needs the name of the Linear head", hint="the registry entry's head")
        cam_weights(model, tap.activation, logits, logits.argmax(1), head=head, layer=layer)


def _check_map_size(acts, layer: str) -> None:
    if acts.shape[-1] * acts.shape[-2] <= 1:
        raise UsageError(f"layer {layer!r} has a 1x1 feature map: its heatmap would be constant",
                         hint="pick an earlier layer with --layer")


def _weighted_activations(method: str, acts, grads):
    """Channel-weighted (or element-weighted) activations of the gradient methods."""
    import torch

    spatial = (2, 3)
    if method == "gradcam":
        weights = grads.mean(dim=spatial)
    elif method == "gradcam++":
        g2 = grads ** 2
        g3 = g2 * grads
        sum_acts = acts.sum(dim=spatial, keepdim=True)
        aij = g2 / (2 * g2 + sum_acts * g3 + _GRADCAMPP_EPS)
        aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
        weights = (torch.relu(grads) * aij).sum(dim=spatial)
    elif method == "xgradcam":
        sum_acts = acts.sum(dim=spatial, keepdim=True)
        weights = (grads * acts / (sum_acts + _XGRADCAM_EPS)).sum(dim=spatial)
    elif method == "hirescam":
        return grads * acts
    elif method == "layercam":
        return torch.relu(grads) * acts
    else:  # pragma: no cover - guarded by canonical_method
        raise ValueError(method)
    return weights[:, :, None, None] * acts


def cam_weights(model, acts, logits, targets, *, head: str, layer: str):
    """CAM's class weights from the Linear head, after checking the network really is GAP + Linear.

    The check is numeric: ``head(mean_ij(A))`` must reproduce the logits, with ``A`` the layer's
    output or its ReLU (DenseNet applies a functional ReLU before pooling). Returns the
    activations that are pooled and the (N, C) weights of each image's target class.
    """
    import torch
    import torch.nn as nn

    fc = resolve_layer(model, head)
    channels = acts.shape[1]
    hint = "CAM needs global average pooling then one Linear layer; use --method gradcam, which generalises it"
    if not isinstance(fc, nn.Linear):
        raise UsageError(f"CAM does not apply: the head {head!r} is a {type(fc).__name__}, not a Linear layer",
                         hint=hint)
    if fc.in_features != channels:
        raise UsageError(f"CAM does not apply: the head {head!r} takes {fc.in_features} features but layer "
                         f"{layer!r} has {channels} channels (not global average pooling then the head)",
                         hint=hint)
    for candidate in (acts, torch.relu(acts)):
        pooled = fc(candidate.mean(dim=(2, 3)))
        scale = float(logits.abs().max()) if logits.numel() else 1.0
        if torch.allclose(pooled, logits, rtol=1e-3, atol=1e-4 * max(1.0, scale)):
            return candidate, fc.weight[targets].to(acts.dtype)
    raise UsageError(f"CAM does not apply: layer {layer!r} is not followed by global average pooling "
                     f"and the head {head!r} alone", hint=hint)


def scorecam_weights(model, x, acts, targets, *, batch_size: int = 64):
    """Score-CAM's channel weights: softmax over channels of the target score of ``x`` masked by each
    normalised, upsampled activation map; masked images go through the model in batches."""
    import torch
    import torch.nn.functional as F

    n, channels = acts.shape[:2]
    size = tuple(x.shape[-2:])
    weights = torch.empty(n, channels, device=acts.device, dtype=torch.float32)
    for i in range(n):
        for start in range(0, channels, batch_size):
            chunk = acts[i, start:start + batch_size][:, None]
            up = F.interpolate(chunk, size=size, mode="bilinear", align_corners=True)[:, 0]
            flat = up.reshape(up.shape[0], -1)
            lo = flat.min(dim=1).values[:, None, None]
            hi = flat.max(dim=1).values[:, None, None]
            masks = (up - lo) / (hi - lo + _SCORECAM_EPS)
            masked = x[i][None] * masks[:, None]
            scores = model_logits(model(masked))[:, targets[i]]
            weights[i, start:start + batch_size] = scores.float()
    return torch.softmax(weights, dim=-1).to(acts.dtype)


def pca_projection(maps):
    """Each image's (C, h, w) maps projected on their first principal component: (N, h, w).

    Computed as pytorch-grad-cam's ``get_2d_projection`` does (NumPy's SVD of the centred
    (h*w, C) matrix), so the sign of the component is the same as there.
    """
    import torch

    arr = maps.detach().float().cpu().numpy()
    arr = np.nan_to_num(arr, nan=0.0)
    out = np.empty((arr.shape[0], *arr.shape[2:]), np.float32)
    for i, a in enumerate(arr):
        flat = a.reshape(a.shape[0], -1).T
        flat = flat - flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        out[i] = (flat @ vt[0]).reshape(a.shape[1:])
    return torch.from_numpy(out).to(maps.device)


def normalize_and_resize(cam, *, size: tuple[int, int]):
    """ReLU, min-max per image, bilinear resize to ``size`` (H, W), min-max again: (N, H, W)."""
    import torch.nn.functional as F

    cam = _minmax(cam.float().clamp(min=0))
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(cam.clamp(min=0))


def _minmax(cam):
    flat = cam.reshape(cam.shape[0], -1)
    cam = cam - flat.min(dim=1).values[:, None, None]
    return cam / (_NORM_EPS + cam.reshape(cam.shape[0], -1).max(dim=1).values[:, None, None])

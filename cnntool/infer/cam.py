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

import contextlib
import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cnntool.errors import UsageError

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

#: Fractions of the pixels removed by :func:`faithfulness_scores`, most (MoRF) or least (LeRF)
#: relevant first.
ROAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)


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


def resolve_layer(model, name: str):
    """The submodule called ``name`` (a dotted path from ``model.named_modules()``).

    Raises
    ------
    UsageError
        When there is no such layer; the hint lists the close names and the valid ones.

    Examples
    --------
    >>> import torch.nn as nn
    >>> resolve_layer(nn.Sequential(nn.Conv2d(1, 2, 3)), "0")
    Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))
    """
    from cnntool.models.surgery import get_layer

    if name:
        try:
            return get_layer(model, name)
        except KeyError:
            pass
    names = [n for n, _ in model.named_modules() if n]
    close = difflib.get_close_matches(name, names, n=5)
    shown = names if len(names) <= 40 else [n for n in names if n.count(".") <= 1][:40]
    hint = ""
    if close:
        hint += "close: " + ", ".join(close) + "; "
    hint += "valid layers" + (" include" if len(shown) < len(names) else "") + ": " + ", ".join(shown)
    if len(shown) < len(names):
        hint += f" ... ({len(names)} in all; `cnntool models summary` lists them)"
    raise UsageError(f"no layer {name!r} in this model", hint=hint)


@contextlib.contextmanager
def frozen(model) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter for the duration; both restored after."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    for p in params:
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


class _StopForward(Exception):
    """Raised by a tap to end a forward pass early once the layer's output is captured."""


class LayerTap:
    """A forward hook on one layer that keeps its output (N, C, h, w).

    Three ways to keep it:

    * default: a detached copy (later in-place operations cannot change it);
    * ``grad=True``: the output is replaced, for the rest of the forward pass, by a copy of a
      fresh leaf tensor that requires grad. With frozen parameters that leaf is the only thing
      the backward pass can reach, so it stops there. (The copy lets later in-place operations
      such as ``ReLU(inplace=True)`` run, and keeps the leaf as the layer produced it.) When the
      pass runs in inference mode, the hook leaves it, so only the layers after this one are
      recorded for the backward pass (see :func:`forward_recording_from`).
    * ``keep_graph=True``: the output itself, still attached to the graph that produced it
      (for gradients with respect to the input).

    With ``stop=True`` the forward pass ends right after the layer (:meth:`run` catches it).
    """

    def __init__(self, module, name: str, *, grad: bool = False, keep_graph: bool = False, stop: bool = False):
        self.name = name
        self.grad = grad
        self.keep_graph = keep_graph
        self.stop = stop
        self.activation = None
        self.calls = 0
        self._after = contextlib.ExitStack()  # grad mode for the rest of the pass, closed by run()
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        import torch

        self.calls += 1
        if not torch.is_tensor(output) or output.dim() != 4:
            shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
            raise UsageError(f"layer {self.name!r} outputs {shape}, not a feature map (N, C, H, W)",
                             hint="pick a convolutional block, e.g. the registry's cam_layer")
        result = None
        if self.keep_graph:
            self.activation = output
        elif self.grad:
            self._after.enter_context(torch.inference_mode(False))
            self._after.enter_context(torch.enable_grad())
            self.activation = output.detach().clone().requires_grad_(True)
            result = self.activation.clone()
        else:
            self.activation = output.detach() if self.stop else output.detach().clone()
        if self.stop:
            raise _StopForward
        return result

    def run(self, model, x):
        """``model(x)``; returns the model output, or None when the tap stopped the pass."""
        self.calls = 0
        try:
            out = model(x)
        except _StopForward:
            out = None
        finally:
            self._after.close()
        if self.calls > 1:
            raise UsageError(f"layer {self.name!r} runs more than once per forward pass (a shared module)",
                             hint="pick the block that contains it")
        return out

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "LayerTap":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _logits(output):
    import torch

    if torch.is_tensor(output) and output.dim() == 2:
        return output
    raise UsageError("the model does not return a (N, classes) tensor of class scores",
                     hint="explain works on classification models")


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
            logits = _logits(forward_recording_from(model, tap, x))
        else:
            with torch.inference_mode():
                logits = _logits(tap.run(model, x))
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
        logits = _logits(tap.run(model, x))
    if target is not None:
        check_targets([target], logits.shape[1])
    _check_map_size(tap.activation, layer)
    if method == "cam":
        if not head:
            raise UsageError("CAM needs the name of the Linear head", hint="the registry entry's head")
        cam_weights(model, tap.activation, logits, logits.argmax(1), head=head, layer=layer)


def forward_recording_from(model, tap: LayerTap, x):
    """``model(x)`` with autograd recording only from ``tap``'s layer (a ``grad=True`` tap) on.

    The layers before it run in inference mode, the cheapest way PyTorch has to run them; the
    tap's hook leaves inference mode, so the rest of the pass is recorded. A model that would
    save a tensor from before the layer for the backward pass (a skip connection multiplied in
    after it) cannot do that with inference tensors: it is run again with recording all along,
    which is still cheap because the parameters are frozen.
    """
    import torch

    try:
        with torch.inference_mode():
            return tap.run(model, x)
    except RuntimeError as exc:
        if "nference tensor" not in str(exc):
            raise
    with torch.enable_grad():
        return tap.run(model, x)


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
            scores = _logits(model(masked))[:, targets[i]]
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
        logits = _logits(model(x[start:start + batch_size]))
        p = torch.softmax(logits.float(), dim=1)
        probs.append(p.gather(1, targets[start:start + batch_size, None])[:, 0])
    return torch.cat(probs)

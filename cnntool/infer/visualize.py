"""What the lectures show beyond heatmaps: feature maps, first-layer kernels, activation maximisation.

* :func:`feature_map_grid`: a layer's activation maps for one image, as a grid of tiles.
* :func:`kernel_grid`: the first convolution's learned kernels as a grid of tiles (RGB when the
  kernels have three input channels, as in the AlexNet figure; grayscale otherwise).
* :func:`maximize_channel`: the input that maximises a channel's mean activation, by gradient
  ascent from small noise, with random jitter, L2 decay and a light blur as regularisers.

Grids: ``n`` tiles are laid out in ``cols = ceil(sqrt(n))`` columns and ``ceil(n / cols)`` rows,
each tile min-max scaled on its own and enlarged by a whole factor (nearest neighbour) to at
least :data:`MIN_TILE` pixels, with :data:`GRID_PAD` pixels of background between tiles and
around the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnntool.errors import UsageError

#: Pixels of background between tiles and around the grid.
GRID_PAD = 2
#: Tiles are enlarged (nearest neighbour, whole factors) until their longer side is at least this.
MIN_TILE = 32
#: Background level of the grid (uint8).
GRID_BACKGROUND = 255
#: Feature maps shown per image unless told otherwise.
DEFAULT_MAX_MAPS = 64


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for ``n`` tiles.

    Examples
    --------
    >>> grid_shape(64), grid_shape(10), grid_shape(1)
    ((8, 8), (3, 4), (1, 1))
    """
    if n < 1:
        raise ValueError("a grid needs at least one tile")
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def tile_scale(height: int, width: int, *, min_tile: int = MIN_TILE) -> int:
    """The whole factor that enlarges an (height, width) tile to at least ``min_tile`` on its longer side."""
    return max(1, math.ceil(min_tile / max(height, width)))


def tile_grid(tiles: np.ndarray, *, pad: int = GRID_PAD, min_tile: int = MIN_TILE,
              background: int = GRID_BACKGROUND) -> np.ndarray:
    """Lay out tiles with values in [0, 1] as one uint8 image.

    Parameters
    ----------
    tiles : numpy.ndarray
        (N, h, w) grayscale or (N, h, w, 3) RGB, values in [0, 1].
    pad : int
        Background pixels between tiles and around the edge.
    min_tile : int
        Tiles are enlarged by a whole factor to at least this on their longer side.

    Returns
    -------
    numpy.ndarray
        uint8 (H, W) or (H, W, 3) with ``H = rows * (h * s + pad) + pad`` and
        ``W = cols * (w * s + pad) + pad``, ``s`` from :func:`tile_scale`.

    Examples
    --------
    >>> tile_grid(np.zeros((10, 4, 4))).shape  # 3 x 4 tiles of 32 px, 2 px apart
    (104, 138)
    """
    tiles = np.asarray(tiles, dtype=np.float32)
    n, h, w = tiles.shape[:3]
    rows, cols = grid_shape(n)
    s = tile_scale(h, w, min_tile=min_tile)
    th, tw = h * s, w * s
    shape = (rows * (th + pad) + pad, cols * (tw + pad) + pad) + tiles.shape[3:]
    grid = np.full(shape, background, np.uint8)
    scaled = np.clip(tiles * 255.0 + 0.5, 0, 255).astype(np.uint8)
    for i, tile in enumerate(scaled):
        r, c = divmod(i, cols)
        big = np.repeat(np.repeat(tile, s, axis=0), s, axis=1)
        top, left = pad + r * (th + pad), pad + c * (tw + pad)
        grid[top:top + th, left:left + tw] = big
    return grid


def _minmax_each(maps: np.ndarray) -> np.ndarray:
    """Scale each map (first axis) to [0, 1] on its own; constant maps become 0."""
    maps = np.asarray(maps, dtype=np.float32)
    flat = maps.reshape(maps.shape[0], -1)
    lo = flat.min(axis=1)
    span = flat.max(axis=1) - lo
    span[span == 0] = 1.0
    shape = (-1,) + (1,) * (maps.ndim - 1)
    return (maps - lo.reshape(shape)) / span.reshape(shape)


def feature_map_grid(activations: np.ndarray, *, max_maps: int = DEFAULT_MAX_MAPS) -> np.ndarray:
    """A grid of the first ``max_maps`` activation maps of one image, each scaled on its own.

    Parameters
    ----------
    activations : numpy.ndarray
        (C, h, w) one image's output of a layer.
    max_maps : int
        Channels shown (the first ones).

    Returns
    -------
    numpy.ndarray
        uint8 (H, W): bright is high activation.

    Examples
    --------
    >>> feature_map_grid(np.random.default_rng(0).random((6, 8, 8))).shape
    (70, 104)
    """
    activations = np.asarray(activations)
    if activations.ndim != 3:
        raise ValueError(f"activations must be (C, h, w), got shape {activations.shape}")
    return tile_grid(_minmax_each(activations[:max_maps]))


def first_conv_weight(model, name: str):
    """The weight (out, in, kh, kw) of the convolution at ``name`` (or the first Conv2d inside it)."""
    import torch.nn as nn

    from cnntool.infer.hooks import resolve_layer

    module = resolve_layer(model, name)
    if not isinstance(module, nn.Conv2d):
        module = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if module is None:
            raise UsageError(f"layer {name!r} has no 2-D convolution", hint="give a Conv2d with --layer")
    return module.weight.detach().float().cpu().numpy()


def kernel_grid(weight: np.ndarray) -> np.ndarray:
    """The kernels of a convolution as a grid: RGB tiles for 3 input channels, grayscale otherwise.

    Each kernel is min-max scaled on its own (over all its input channels), so its pattern shows
    whatever its magnitude. Kernels with other than 1 or 3 input channels are shown as the mean
    over their input channels.

    Parameters
    ----------
    weight : numpy.ndarray
        (out, in, kh, kw).

    Returns
    -------
    numpy.ndarray
        uint8 (H, W, 3) or (H, W).

    Examples
    --------
    >>> kernel_grid(np.random.default_rng(0).normal(size=(96, 3, 11, 11))).shape  # AlexNet's 96
    (352, 352, 3)
    """
    weight = np.asarray(weight, dtype=np.float32)
    if weight.ndim != 4:
        raise ValueError(f"weight must be (out, in, kh, kw), got shape {weight.shape}")
    if weight.shape[1] == 3:
        tiles = weight.transpose(0, 2, 3, 1)  # (out, kh, kw, 3): RGB as the input's channels
    elif weight.shape[1] == 1:
        tiles = weight[:, 0]
    else:
        tiles = weight.mean(axis=1)
    return tile_grid(_minmax_each(tiles))


@dataclass(frozen=True)
class MaximizeConfig:
    """Options of :func:`maximize_channel`."""

    steps: int = 256            # gradient-ascent steps
    lr: float = 0.05            # Adam step size, in normalised-input units
    jitter: int = 4             # random shift (pixels, each axis) before every step
    l2: float = 1e-3            # weight of the L2 penalty on the input (keeps it from saturating)
    blur_every: int = 8         # blur the input lightly every this many steps (0: never)
    blur_sigma: float = 0.5     # that blur's sigma, in pixels
    init_std: float = 0.1       # standard deviation of the starting noise
    seed: int = 0


def maximize_channel(model, layer: str, channel: int, *, input_size, mean, std, device="cpu",
                     config: MaximizeConfig = MaximizeConfig()):
    """The input that maximises the mean activation of ``channel`` at ``layer``.

    Gradient ascent on the (normalised) input: each step shifts the image by a random jitter,
    runs the model up to the layer only, and follows the gradient of the channel's mean
    activation minus an L2 penalty; every few steps the image is blurred a little. Pixels stay
    in the range the normalisation can produce.

    Parameters
    ----------
    model : torch.nn.Module
    layer : str
        Dotted layer name.
    channel : int
        Channel of that layer's output.
    input_size : tuple of int
        (C, H, W).
    mean, std : sequence of float
        The model's normalisation (to keep pixels in range and to make the image).
    config : MaximizeConfig

    Returns
    -------
    image : numpy.ndarray
        uint8 (H, W, C) as the model sees it.
    start, final : float
        The channel's mean activation for the starting noise and the result.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> _ = torch.manual_seed(0)  # the example's random net: channel 2 must not start dead
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    >>> img, a0, a1 = maximize_channel(net, "1", 2, input_size=(3, 16, 16), mean=(0.5,) * 3,
    ...                                std=(0.5,) * 3, config=MaximizeConfig(steps=8))
    >>> img.shape, a1 > a0
    ((16, 16, 3), True)
    """
    import torch
    from torchvision.transforms.functional import gaussian_blur

    from cnntool.data.preprocessing import Preprocessing
    from cnntool.infer.hooks import LayerTap, frozen, resolve_layer

    module = resolve_layer(model, layer)
    c, h, w = (int(v) for v in input_size)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
    lo, hi = (0 - mean_t) / std_t, (1 - mean_t) / std_t
    generator = torch.Generator().manual_seed(config.seed)
    x = (torch.randn(1, c, h, w, generator=generator) * config.init_std).to(device)
    x = x.clamp(lo, hi).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=config.lr)
    rng = np.random.default_rng(config.seed)
    ksize = 2 * int(math.ceil(2 * config.blur_sigma)) + 1

    def activation(inp, tap):
        tap.run(model, inp)
        acts = tap.activation
        if not 0 <= channel < acts.shape[1]:
            raise UsageError(f"--channel {channel} is out of range: layer {layer!r} has {acts.shape[1]} channels",
                             hint=f"give 0..{acts.shape[1] - 1}")
        return acts[:, channel].mean()

    with frozen(model), LayerTap(module, layer, keep_graph=True, stop=True) as tap:
        with torch.no_grad():
            start = float(activation(x, tap))
        for step in range(config.steps):
            dy, dx = (int(v) for v in rng.integers(-config.jitter, config.jitter + 1, size=2))
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            with torch.enable_grad():
                act = activation(shifted, tap)
                loss = -act + config.l2 * (x ** 2).mean()
                (grad,) = torch.autograd.grad(loss, x)
            optimizer.zero_grad(set_to_none=True)
            x.grad = grad
            optimizer.step()
            with torch.no_grad():
                if config.blur_every and (step + 1) % config.blur_every == 0:
                    x.copy_(gaussian_blur(x, [ksize, ksize], [config.blur_sigma, config.blur_sigma]))
                x.copy_(torch.maximum(torch.minimum(x, hi), lo))
        with torch.no_grad():
            final = float(activation(x, tap))
    pre = Preprocessing((c, h, w), tuple(mean), tuple(std))
    return pre.denormalize(x.detach()[0].cpu().numpy()), start, final

"""Hooks into a model's layers: find a layer by name, tap its output (and gradient), stop the
forward pass there, freeze the parameters for an explanation.

The CAM family (:mod:`cnntool.infer.cam`), feature maps and activation maximisation
(:mod:`cnntool.infer.visualize`) all read layers through :class:`LayerTap`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from cnntool.errors import UsageError


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
    from cnntool.errors import close_matches

    close = close_matches(name, names, n=5)
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


def model_logits(output):
    """A classifier's output as the (N, classes) score tensor the explanations need.

    Examples
    --------
    >>> import torch
    >>> model_logits(torch.zeros(2, 3)).shape
    torch.Size([2, 3])
    """
    import torch

    if torch.is_tensor(output) and output.dim() == 2:
        return output
    raise UsageError("the model does not return a (N, classes) tensor of class scores",
                     hint="explain works on classification models")

"""Where training and inference run: device resolution, CPU threads, mixed precision, channels-last.

Every stage resolves ``--device`` through :func:`resolve_device`, so ``auto`` means the same
thing everywhere.
"""

from __future__ import annotations

from cnntool.errors import UsageError

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N|mps"
_DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"


def check_device_spec(spec: str) -> str:
    """Check ``--device``'s spelling without importing torch: commands that may never need a
    model (an audit served by hashes) still refuse a typo at once.

    Examples
    --------
    >>> check_device_spec("CUDA:1")
    'cuda:1'
    """
    import re

    normalised = (spec or "auto").strip().lower()
    if not re.fullmatch(_DEVICE_PATTERN, normalised):
        raise UsageError(f"unknown --device {spec!r}", hint=f"use one of {DEVICE_CHOICES}")
    return normalised


def resolve_device(spec: str = "auto"):
    """``auto`` -> ``cuda`` when available, else ``mps``, else ``cpu``; otherwise the device named.

    Raises
    ------
    UsageError
        An unknown device name, or a device this machine does not have.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    spec = check_device_spec(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)  # check_device_spec let only auto|cpu|mps|cuda(:N) through
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is available here", hint="use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {spec}: this machine has {torch.cuda.device_count()} GPU(s)",
                             hint="GPUs are numbered from cuda:0")
    elif device.type == "mps" and not _mps_available():
        raise UsageError("--device mps: Apple's Metal backend is not available here", hint="use --device cpu")
    return device


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def configure_cpu_threads(threads: int | None = None, *, workers: int = 0, processes: int = 1) -> int:
    """Set PyTorch's intra-op threads so that compute and loader workers share the cores.

    Parameters
    ----------
    threads : int, optional
        Use exactly this many. Default: ``OMP_NUM_THREADS`` when it is set (the convention
        PyTorch and NumPy follow), else the physical cores this process may use, divided among
        ``processes`` (several training processes on one machine), minus the DataLoader
        ``workers``, at least 1.

    Returns
    -------
    int
        The thread count set.

    Examples
    --------
    >>> configure_cpu_threads(1)
    1
    """
    import torch

    from cnntool.data.loaders import usable_cores

    if threads is None:
        import os

        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        threads = int(env) if env.isdigit() and int(env) > 0 else max(1, usable_cores() // max(1, processes) - workers)
    torch.set_num_threads(int(threads))
    return int(threads)


def use_amp(device, amp: bool | None) -> bool:
    """Mixed precision: on by default on CUDA, off elsewhere (CPU float16 is slow, bfloat16 is lossy)."""
    return device.type == "cuda" if amp is None else bool(amp) and device.type in ("cuda", "cpu")


def amp_dtype(device):
    """float16 on CUDA (with a GradScaler), bfloat16 on the CPU."""
    import torch

    return torch.float16 if device.type == "cuda" else torch.bfloat16


def use_channels_last(device, channels_last: bool | None) -> bool:
    """NHWC memory layout: on by default on CUDA, where cuDNN's tensor-core kernels want it, and on
    the CPU, where oneDNN's convolutions run faster in it (torch 2.14 on 2 cores: forward passes of
    LeNet-5, ResNet-18, MobileNet-V3, LR-ASPP and Faster R-CNN 1.2-2x faster, training steps
    1.15-1.5x); off on MPS."""
    return device.type in ("cuda", "cpu") if channels_last is None else bool(channels_last)


def channels_last_for_inference(model, device) -> bool:
    """Put ``model`` in NHWC layout (:func:`to_channels_last`) when that is ``device``'s default
    (:func:`use_channels_last`); whether it did. Every inference stage calls this once per run.

    Examples
    --------
    >>> import torch
    >>> channels_last_for_inference(torch.nn.Conv2d(3, 4, 3), torch.device("cpu"))
    True
    """
    import torch

    on = use_channels_last(torch.device(device), None)
    if on:
        to_channels_last(model)
    return on


def to_channels_last(model):
    """``model`` with its 4-D weights in NHWC layout (in place; returned for chaining).

    Convolutions then compute in that layout whatever the input's; 5-D weights (3-D convolutions
    of video models) keep theirs, so any model can be given.

    Examples
    --------
    >>> import torch
    >>> net = to_channels_last(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv3d(4, 4, 1)))
    >>> net[0].weight.is_contiguous(memory_format=torch.channels_last), net[1].weight.dim()
    (True, 5)
    """
    import torch

    return model._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)


def set_deterministic(enabled: bool) -> None:
    """Repeatable results on the GPU too (slower); on the CPU runs are repeatable already.

    Without it, cuDNN may benchmark and pick the fastest (non-deterministic) kernels.
    """
    import os

    import torch

    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few kernels (adaptive average pooling's backward on CUDA) have no
        # deterministic form; PyTorch then warns instead of stopping the run
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error (which PyTorch raises as a RuntimeError subclass)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


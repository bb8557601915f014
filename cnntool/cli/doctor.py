"""``cnntool doctor``: the environment in one table, the first thing to paste into a bug report.

Records (one per check): ``check`` (what was looked at), ``value`` (what was found: a version,
a path, a count), ``ok`` (false: broken or missing), ``required`` (cnntool cannot work without
it: the exit code is 1 when a required check is not ok), ``detail`` (one line: where, why,
what to do). Checks in order: cnntool, Python, platform; the packages; the torch build, CUDA
devices, MPS; CPU cores and torch threads; the torch hub, Hugging Face and audit caches and the
registry's pretrained weights present; libx264 for videos; a headless browser; environment
variables that change where files go or how many threads run.

Fast: nothing is built or downloaded; the slowest part is importing torch and torchvision.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from cnntool.cli._options import Format, Quiet, Verbose, make_output
from cnntool.errors import one_line

#: (check name, module, distribution, what cnntool uses it for, required).
PACKAGES = (
    ("numpy", "numpy", "numpy", "arrays everywhere", True),
    ("torch", "torch", "torch", "every model", True),
    ("torchvision", "torchvision", "torchvision", "the model zoo, transforms, detection", True),
    ("opencv", "cv2", "opencv-python-headless", "decoding, filters, resizing", True),
    ("pillow", "PIL", "pillow", "decoding (EXIF, 16-bit, odd formats)", True),
    ("pyav", "av", "av", "video reading and H.264 writing", False),
    ("timm", "timm", "timm", "timm/NAME models", False),
    ("onnx", "onnx", "onnx", "export --format onnx", False),
    ("onnxruntime", "onnxruntime", "onnxruntime", "checking ONNX exports", False),
    ("onnxscript", "onnxscript", "onnxscript", "PyTorch's ONNX exporter (opset 18+)", False),
)

#: Headless browsers, by executable name (the audit report's browser test uses the first found).
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "headless_shell")

#: Environment variables worth seeing in a bug report.
ENV_VARS = ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "XDG_CACHE_HOME", "CNNTOOL_CACHE_DIR",
            "CNNTOOL_DEBUG", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def doctor_command(format: Format = None, quiet: Quiet = False, verbose: Verbose = False) -> int:
    """Show versions, devices, CPU threads, caches, cached weights and tools: paste it into bug reports.

    Exit 1 when something cnntool needs is broken (a required package fails to import);
    missing extras (a GPU, libx264, a browser) are reported, not failures.

    Examples:

    \b
      cnntool doctor
      cnntool doctor --format jsonl > doctor.jsonl
    """
    output = make_output(format, quiet, verbose)
    records = list(run_checks())
    for record in records:
        output.emit(record)
    output.close()
    broken = [r["check"] for r in records if r["required"] and not r["ok"]]
    missing = [r["check"] for r in records if not r["required"] and not r["ok"]]
    if missing:
        output.log(f"not available: {', '.join(missing)} (see detail)")
    if broken:
        output.warn(f"cnntool cannot work here: {', '.join(broken)} broken")
        return 1
    output.log(f"{len(records)} checks, nothing required is broken")
    return 0


def record(check: str, value, ok: bool = True, detail: str = "", *, required: bool = False) -> dict:
    """One doctor record.

    Examples
    --------
    >>> record("libx264", "not available", False, "videos fall back to mp4v")
    {'check': 'libx264', 'value': 'not available', 'ok': False, 'required': False, 'detail': 'videos fall back to mp4v'}
    """
    return {"check": check, "value": value, "ok": bool(ok), "required": required, "detail": detail}


def run_checks() -> Iterator[dict]:
    """Every check's records, in order; a check that raises becomes a record that says so."""
    modules: dict[str, object] = {}
    groups: list[tuple[str, Callable[[], Iterator[dict]]]] = [
        ("cnntool", _basics),
        ("packages", lambda: _packages(modules)),
        ("devices", lambda: _devices(modules.get("torch"))),
        ("cpu", lambda: _cpu(modules.get("torch"))),
        ("caches", lambda: _caches(modules.get("torch"))),
        ("libx264", _video),
        ("headless browser", _browser),
        ("environment", _environment),
    ]
    for name, group in groups:
        try:
            yield from group()
        except Exception as exc:  # a doctor reports, never crashes
            yield record(name, "error", False, f"the check failed: {one_line(exc)}")


def _basics() -> Iterator[dict]:
    import cnntool

    yield record("cnntool", cnntool.__version__, detail=str(Path(cnntool.__file__).parent))
    yield record("python", platform.python_version(), sys.version_info >= (3, 10),
                 f"{platform.python_implementation()} at {sys.executable}", required=True)
    yield record("platform", platform.platform(), detail=platform.machine())


def _packages(modules: dict) -> Iterator[dict]:
    from importlib import metadata

    for check, module_name, dist, purpose, required in PACKAGES:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # ImportError, or a broken build raising anything
            try:
                installed = metadata.version(dist)
            except metadata.PackageNotFoundError:
                yield record(check, "missing", False, f"needed for {purpose}: pip install {dist}", required=required)
                continue
            yield record(check, f"{installed} (broken)", False, f"import {module_name} fails: {one_line(exc)}",
                         required=required)
            continue
        modules[check] = module
        version = getattr(module, "__version__", None) or _dist_version(dist)
        yield record(check, str(version), detail=purpose, required=required)


def _dist_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _devices(torch) -> Iterator[dict]:
    if torch is None:
        yield record("cuda", "unknown", False, "torch is not importable")
        return
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        yield record("cuda", f"{count} device{'s' if count != 1 else ''}", detail=build)
        for i in range(count):
            props = torch.cuda.get_device_properties(i)
            yield record(f"cuda:{i}", props.name,
                         detail=f"compute capability {props.major}.{props.minor}, "
                                f"{props.total_memory / 2 ** 30:.1f} GiB")
    else:
        nvidia = os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None
        if nvidia and torch.version.cuda:
            yield record("cuda", "not usable", False, f"{build} and an NVIDIA device, but CUDA does not start: "
                                                      "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")
        else:
            yield record("cuda", "not available",
                         detail=f"{build}; {'no NVIDIA device' if torch.version.cuda else 'install a CUDA build'}"
                                " for GPU training; --device auto uses the CPU")
    mps = getattr(torch.backends, "mps", None)
    available = bool(mps is not None and mps.is_available())
    yield record("mps", "available" if available else "not available",
                 detail="Apple GPU" if available else "Apple silicon only")


def _cpu(torch) -> Iterator[dict]:
    from cnntool.data.loaders import usable_cores

    logical = os.cpu_count() or 1
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = logical
    yield record("cpu cores", usable_cores(),
                 detail=f"physical cores usable by this process; {logical} logical, {allowed} allowed")
    if torch is not None:
        yield record("torch threads", torch.get_num_threads(),
                     detail=f"intra-op; {torch.get_num_interop_threads()} inter-op")


def _caches(torch) -> Iterator[dict]:
    from cnntool.audit.cache import CACHE_FILE, default_cache_dir

    if torch is not None:
        hub = Path(torch.hub.get_dir())
        yield record("torch hub cache", str(hub), detail=_folder_summary(hub / "checkpoints")
                     + ("; TORCH_HOME sets it" if os.environ.get("TORCH_HOME") else ""))
        yield _weights_record()
    hf = _hf_cache()
    timm_models = sorted(p.name[len("models--timm--"):] for p in hf.glob("models--timm--*")) if hf.is_dir() else []
    yield record("hugging face cache", str(hf),
                 detail=(f"timm weights: {', '.join(timm_models)}" if timm_models else "no timm weights")
                 if hf.is_dir() else "not created yet")
    audit = default_cache_dir()
    database = audit / CACHE_FILE
    yield record("audit cache", str(audit),
                 detail=f"{database.stat().st_size / 1e6:.1f} MB" if database.is_file() else "not created yet")


def _folder_summary(folder: Path) -> str:
    if not folder.is_dir():
        return "no weights downloaded yet"
    files = [p for p in folder.iterdir() if p.is_file()]
    return f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.0f} MB in checkpoints/"


def _weights_record() -> dict:
    from cnntool.models.registry import cached_weights_path, list_models

    known, present = 0, []
    for entry in list_models():
        if entry.torchvision_name is None:
            continue
        for weights in entry.weights:
            known += 1
            if cached_weights_path(entry, weights).is_file():
                present.append(f"{entry.name}:{weights}")
    return record("pretrained weights", ", ".join(present) or "none",
                  detail=f"{len(present)} of the registry's {known} torchvision weights files are cached; "
                         "others download on first use (NAME:WEIGHTS)")


def _hf_cache() -> Path:
    try:
        from huggingface_hub import constants
    except ImportError:  # huggingface_hub's own rule, without it
        base = os.environ.get("HF_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
        return Path(os.environ.get("HF_HUB_CACHE") or os.path.join(base, "hub"))
    return Path(constants.HF_HUB_CACHE)


def _video() -> Iterator[dict]:
    from cnntool.data.video import h264_available

    available = h264_available()
    yield record("libx264", "available" if available else "not available", available,
                 "PyAV writes H.264 mp4" if available
                 else "videos are written as OpenCV's mp4v, which browsers do not play: install PyAV with libx264")


def _browser() -> Iterator[dict]:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    yield record("headless browser", found or "not found", found is not None,
                 "for checking the audit report in a real browser" if found
                 else "only the report's browser test needs one: apt-get install chromium-headless-shell")


def _environment() -> Iterator[dict]:
    found = [f"{name}={os.environ[name]}" for name in ENV_VARS if os.environ.get(name)]
    yield record("environment", "; ".join(found) or "none set", detail="variables that move caches or set threads")

"""Filter ops as data: the table of named ops, the ``NAME[:KEY=VALUE...]`` parser, and chains.

Every op the ``filter`` command knows is one :class:`OpSpec` in :data:`OPS`: its keys with
types and defaults, its matrix (for ``--list``), whether its output is signed, and the
``--scale`` it gets by default when it is the last op of a chain writing an image. The
parser, ``--list`` and the command's help all read this table.

Op syntax: ``gaussian:sigma=2:size=9``; keys may come in any order; chains are lists of ops
applied in turn. Kernel and gradient ops also take the geometry keys ``stride``, ``dilation``,
``pad``, ``border``, ``mode`` and ``method``, which default to the command's ``--stride``...
flags (:class:`ConvDefaults`). Custom kernels: ``kernel:values=0,1,0;1,-4,1;0,1,0`` (rows
separated by ``;``) or ``kernel:file=k.txt`` / ``k.npy``.

This module imports no NumPy at import time (the CLI builds its help from it); the filters
are imported when an op is built or run.

Examples
--------
>>> ops = parse_ops(["gaussian:sigma=2", "sobel:axis=magnitude"])
>>> chain_text(ops)
'gaussian:sigma=2 | sobel:axis=magnitude'
>>> ops[0].params["size"], ops[1].params["border"], ops[1].scale
(13, 'zero', 'minmax')
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cnntool.errors import UsageError
from cnntool.filters.names import AXES, BORDER_SYNONYMS, BORDERS, METHODS, MODES, PADDINGS


@dataclass(frozen=True)
class ConvDefaults:
    """What kernel ops use for the geometry keys they are not given (the command's flags)."""

    stride: int = 1  # step between output pixels
    dilation: int = 1  # spacing between kernel taps
    pad: str | int = "same"  # same|valid|full or pixels per side
    border: str = "zero"  # what the padding holds (the lectures' zero padding)
    mode: str = "conv"  # conv flips the kernel; corr does not
    method: str = "auto"  # auto|direct|fft


@dataclass(frozen=True)
class Param:
    """One key of an op: ``type`` is int, float, str, bool, pad, size (int or auto) or text."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple = ()
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    positive: bool = False  # strictly > 0


@dataclass(frozen=True)
class OpSpec:
    """One named op.

    ``kind`` is ``kernel`` (a linear filter given by ``matrix``), ``gradient`` (x/y templates,
    combined by ``axis``), ``filter`` (non-linear, size-keeping, computed by ``run``) or
    ``pool`` (also computed by ``run``). ``scale`` and ``signed`` are values, or functions of
    the parsed :class:`Op`; ``scale=None`` keeps the previous op's scale (pooling).
    """

    name: str
    summary: str
    kind: str
    params: tuple[Param, ...] = ()
    scale: str | Callable[[Op], str] | None = "clip"
    signed: bool | Callable[[Op], bool] = False
    aliases: tuple[str, ...] = ()
    matrix: Callable[[dict], Any] | None = None
    run: Callable[[Any, dict], Any] | None = None

    @property
    def all_params(self) -> tuple[Param, ...]:
        if self.kind in ("kernel", "gradient"):
            return self.params + GEOMETRY
        if self.kind == "filter":
            return self.params + (BORDER_PARAM,)
        return self.params


@dataclass(frozen=True)
class Op:
    """A parsed op: its spec, every parameter resolved, and its canonical text."""

    spec: OpSpec
    params: dict
    text: str
    matrix: Any = field(default=None, compare=False)  # kernel ops: the 2-D kernel (float64)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def scale(self) -> str | None:
        s = self.spec.scale
        return s(self) if callable(s) else s

    @property
    def signed(self) -> bool:
        s = self.spec.signed
        return s(self) if callable(s) else s

    def conv_kwargs(self) -> dict:
        p = self.params
        return {"stride": p["stride"], "dilation": p["dilation"], "padding": p["pad"],
                "border": p["border"], "mode": p["mode"], "method": p["method"]}

    def apply(self, image):
        """Run the op on a 2-D or H x W x C array (any numeric dtype); returns a new float64 array."""
        kind = self.spec.kind
        if kind == "kernel":
            from cnntool.filters.convolve import convolve

            return convolve(image, self.matrix, **self.conv_kwargs())
        if kind == "gradient":
            from cnntool.filters.edges import gradient

            return gradient(image, operator=self.name, axis=self.params["axis"], **self.conv_kwargs())
        return self.spec.run(image, self.params)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape :meth:`apply` returns for an input of ``shape``."""
        from cnntool.filters.convolve import output_shape

        kind = self.spec.kind
        if kind == "kernel":
            return output_shape(shape, self.matrix.shape, stride=self.params["stride"],
                                padding=self.params["pad"], dilation=self.params["dilation"])
        if kind == "gradient":
            return output_shape(shape, (3, 3), stride=self.params["stride"],
                                padding=self.params["pad"], dilation=self.params["dilation"])
        if kind == "pool":
            size = self.params["size"]
            stride = self.params["stride"] or size
            return output_shape(shape, (size, size), stride=stride, padding=self.params["pad"])
        return tuple(shape)


# The table ---------------------------------------------------------------------------------

#: Largest kernel or window side an op accepts (a guard against typos such as sigma=2000).
MAX_KERNEL_SIDE = 1001

GEOMETRY = (
    Param("stride", "int", None, "step between output pixels [--stride]", minimum=1),
    Param("dilation", "int", None, "spacing between kernel taps [--dilation]", minimum=1),
    Param("pad", "pad", None, "same|valid|full or pixels per side [--pad]"),
    Param("border", "str", None, "what the padding holds [--border]", choices=BORDERS),
    Param("mode", "str", None, "conv flips the kernel, corr does not [--mode]", choices=MODES),
    Param("method", "str", None, "auto|direct|fft [--method]", choices=METHODS),
)
BORDER_PARAM = Param("border", "str", None, "what the filter sees outside the image [--border]", choices=BORDERS)
SIGMA = Param("sigma", "float", 1.0, "standard deviation in pixels", positive=True)
AUTO_SIZE = Param("size", "size", None, "kernel side (default 2*ceil(3*sigma)+1)", minimum=1,
                  maximum=MAX_KERNEL_SIDE)


def _k():
    from cnntool.filters import kernels

    return kernels


def _custom_matrix(p: dict):
    k = _k()
    if bool(p["values"]) == bool(p["file"]):
        raise ValueError("give exactly one of values=ROWS or file=PATH")
    m = k.parse_kernel(p["values"]) if p["values"] else k.load_kernel(p["file"])
    if p["normalize"]:
        total = float(m.sum())
        if total == 0:
            raise ValueError("normalize=true needs a kernel whose sum is not 0")
        m = m / total
    return m


def _sums_to_zero(op: Op) -> bool:
    total = abs(float(op.matrix.sum()))
    return total <= 1e-9 * float(abs(op.matrix).sum())


def _gradient_scale(op: Op) -> str:
    return "offset" if op.params["axis"] in ("x", "y") else "minmax"


def _run_median(x, p):
    from cnntool.filters.nonlinear import median

    return median(x, size=p["size"], border=p["border"])


def _run_bilateral(x, p):
    from cnntool.filters.nonlinear import bilateral

    return bilateral(x, diameter=p["diameter"], sigma_color=p["sigma_color"],
                     sigma_space=p["sigma_space"], border=p["border"])


def _run_canny(x, p):
    from cnntool.filters.edges import canny

    edges = canny(x, sigma=p["sigma"], low=p["low"], high=p["high"], border=p["border"])
    return edges * 255.0  # like cv2.Canny: edges 255, the rest 0


def _pooler(kind: str) -> Callable[[Any, dict], Any]:
    def run(x, p):
        from cnntool.filters.pooling import pool

        return pool(x, size=p["size"], stride=p["stride"], kind=kind, padding=p["pad"])

    return run


def _pool_params() -> tuple[Param, ...]:
    return (
        Param("size", "int", 2, "window side", minimum=1, maximum=MAX_KERNEL_SIDE),
        Param("stride", "int", None, "step between windows (default: size)", minimum=1),
        Param("pad", "pad", 0, "same|valid or pixels per side (max pads -inf, avg zeros)"),
    )


def _gradient(name: str, summary: str) -> OpSpec:
    return OpSpec(
        name, summary, "gradient",
        (Param("axis", "str", "magnitude", "x|y|magnitude|direction (degrees)", choices=AXES),),
        scale=_gradient_scale,
        signed=lambda op: op.params["axis"] != "magnitude",
        matrix=lambda p: dict(zip(("x", "y"), _k().GRADIENT_KERNELS[name])),
    )


#: Every named op, in the order ``--list`` shows them.
OPS: tuple[OpSpec, ...] = (
    OpSpec("identity", "copy the image (for format and colour conversion)", "kernel",
           matrix=lambda p: _k().IDENTITY.copy()),
    OpSpec("mean", "mean (box) blur", "kernel",
           (Param("size", "int", 3, "kernel side", minimum=1, maximum=MAX_KERNEL_SIDE),), aliases=("box",),
           matrix=lambda p: _k().box_kernel(p["size"])),
    OpSpec("gaussian", "Gaussian blur (sampled, normalised, separable)", "kernel",
           (SIGMA, AUTO_SIZE), aliases=("gauss",),
           matrix=lambda p: _k().gaussian_kernel(p["sigma"], p["size"])),
    _gradient("sobel", "Sobel gradient: x, y, magnitude or direction"),
    _gradient("prewitt", "Prewitt gradient: x, y, magnitude or direction"),
    _gradient("scharr", "Scharr gradient: x, y, magnitude or direction"),
    OpSpec("laplace", "discrete Laplacian (second derivative)", "kernel",
           (Param("neighbours", "int", 4, "4 or 8", choices=(4, 8)),), aliases=("laplacian",),
           scale="offset", signed=True, matrix=lambda p: _k().laplace_kernel(p["neighbours"])),
    OpSpec("log", "Laplacian of Gaussian (blob and edge detector)", "kernel",
           (SIGMA, AUTO_SIZE), scale="offset", signed=True,
           matrix=lambda p: _k().log_kernel(p["sigma"], p["size"])),
    OpSpec("sharpen", "sharpen: identity - amount * Laplacian", "kernel",
           (Param("amount", "float", 1.0, "strength"),),
           matrix=lambda p: _k().sharpen_kernel(p["amount"])),
    OpSpec("emboss", "emboss (light from the top left)", "kernel",
           matrix=lambda p: _k().EMBOSS.copy()),
    OpSpec("unsharp", "unsharp mask: x + amount * (x - gaussian(x))", "kernel",
           (SIGMA, Param("amount", "float", 1.0, "strength"), AUTO_SIZE),
           matrix=lambda p: _k().unsharp_kernel(p["sigma"], p["amount"], p["size"])),
    OpSpec("kernel", "custom kernel: values=ROW;ROW... or file=PATH (.txt or .npy)", "kernel",
           (Param("values", "text", "", "rows separated by ';', values by ','"),
            Param("file", "text", "", "a .txt (rows on lines) or .npy kernel"),
            Param("normalize", "bool", False, "divide by the sum of the weights")),
           aliases=("custom",),
           scale=lambda op: "offset" if _sums_to_zero(op) else "clip", signed=_sums_to_zero,
           matrix=_custom_matrix),
    OpSpec("median", "median filter (non-linear, keeps edges, removes salt and pepper)", "filter",
           (Param("size", "int", 3, "window side", minimum=1, maximum=MAX_KERNEL_SIDE),), run=_run_median),
    OpSpec("bilateral", "bilateral filter (edge-preserving smoothing, float32 inside)", "filter",
           (Param("diameter", "int", 9, "neighbourhood diameter in pixels", minimum=1, maximum=MAX_KERNEL_SIDE),
            Param("sigma_color", "float", 75.0, "value difference that halves the weight", positive=True),
            Param("sigma_space", "float", 75.0, "distance that halves the weight", positive=True)),
           run=_run_bilateral),
    OpSpec("canny", "Canny edges: 255 on edges, 0 elsewhere (use --color gray)", "filter",
           (SIGMA, Param("low", "float", 50.0, "hysteresis low threshold (Sobel units)", minimum=0),
            Param("high", "float", 100.0, "hysteresis high threshold", minimum=0)),
           run=_run_canny),
    OpSpec("maxpool", "max pooling", "pool", _pool_params(), scale=None, run=_pooler("max")),
    OpSpec("avgpool", "average pooling", "pool", _pool_params(), scale=None, run=_pooler("avg")),
)

_BY_NAME: dict[str, OpSpec] = {}
for _spec in OPS:
    for _name in (_spec.name, *_spec.aliases):
        _BY_NAME[_name] = _spec

OP_NAMES = tuple(spec.name for spec in OPS)


def get_spec(name: str) -> OpSpec:
    """The spec for an op name or alias; UsageError with close matches otherwise."""
    spec = _BY_NAME.get(name.strip().lower())
    if spec is None:
        raise UsageError(f"unknown filter op {name!r}", hint=suggest(name, list(_BY_NAME), "ops"))
    return spec


def suggest(word: str, options: Sequence[str], what: str) -> str:
    """A hint: close matches (or our name for another library's border name), then the options."""
    word = word.strip().lower()
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    if word in BORDER_SYNONYMS and BORDER_SYNONYMS[word] in options:
        close = [BORDER_SYNONYMS[word]]
    listing = f"{what}: {', '.join(map(str, options))}"
    return f"did you mean {' or '.join(close)}? {listing}" if close else listing


# Parsing -----------------------------------------------------------------------------------

def parse_ops(texts: Sequence[str], defaults: ConvDefaults = ConvDefaults()) -> list[Op]:
    """Parse each ``-k`` spec; raises UsageError (exit 2, with a hint) on the first bad one."""
    if not texts:
        raise UsageError("no filter op given", hint="add -k NAME[:KEY=VALUE...], e.g. -k gaussian:sigma=2; "
                                                    "cnntool filter --list shows every op")
    return [parse_op(t, defaults) for t in texts]


def parse_op(text: str, defaults: ConvDefaults = ConvDefaults()) -> Op:
    """Parse ``NAME[:KEY=VALUE...]`` into an :class:`Op` with every parameter resolved.

    Examples
    --------
    >>> op = parse_op("kernel:values=0,1,0;1,-4,1;0,1,0")
    >>> op.matrix.tolist(), op.scale
    ([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], 'offset')
    """
    name, pairs = _split_spec(text)
    spec = get_spec(name)
    allowed = {p.name: p for p in spec.all_params}
    params = {p.name: p.default for p in spec.all_params}
    given: list[tuple[str, str]] = []
    for key, raw in pairs:
        if key not in allowed:
            raise UsageError(f"{spec.name}: unknown key {key!r} in {text!r}",
                             hint=suggest(key, list(allowed), f"keys of {spec.name}"))
        params[key] = _convert(spec, allowed[key], raw, text)
        given.append((key, raw))
    if spec.kind != "pool":  # a pool's stride defaults to its size, not to --stride
        for key, value in asdict(defaults).items():
            if params.get(key, 0) is None:
                params[key] = value
    canonical = ":".join([spec.name, *(f"{k}={v}" for k, v in given)])
    matrix = None
    if spec.kind == "kernel":
        if "size" in params and params["size"] is None and "sigma" in params:
            params["size"] = _k().gaussian_size(params["sigma"])
            if params["size"] > MAX_KERNEL_SIDE:
                raise UsageError(f"{spec.name}: sigma={params['sigma']:g} needs a {params['size']}-pixel kernel, "
                                 f"more than {MAX_KERNEL_SIDE}", hint=_op_hint(spec))
        try:
            matrix = spec.matrix(params)
        except ValueError as exc:
            raise UsageError(f"{spec.name}: {exc}", hint=_op_hint(spec)) from None
    if spec.kind in ("kernel", "gradient"):
        side = max(matrix.shape) if matrix is not None else 3
        effective = params["dilation"] * (side - 1) + 1
        if effective > MAX_KERNEL_SIDE:
            raise UsageError(f"{spec.name}: dilation {params['dilation']} makes the kernel {effective} pixels wide, "
                             f"more than {MAX_KERNEL_SIDE}", hint="use a smaller dilation or kernel")
    return Op(spec, params, canonical, matrix)


def _split_spec(text: str) -> tuple[str, list[tuple[str, str]]]:
    parts = text.strip().split(":")
    name = parts[0].strip()
    if not name:
        raise UsageError(f"empty filter op in {text!r}", hint="use NAME[:KEY=VALUE...], e.g. gaussian:sigma=2")
    pairs: list[list[str]] = []
    for part in parts[1:]:
        if "=" in part:
            key, value = part.split("=", 1)
            pairs.append([key.strip().lower(), value.strip()])
        elif pairs:  # a ':' inside a value (a Windows path such as file=C:\k.txt)
            pairs[-1][1] += ":" + part
        elif part.strip():
            raise UsageError(f"{name}: expected KEY=VALUE, got {part!r} in {text!r}", hint=_op_hint_by_name(name))
    return name, [(k, v) for k, v in pairs]


def _op_hint_by_name(name: str) -> str:
    spec = _BY_NAME.get(name.lower())
    return _op_hint(spec) if spec else "use NAME[:KEY=VALUE...]; cnntool filter --list shows every op"


def _op_hint(spec: OpSpec) -> str:
    keys = " ".join(f"{p.name}={_show(p.default)}" for p in spec.params) or "(no keys)"
    return f"{spec.name} keys: {keys}" + (" + stride dilation pad border mode method" if spec.kind in ("kernel", "gradient") else "")


def _show(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_pad(raw: str) -> str | int:
    """A padding: one of ``same``, ``valid``, ``full`` (lower-cased) or pixels >= 0.

    Raises ``ValueError`` saying what is wrong.

    Examples
    --------
    >>> parse_pad("Same"), parse_pad("3")
    ('same', 3)
    """
    if raw.lower() in PADDINGS:
        return raw.lower()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("must be same, valid, full or a number of pixels") from None
    if value < 0:
        raise ValueError("must be >= 0")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(spec: OpSpec, param: Param, raw: str, text: str) -> Any:
    def bad(why: str) -> UsageError:
        return UsageError(f"{spec.name}: {param.name} {why}, got {raw!r} in {text!r}", hint=_op_hint(spec))

    kind = param.type
    if kind == "text":
        if not raw:
            raise bad("needs a value")
        return raw
    if kind == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise bad("must be true or false")
    if kind == "str":
        value = raw.lower()
        if value not in param.choices:
            raise UsageError(f"{spec.name}: {param.name} must be one of {'|'.join(param.choices)}, got {raw!r}",
                             hint=suggest(value, list(param.choices), f"{param.name} values"))
        return value
    if kind == "pad":
        try:
            return parse_pad(raw)
        except ValueError as exc:
            raise bad(str(exc)) from None
    if kind == "size" and raw.lower() == "auto":
        return None
    try:
        value = int(raw) if kind in ("int", "size") else float(raw)
    except ValueError:
        raise bad("must be an integer" if kind in ("int", "size") else "must be a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise bad("must be finite")
    if param.choices and value not in param.choices:
        raise bad(f"must be one of {', '.join(map(str, param.choices))}")
    if param.minimum is not None and value < param.minimum:
        raise bad(f"must be >= {param.minimum:g}")
    if param.maximum is not None and value > param.maximum:
        raise bad(f"must be <= {param.maximum:g}")
    if param.positive and not value > 0:
        raise bad("must be > 0")
    return value


# Chains ------------------------------------------------------------------------------------

def chain_text(ops: Sequence[Op]) -> str:
    """The chain as one string, ops separated by `` | ``."""
    return " | ".join(op.text for op in ops)


def chain_scale(ops: Sequence[Op]) -> str:
    """The default ``--scale`` of a chain: that of its last op that has one (else clip)."""
    for op in reversed(ops):
        if op.scale is not None:
            return op.scale
    return "clip"


def chain_output_shape(ops: Sequence[Op], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a chain gives for an input (per-channel; colour modes aside)."""
    for op in ops:
        shape = op.output_shape(shape)
    return shape


def keeps_size(ops: Sequence[Op]) -> bool:
    """True when every op keeps the image size (needed by ``--color luminance``)."""
    probe = (97, 101)
    return chain_output_shape(ops, probe) == probe


def run_ops(image, ops: Sequence[Op], *, color: str = "channels"):
    """Apply a chain of ops to an image under a colour mode; returns float64.

    Examples
    --------
    >>> import numpy as np
    >>> run_ops(np.arange(16.0).reshape(4, 4), parse_ops(["maxpool:size=2"]))
    array([[ 5.,  7.],
           [13., 15.]])
    """
    from cnntool.filters.color import filter_color

    def chain(x):
        for op in ops:
            x = op.apply(x)
        return x

    return filter_color(image, chain, color=color)


# --list ------------------------------------------------------------------------------------

def describe(spec: OpSpec) -> dict:
    """One op as plain data: name, aliases, summary, keys with defaults, signed, scale, matrix."""
    matrix = None
    if spec.kind == "gradient":
        matrix = spec.matrix({})
    elif spec.kind == "kernel" and spec.name != "kernel":
        matrix = parse_op(spec.name).matrix
    if isinstance(matrix, dict):
        matrix = {k: v.tolist() for k, v in matrix.items()}
    elif matrix is not None:
        matrix = matrix.tolist()
    return {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "summary": spec.summary,
        "keys": {p.name: _show(p.default) for p in spec.params},
        "geometry_keys": [p.name for p in spec.all_params if p not in spec.params],
        "signed": "per key" if callable(spec.signed) else spec.signed,
        "scale": "per key" if callable(spec.scale) else (spec.scale or "previous op's"),
        "matrix": matrix,
    }


def format_op_list() -> str:
    """The text ``cnntool filter --list`` prints: every op, its keys and its matrix."""
    import numpy as np

    blocks = ["Ops for -k NAME[:KEY=VALUE...]; repeat -k to chain. Matrices are shown as written; "
              "--mode conv (the default) flips them, --mode corr slides them as shown."]
    for spec in OPS:
        info = describe(spec)
        head = spec.name + (f" (alias {', '.join(spec.aliases)})" if spec.aliases else "")
        lines = [f"{head}: {spec.summary}"]
        width = max((len(f"{p.name}={_show(p.default)}") for p in spec.params), default=0)
        for p in spec.params:
            lines.append(f"  {p.name}={_show(p.default)}".ljust(width + 4) + p.help)
        if info["geometry_keys"]:
            lines.append("  + " + " ".join(info["geometry_keys"]) + " (default: the command's flags)")
        lines.append(f"  signed: {_yes(info['signed'])}; default --scale: {_scale_text(spec)}")
        matrix = info["matrix"]
        if isinstance(matrix, dict):
            for axis, m in matrix.items():
                lines.append(f"  {axis}:")
                lines.extend(_matrix_lines(np.array(m)))
        elif matrix is not None:
            m = np.array(matrix)
            lines.append(f"  matrix ({m.shape[0]}x{m.shape[1]}, default keys):")
            lines.extend(_matrix_lines(m))
        elif spec.name == "kernel":
            lines.append("  matrix: yours, e.g. -k kernel:values=0,1,0;1,-4,1;0,1,0")
        else:
            lines.append("  matrix: none (not a linear filter)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _yes(value) -> str:
    return value if isinstance(value, str) else ("yes" if value else "no")


def _scale_text(spec: OpSpec) -> str:
    if spec.kind == "gradient":
        return "offset for x/y, minmax for magnitude/direction"
    if spec.name == "kernel":
        return "offset if the weights sum to 0, else clip"
    return spec.scale or "that of the previous op"


def _matrix_lines(m) -> list[str]:
    import numpy as np

    exact = np.all(m == np.round(m))
    cells = [[f"{v:g}" if exact else f"{v:.4f}" for v in row] for row in m]
    width = max(len(c) for row in cells for c in row)
    return ["    " + " ".join(c.rjust(width) for c in row) for row in cells]

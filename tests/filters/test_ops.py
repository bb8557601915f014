"""The op table and the NAME[:KEY=VALUE...] parser: defaults, errors with hints, chains, --list."""

import numpy as np
import pytest

from cnntool.errors import EXIT_USAGE, UsageError
from cnntool.filters import kernels as K
from cnntool.filters.ops import (
    OP_NAMES,
    OPS,
    ConvDefaults,
    chain_output_shape,
    chain_scale,
    chain_text,
    describe,
    format_op_list,
    keeps_size,
    parse_op,
    parse_ops,
    run_ops,
)


def test_every_op_parses_with_its_defaults_and_runs(rng):
    x = rng.random((12, 14, 3)) * 255
    for spec in OPS:
        text = spec.name if spec.name != "kernel" else "kernel:values=1,2;3,4"
        op = parse_op(text)
        out = op.apply(x)
        assert out.dtype == np.float64
        assert out.shape == op.output_shape(x.shape), spec.name


def test_defaults_come_from_the_flags_and_keys_override_them():
    defaults = ConvDefaults(stride=2, pad="valid", border="reflect", mode="corr")
    op = parse_op("gaussian:sigma=2", defaults)
    assert op.params == {"sigma": 2.0, "size": 13, "stride": 2, "dilation": 1, "pad": "valid",
                         "border": "reflect", "mode": "corr", "method": "auto"}
    op = parse_op("sobel:axis=x:stride=1:pad=2:border=wrap", defaults)
    assert (op.params["stride"], op.params["pad"], op.params["border"], op.params["mode"]) == (1, 2, "wrap", "corr")
    pool = parse_op("maxpool:size=3", defaults)
    assert pool.params["stride"] is None  # a pool's stride is its size, not --stride
    assert pool.output_shape((9, 9)) == (3, 3)
    assert parse_op("median", defaults).params == {"size": 3, "border": "reflect"}


def test_aliases_and_case():
    assert parse_op("BOX:size=5").name == "mean"
    assert parse_op("gauss").name == "gaussian"
    assert parse_op("laplacian:neighbours=8").matrix.tolist() == K.LAPLACE_8.tolist()
    assert parse_op("custom:values=1").matrix.tolist() == [[1.0]]


def test_custom_kernels_inline_and_from_files(tmp_path):
    op = parse_op("kernel:values=0,1,0;1,-4,1;0,1,0")
    np.testing.assert_array_equal(op.matrix, K.LAPLACE_4)
    assert op.scale == "offset" and op.signed
    assert parse_op("kernel:values=1,1;1,1:normalize=true").matrix.tolist() == [[0.25, 0.25], [0.25, 0.25]]
    assert parse_op("kernel:values=1,2,1").scale == "clip"
    path = tmp_path / "k.npy"
    np.save(path, np.eye(3))
    np.testing.assert_array_equal(parse_op(f"kernel:file={path}").matrix, np.eye(3))
    txt = tmp_path / "dir:with:colons" / "k.txt"  # ':' inside a path is kept
    txt.parent.mkdir()
    txt.write_text("1 2\n3 4\n")
    assert parse_op(f"kernel:file={txt}:normalize=yes").matrix.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("text, message, hint", [
    ("gausian:sigma=2", "unknown filter op 'gausian'", "did you mean gaussian"),
    ("sobl", "unknown filter op", "sobel"),
    ("gaussian:sigm=2", "unknown key 'sigm'", "did you mean sigma"),
    ("gaussian:sigma=abc", "sigma must be a number", "gaussian keys: sigma=1.0 size=auto"),
    ("gaussian:sigma=0", "sigma must be > 0", "gaussian keys"),
    ("gaussian:sigma=inf", "must be finite", "gaussian keys"),
    ("mean:size=0", "size must be >= 1", "mean keys: size=3"),
    ("mean:size=2.5", "size must be an integer", "mean keys"),
    ("mean:size=5000", "size must be <= 1001", "mean keys"),
    ("gaussian:sigma=2000", "needs a 12001-pixel kernel", "gaussian keys"),
    ("sobel:dilation=600", "makes the kernel 1201 pixels wide", "smaller dilation"),
    ("sobel:axis=z", "axis must be one of x|y|magnitude|direction", "axis values"),
    ("sobel:border=reflet", "border must be one of", "did you mean reflect"),
    ("sobel:border=mirror", "border must be one of", "did you mean reflect"),  # SciPy's name for it
    ("sobel:border=nearest", "border must be one of", "did you mean replicate"),
    ("laplace:neighbours=6", "must be one of 4, 8", "laplace keys"),
    ("mean:pad=half", "must be same, valid, full or a number", "mean keys"),
    ("kernel", "give exactly one of values=ROWS or file=PATH", "kernel keys"),
    ("kernel:values=1,2;3", "different lengths", "kernel keys"),
    ("kernel:file=/no/such/k.txt", "kernel file not found", "kernel keys"),
    ("kernel:values=1,1:normalize=maybe", "must be true or false", "kernel keys"),
    ("emboss:strength=2", "unknown key 'strength'", "keys of emboss"),
    ("gaussian:2", "expected KEY=VALUE", "gaussian keys"),
    (":sigma=2", "empty filter op", "NAME[:KEY=VALUE...]"),
])
def test_bad_specs_are_usage_errors_with_hints(text, message, hint):
    with pytest.raises(UsageError) as info:
        parse_op(text)
    assert info.value.exit_code == EXIT_USAGE
    assert message in info.value.message
    assert hint in info.value.hint
    assert "\n" not in info.value.message


def test_empty_chain_is_a_usage_error():
    with pytest.raises(UsageError, match="no filter op"):
        parse_ops([])


def test_chains_text_scale_and_shapes():
    ops = parse_ops(["gaussian:sigma=2", "sobel:axis=x", "maxpool:size=2"])
    assert chain_text(ops) == "gaussian:sigma=2 | sobel:axis=x | maxpool:size=2"
    assert chain_scale(ops) == "offset"  # from sobel x; pooling keeps it
    assert chain_scale(parse_ops(["sobel", "gaussian"])) == "clip"
    assert chain_scale(parse_ops(["sobel:axis=magnitude"])) == "minmax"
    assert chain_scale(parse_ops(["maxpool"])) == "clip"
    assert chain_output_shape(ops, (64, 48, 3)) == (32, 24, 3)
    assert keeps_size(parse_ops(["gaussian", "median", "mean:size=5:pad=2"]))
    assert not keeps_size(parse_ops(["gaussian", "maxpool"]))
    assert not keeps_size(parse_ops(["mean:pad=valid"]))


def test_run_ops_applies_in_order(rng):
    x = rng.random((16, 16))
    ops = parse_ops(["maxpool:size=2", "kernel:values=1,-1:mode=corr:pad=valid"])
    pooled = x.reshape(8, 2, 8, 2).max(axis=(1, 3))
    np.testing.assert_allclose(run_ops(x, ops), pooled[:, :-1] - pooled[:, 1:])


def test_list_shows_every_op_and_its_matrix():
    text = format_op_list()
    for name in OP_NAMES:
        assert f"\n{name}" in "\n" + text
    assert "    -1  0  1\n    -2  0  2\n    -1  0  1" in text  # Sobel x
    assert "     0  1  0\n     1 -4  1\n     0  1  0" in text  # Laplace 4
    info = {spec.name: describe(spec) for spec in OPS}
    assert info["laplace"]["matrix"] == K.LAPLACE_4.tolist()
    assert info["sobel"]["matrix"]["y"] == K.SOBEL_Y.tolist()
    assert info["gaussian"]["keys"] == {"sigma": "1.0", "size": "auto"}
    assert info["maxpool"]["matrix"] is None and info["laplace"]["signed"] is True

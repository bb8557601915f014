import subprocess
import sys

import typer
from typer.testing import CliRunner

from cnntool import __version__
from cnntool.cli.main import app, handle_errors
from cnntool.errors import GateFailed, UsageError

runner = CliRunner()


def _tiny_app(func):
    tiny = typer.Typer()
    tiny.command()(handle_errors(func))
    return tiny


def test_cnntool_error_is_one_line_with_hint_and_its_exit_code():
    def cmd():
        raise UsageError("bad kernel spec 'gauss'", hint="did you mean gaussian?")

    result = runner.invoke(_tiny_app(cmd), [])
    assert result.exit_code == 2
    assert result.stderr == "error: bad kernel spec 'gauss'\nhint: did you mean gaussian?\n"
    assert "Traceback" not in result.output


def test_gate_failure_exits_one():
    def cmd():
        raise GateFailed("accuracy 0.80 is under --fail-under 0.95")

    assert runner.invoke(_tiny_app(cmd), []).exit_code == 1


def test_return_value_is_the_exit_code():
    assert runner.invoke(_tiny_app(lambda: 1), []).exit_code == 1
    assert runner.invoke(_tiny_app(lambda: None), []).exit_code == 0


def test_unexpected_exception_is_one_line_unless_debugging(monkeypatch):
    def cmd():
        raise ZeroDivisionError("division by zero")

    monkeypatch.delenv("CNNTOOL_DEBUG", raising=False)
    result = runner.invoke(_tiny_app(cmd), [])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: internal error: ZeroDivisionError: division by zero"
    assert "Traceback" not in result.stderr
    monkeypatch.setenv("CNNTOOL_DEBUG", "1")
    result = runner.invoke(_tiny_app(cmd), [])
    assert isinstance(result.exception, ZeroDivisionError)


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"cnntool {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("filter", "audit", "train", "finetune", "predict", "explain", "models"):
        assert command in result.stdout


def test_unknown_option_is_a_usage_error():
    result = runner.invoke(app, ["--no-such-option"])
    assert result.exit_code == 2


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_help_imports_no_torch_and_starts_fast():
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from cnntool.cli.main import app\n"
        "try:\n    app(['--help'], prog_name='cnntool')\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'CV2' if 'cv2' in sys.modules else 'NO-CV2')\n"
        "print(f'{time.perf_counter() - t:.3f}', file=sys.stderr)\n"
    )
    out = _run(code)
    assert out.strip().splitlines()[-1] == "NO-TORCH NO-CV2"


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "cnntool", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"cnntool {__version__}"

"""The README's console examples are run, so they cannot drift from the tool (issue 13).

Every ```console block of README.md is run, in README order, in one scratch folder that holds the
bundled ``samples/`` (a later block may use what an earlier one made, such as a run folder).
``$ `` lines are commands (a trailing ``\\`` continues one; ``# exit N`` at the end says the exit
code it must have, default 0); the lines after a command are output it must print, in order:
numbers match any number, ``...`` matches anything, and runs of spaces match any spacing.
The ```bash examples, on data of one's own, are not run; their subcommands and options are
checked against the CLI.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def console_blocks(text: str) -> list[list[tuple[str, int, list[str]]]]:
    """[[(command, exit code, expected lines), ...] per block]."""
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        steps, command, expected, code = [], None, [], 0
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                if command is not None:
                    steps.append((command, code, expected))
                command, expected = line[2:], []
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                match = re.search(r"#\s*exit\s+(\d+)\s*$", command)
                code = int(match.group(1)) if match else 0
            elif command is not None and line.strip():
                expected.append(line)
            i += 1
        if command is not None:
            steps.append((command, code, expected))
        blocks.append(steps)
    return blocks


def line_pattern(expected: str) -> re.Pattern:
    """A regex for one expected output line: numbers match any number, ``...`` anything."""
    parts = []
    for piece in re.split(r"(\.\.\.|" + _NUMBER + r"|\s+)", expected.strip()):
        if not piece:
            continue
        if piece == "...":
            parts.append(".*")
        elif re.fullmatch(_NUMBER, piece):
            parts.append(_NUMBER)
        elif piece.isspace():
            parts.append(r"\s+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


BLOCKS = console_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_console_examples():
    assert len(BLOCKS) >= 8 and sum(len(b) for b in BLOCKS) >= 20


@pytest.mark.slow
def test_readme_console_blocks(tmp_path):
    # One test, blocks in README order: a later block uses what an earlier one made (a run folder),
    # so they cannot be spread over xdist workers.
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200", "CNNTOOL_DEBUG": ""}
    for index, block in enumerate(BLOCKS):
        for command, code, expected in block:
            proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            output = (proc.stdout + proc.stderr).splitlines()
            assert proc.returncode == code, f"block {index}: {command}\nexit {proc.returncode}\n{proc.stderr[-2000:]}"
            position = 0
            for line in expected:
                pattern = line_pattern(line)
                for j in range(position, len(output)):
                    if pattern.fullmatch(output[j].strip()) or pattern.search(output[j]):
                        position = j + 1
                        break
                else:
                    shown = "\n".join(output[:60])
                    pytest.fail(f"README drifted (block {index}): after `{command}` no output line matches:\n"
                                f"  {line}\nactual output:\n{shown}")


def test_line_patterns():
    assert line_pattern("epoch 1/60: train loss 1.5795 ...").fullmatch("epoch 1/60: train loss 0.2 acc 3 *")
    assert not line_pattern("best val accuracy 1.0000").search("best val loss 1.0")
    assert console_blocks("```console\n$ cnntool audit x \\\n  --fail-on any  # exit 1\nA  B\n```")[0] == [
        ("cnntool audit x  --fail-on any  # exit 1", 1, ["A  B"])]
    assert shlex.split("a 'b c'") == ["a", "b c"]


def example_commands(text: str) -> list[str]:
    """Every ``cnntool ...`` command of the README's ```bash/```sh blocks (continuations joined,
    comments and pipes cut off): examples on data of one's own, which the suite cannot run."""
    commands = []
    for body in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            start = line.find("cnntool ")
            if start >= 0 and not line.startswith("#") and not line.startswith("python"):
                commands.append(line[start:].split(" | ")[0].split(" > ")[0].strip())
    return commands


def test_readme_examples_name_real_commands_and_options():
    """Each bash example's subcommand exists and each of its options is one that subcommand
    takes, so an example cannot drift to a flag that was renamed or removed."""
    import typer.main

    from cnntool.cli.main import app

    root = typer.main.get_command(app)
    commands = example_commands(README.read_text(encoding="utf-8"))
    assert len(commands) >= 40
    for line in commands:
        words = shlex.split(line, comments=True)[1:]
        command = root
        while hasattr(command, "commands") and words and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        assert not hasattr(command, "commands"), f"README: `{line}` names no subcommand"
        known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        for word in words:
            if word.startswith("-") and word != "-" and not re.fullmatch(r"-\d.*", word):
                flag = word.split("=")[0]
                assert flag in known, f"README: `{line}`: {command.name} has no option {flag}"


def test_example_commands_are_found():
    text = "```bash\ncnntool detect a -m b \\\n  --conf 0.5  # note\nx | cnntool predict -m m - > p\n```"
    assert example_commands(text) == ["cnntool detect a -m b    --conf 0.5  # note", "cnntool predict -m m -"]

import io
import json

import numpy as np

from cnntool.cli._output import Output, default_format


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_default_format_follows_the_terminal():
    assert default_format(FakeTTY()) == "table"
    assert default_format(io.StringIO()) == "jsonl"


def test_jsonl_streams_plain_values_with_path_first():
    out, err = io.StringIO(), io.StringIO()
    o = Output("jsonl", stdout=out, stderr=err)
    o.emit({"score": np.float32(0.5), "path": "a.png", "shape": np.array([2, 3]), "bad": float("nan")})
    assert out.getvalue().startswith('{"path": "a.png"')  # written at once, not at close
    assert json.loads(out.getvalue()) == {"path": "a.png", "score": 0.5, "shape": [2, 3], "bad": None}
    assert err.getvalue() == ""


def test_csv_has_the_union_of_columns_and_errors_count():
    out = io.StringIO()
    o = Output("csv", stdout=out, stderr=io.StringIO())
    o.emit({"path": "a", "w": 1})
    o.emit({"path": "b", "error": "empty file (0 bytes)"})
    o.close()
    assert out.getvalue().splitlines() == ["path,w,error", "a,1,", "b,,empty file (0 bytes)"]
    assert o.failed == 1 and o.exit_code == 1


def test_table_is_aligned():
    out = io.StringIO()
    o = Output("table", stdout=out, stderr=io.StringIO())
    o.emit({"path": "long/name.png", "n": 1})
    o.emit({"path": "b", "n": 22})
    o.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["path", "n"]
    assert lines[1].index("1") == lines[2].index("22")


def test_quiet_silences_logs_but_not_warnings_and_progress_is_off_without_terminal():
    err = io.StringIO()
    o = Output("jsonl", quiet=True, stdout=io.StringIO(), stderr=err)
    o.log("hello")
    o.warn("bad")
    assert err.getvalue() == "warning: bad\n"
    assert list(Output("jsonl", stdout=io.StringIO(), stderr=io.StringIO()).progress(range(3))) == [0, 1, 2]


def test_csv_writes_booleans_as_jsonl_does():
    out = io.StringIO()
    o = Output("csv", stdout=out, stderr=io.StringIO())
    o.emit({"path": "a", "skipped": False, "correct": True})
    o.close()
    assert out.getvalue().splitlines()[1] == "a,false,true"

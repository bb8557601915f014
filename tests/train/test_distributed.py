"""Two processes under torchrun with the gloo backend on the CPU: one run, written by rank 0 only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnntool.models.checkpoint import load_checkpoint

RUN_FILES = {"best.pt", "last.pt", "config.json", "metrics.csv", "metrics.jsonl", "curves.png", "confusion.png",
             "summary.json"}


@pytest.mark.slow
def test_two_process_gloo_run_writes_once(shapes, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "cnntool", "train", str(shapes), "--arch", "lenet5", "--epochs", "2", "--batch-size", "8",
           "--device", "cpu", "--format", "jsonl"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1                       # one record: rank 0's
    summary = summaries[0]
    assert summary["processes"] == 2 and summary["epochs"] == 2
    assert summary["val_images"] == 18              # both shards counted, each sample once
    # rank 1 chose no run folder of its own: the only one is runs/lenet5-1
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["lenet5-1"]
    run = work / "runs" / "lenet5-1"
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert proc.stderr.count("epoch 2/2") == 1       # only rank 0 logs

"""The `flor` command and `python -m flordb`."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project

FLOR = shutil.which("flor") or str(Path(sys.executable).with_name("flor"))


def flor(p: Project, *args: str, check: bool = True):
    out = subprocess.run([FLOR, *args], cwd=p.path, capture_output=True, text=True)
    if check:
        assert out.returncode == 0, out.stderr
    return out


@pytest.mark.parametrize("cmd", ["runs", "dataframe", "query", "unpack", "stat"])
def test_every_command_has_help(project: Project, cmd: str):
    out = flor(project, cmd, "--help")
    assert "Usage: flor " + cmd in out.stdout


def test_dataframe_formats(trained: Project):
    table = flor(trained, "dataframe", "lr", "val_acc").stdout
    assert table.splitlines()[0].split() == ["projid", "tstamp", "filename", "run_id", "source", "epoch", "lr", "val_acc"]
    assert "[5 rows x 8 columns]" in table
    rows = list(csv.DictReader(io.StringIO(flor(trained, "dataframe", "lr", "val_acc", "--format", "csv").stdout)))
    assert len(rows) == 5 and {r["lr"] for r in rows} == {"0.01", "0.1"}
    data = json.loads(flor(trained, "dataframe", "lr", "val_acc", "--format", "json").stdout)
    assert isinstance(data[0]["lr"], float) and isinstance(data[0]["epoch"], int)


def test_dataframe_where(trained: Project):
    data = json.loads(flor(trained, "dataframe", "lr", "loss", "--where", "lr < 0.05 and epoch = 1", "--format", "json").stdout)
    assert len(data) == 4 and all(r["lr"] == 0.01 and r["epoch"] == 1 for r in data)
    out = flor(trained, "dataframe", "lr", "--where", "lr <", check=False)
    assert out.returncode == 2 and "bad where-clause" in out.stderr and "Traceback" not in out.stderr


def test_runs_and_query(trained: Project):
    out = flor(trained, "runs").stdout
    assert out.count("finished") == 2
    q = flor(trained, "query", "select count(*) as n from logs where value_name = ?", "--param", "loss", "--format", "json").stdout
    assert json.loads(q) == [{"n": 20}]
    out = flor(trained, "query", "drop table runs", check=False)
    assert out.returncode == 2 and "--write" in out.stderr


def test_python_m_flordb_is_the_same_cli(trained: Project):
    out = trained.flor("dataframe", "lr", "--format", "csv")
    assert out.stdout.splitlines()[0] == "projid,tstamp,filename,run_id,source,lr"
    stat = trained.flor("stat").stdout
    assert "python_version:" in stat and "runs: 2" in stat


def test_errors_are_messages_not_tracebacks(tmp_path: Path):
    out = subprocess.run([FLOR, "runs"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2
    assert "no FlorDB project found" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([FLOR, "nonsense"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and "unrecognized subcommand" in out.stderr


def test_reading_commands_record_nothing(trained: Project):
    before = sorted((trained.path / ".flor" / "runs").iterdir())
    flor(trained, "dataframe", "loss")
    trained.flor("runs")
    assert sorted((trained.path / ".flor" / "runs").iterdir()) == before

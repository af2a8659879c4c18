"""The memory a checkpointed state costs: copies not yet written wait for room instead of
piling up behind a writer slower than training (a large state, a slow disk), so the peak
stays near the state plus one copy, and replay restores from those checkpoints exactly."""

from __future__ import annotations

import os
import subprocess

from conftest import PYTHON, Project

MIB = 200

# A checkpoint every epoch (FLOR_EPSILON) of a state the writer needs far longer to store
# than the loop needs to copy it: the writer is always behind.
SCRIPT = f"""
import os
import numpy as np
import flordb as flor

state = np.zeros(({MIB} << 20) // 8)
with flor.checkpointing(state=state):
    for epoch in flor.loop("epoch", range(6)):
        state += 1.0
        flor.log("head", float(state[0]))
"""

PLAIN = f"""
import numpy as np

state = np.zeros(({MIB} << 20) // 8)
for epoch in range(6):
    state += 1.0
"""


def _peak_mib(project: Project, script: str, env: dict) -> float:
    err = project.path.parent / f"{script}.stderr"
    with open(err, "w") as f:
        proc = subprocess.Popen([PYTHON, script], cwd=project.path, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=f)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err.read_text()
    return usage.ru_maxrss / 1024  # KiB on Linux


def test_copies_in_flight_are_bounded_and_replay_stays_exact(project: Project):
    project.write("train.py", SCRIPT)
    project.write("plain.py", PLAIN)
    project.commit_all()
    plain = _peak_mib(project, "plain.py", {})
    ours = _peak_mib(project, "train.py", {"FLOR_EPSILON": "1000"})
    extra = (ours - plain) / MIB
    # One copy in flight (and its buffer kept for the next): before the bound, up to four
    # copies were alive at once (two queued, one being written, one being made).
    assert extra < 1.6, f"peak {ours:.0f} MiB against {plain:.0f} MiB without FlorDB: {extra:.2f} copies"
    runs = project.runs()
    assert len(runs) == 1
    checkpoints = project.py(
        "import json, flordb as flor\n"
        "df = flor.checkpoints(flor.dataframe().run_id.iloc[0])\n"
        "print(json.dumps(sorted(df.iteration.tolist())))"
    )
    # Waiting for room is not skipping: every epoch kept its checkpoint.
    assert checkpoints == [-1, 0, 1, 2, 3, 4, 5] or checkpoints == [0, 1, 2, 3, 4, 5], checkpoints
    project.write("train.py", SCRIPT.replace('float(state[0]))', 'float(state[0]))\n        flor.log("total", float(state.sum()))'))
    project.run("train.py", "--replay_flor", "--apply", "total", "--iter", "epoch=2,4", timeout=300)
    totals = project.py(
        "import json, flordb as flor\n"
        "df = flor.dataframe('total')\n"
        "print(json.dumps(df.dropna(subset=['total'])[['epoch', 'total']].values.tolist()))"
    )
    n = (MIB << 20) // 8
    assert sorted(map(tuple, totals)) == [(2, 3.0 * n), (4, 5.0 * n)], totals

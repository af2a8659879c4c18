"""flordb 4.0.1's tests/test_capture.py, ported as black-box tests.

4.0.1 checks part of its output capture through private pieces (its tee object, its
`logging` hook, its line-parsing functions). Here every case is a script that prints,
run the way a user runs it in a fresh git repository, and read back through the run
files under .flor/runs/, flor.io(), flor.query() on the `logs` view, flor.dataframe()
and `python -m flordb capture`. Each scenario is recorded once per module and checked
by several tests."""

from __future__ import annotations

import json

import pytest

from conftest import Project, new_project, run_files, settle

MARKER = " ...[flor: line truncated]"  # 4.0.1's truncation marker, kept by this project






def records(p: Project, path=None) -> list[dict]:
    files = [path] if path else run_files(p)
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]


def io_of(recs: list[dict]) -> list[tuple]:
    return [(r["name"], r["value"]) for r in recs if r["name"].startswith("io::")]


CACHE = """
import json, flordb as flor
def plain(v):
    v = v.item() if hasattr(v, "item") else v
    return None if v is None or v != v else v
df = flor.query("select run_id, source, value_name, value, ctx from logs")
print(json.dumps([
    {"run": r.run_id, "source": r.source, "name": r.value_name, "value": plain(r.value),
     "ctx": json.loads(r.ctx) if isinstance(r.ctx, str) else None}
    for r in df.itertuples()
]))
"""


def cache(p: Project, source: str | None = None) -> list[dict]:
    """Rows of the `logs` view (4.0.1's table), optionally of one source."""
    rows = p.py(CACHE)
    return [r for r in rows if source is None or r["source"] == source]




def git_state(p: Project) -> tuple:
    return (
        p.git("rev-parse", "-q", "--verify", "HEAD", check=False),
        p.git("for-each-ref"),
        p.git("status", "--porcelain", "--untracked-files=all"),
    )


# The script 4.0.1's end-to-end capture tests record.
TRAIN = """
import logging

import flordb as flor

logging.basicConfig(level=logging.INFO, format="%(message)s")

print("setup done")
for epoch in flor.loop("epoch", range(3)):
    print(f"epoch {epoch} loss: {1.0 / (epoch + 1):.4f}")
    logging.info("validated epoch %d", epoch)
    flor.log("val_acc", 90 + epoch)
"""

EPOCH_LINES = ["epoch 0 loss: 1.0000", "epoch 1 loss: 0.5000", "epoch 2 loss: 0.3333"]


# --- 4.0.1's TestTee, TestMuted and TestLoggingDispatch, as one printing script ----------

SHAPES = """
import logging, sys
import flordb as flor

logging.basicConfig(level=logging.INFO, format="%(message)s")  # a StreamHandler on stderr
print("first\\nsecond")
print("a", "b")
print("\\n\\n   \\n")
for pct in range(0, 101, 10):
    sys.stderr.write(f"\\r{pct}%|{'#' * (pct // 10)}")
sys.stderr.write("\\n")
for i in range(500):
    sys.stdout.write(f"\\r{i:03d}" + "x" * 200)
sys.stdout.write("\\n")
logging.getLogger().warning("careful")
logging.info("epoch %d", 3)
logging.getLogger("trainer.val").error("diverged")
logging.info("one\\ntwo")
flor.restore("ckpt.pth")
print("after the notice")
print("no newline at exit", end="")
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    p = new_project(tmp_path_factory, "shapes")
    p.write("shapes.py", SHAPES)
    on = p.run("shapes.py")
    first = run_files(p)[0]
    off = p.run("shapes.py", env={"FLOR_CAPTURE": "0"})
    return {"on": on, "off": off, "io": io_of(records(p, first))}


def test_forwards_to_the_wrapped_stream(shapes):
    # The terminal gets exactly what it gets with capture off.
    assert shapes["on"].stdout == shapes["off"].stdout
    assert shapes["on"].stderr == shapes["off"].stderr
    assert shapes["on"].stdout.startswith("first\nsecond\na b\n")


def test_one_record_per_newline(shapes):
    assert shapes["io"][:2] == [("io::stdout", "first"), ("io::stdout", "second")]


def test_a_single_print_spans_several_writes(shapes):
    assert ("io::stdout", "a b") in shapes["io"]


def test_unterminated_output_is_recorded_at_exit(shapes):
    assert shapes["io"][-1] == ("io::stdout", "no newline at exit")


def test_blank_lines_are_dropped(shapes):
    assert not [line for _, line in shapes["io"] if not line.strip()]


def test_progress_bar_repaints_collapse_to_one_record(shapes):
    assert [r for r in shapes["io"] if r[0] == "io::stderr"] == [("io::stderr", "100%|##########")]


def test_repainting_keeps_only_the_last_state(shapes):
    # 4.0.1 checks its buffer's size; what a user sees is one record, the final repaint.
    long = [line for _, line in shapes["io"] if "xxx" in line]
    assert long == ["499" + "x" * 200]


def test_muted_writes_pass_through_unrecorded(shapes):
    # FlorDB's own notice reaches the terminal but is not the run's output.
    assert "flor.restore(...) no longer has an effect" in shapes["on"].stderr
    assert not [line for _, line in shapes["io"] if "no longer has an effect" in line]


def test_mute_is_restored_after_flordbs_own_message(shapes):
    assert ("io::stdout", "after the notice") in shapes["io"]


def test_level_names_the_channel(shapes):
    assert ("io::log::warning", "careful") in shapes["io"]


def test_logging_args_are_interpolated(shapes):
    assert ("io::log::info", "epoch 3") in shapes["io"]


def test_non_root_logger_name_rides_along(shapes):
    assert ("io::log::error", "trainer.val: diverged") in shapes["io"]


def test_multiline_log_messages_become_multiple_records(shapes):
    info = [line for ch, line in shapes["io"] if ch == "io::log::info"]
    assert info == ["epoch 3", "one", "two"]


def test_downstream_handlers_run_muted(shapes):
    # basicConfig's StreamHandler writes each message to stderr; that write is no
    # second record.
    assert "diverged" in shapes["on"].stderr
    stderr_rows = [line for ch, line in shapes["io"] if ch == "io::stderr"]
    assert not [line for line in stderr_rows if line in ("careful", "epoch 3", "diverged", "one", "two")]


# --- set_capture bounds and switches, FLOR_CAPTURE values, tqdm -------------------------

SCRIPTS = {
    "trunc.py": 'import flordb as flor\nflor.set_capture(max_line=32)\nprint("y" * 200)\n',
    "ceiling.py": (
        "import flordb as flor\nflor.set_capture(max_records=5)\n"
        "for i in range(50):\n    print('line', i)\nflor.log('done', 1)\n"
    ),
    "off.py": "import flordb as flor\nflor.set_capture(False)\nprint('invisible to flor')\nflor.log('x', 1)\n",
    "bar.py": (
        "import flordb as flor\nfrom tqdm import tqdm\n"
        "for i in flor.loop('epoch', range(2)):\n    for _ in tqdm(range(200)):\n        pass\n"
        "flor.log('done', 1)\n"
    ),
    "extract_flag.py": "import flordb as flor\nflor.set_capture(extract=True)\nprint('loss: 0.5')\n",
}
ENV_VALUES = [("0", False), ("false", False), ("NO", False), ("1", True), ("true", True), ("", True)]


@pytest.fixture(scope="module")
def misc(tmp_path_factory):
    p = new_project(tmp_path_factory, "misc")
    procs = {}
    for name, text in SCRIPTS.items():
        p.write(name, text)
        procs[name] = p.run(name)
    p.write("hello.py", "import flordb as flor\nprint('hello')\nflor.log('x', 1)\n")
    for value, _ in ENV_VALUES:
        p.run("hello.py", env={"FLOR_CAPTURE": value})
    by_script: dict[str, list[list[dict]]] = {}
    for f in run_files(p):
        recs = records(p, f)
        by_script.setdefault(recs[0]["filename"], []).append(recs)
    return {"p": p, "procs": procs, "runs": by_script, "extract": cache(p, "extract")}


def test_long_lines_are_truncated(misc):
    ((_, line),) = io_of(misc["runs"]["trunc.py"][0])
    assert line == "y" * 32 + MARKER


def test_record_ceiling_stops_capture(misc):
    lines = [line for _, line in io_of(misc["runs"]["ceiling.py"][0])]
    assert lines == [f"line {i}" for i in range(5)]


def test_record_ceiling_is_settable(misc):
    (recs,) = misc["runs"]["ceiling.py"]
    assert len(io_of(recs)) == 5
    assert [r["value"] for r in recs if r["name"] == "done"] == [1]
    assert len(misc["procs"]["ceiling.py"].stdout.splitlines()) == 50  # all still printed


def test_set_capture_false_records_nothing_but_still_prints(misc):
    (recs,) = misc["runs"]["off.py"]
    assert io_of(recs) == []
    assert [r["name"] for r in recs if r["name"] == "x"] == ["x"]
    assert "invisible to flor" in misc["procs"]["off.py"].stdout


@pytest.mark.parametrize("value,captures", ENV_VALUES, ids=[v or "empty" for v, _ in ENV_VALUES])
def test_flor_capture_env_values(misc, value, captures):
    runs = misc["runs"]["hello.py"]
    assert len(runs) == len(ENV_VALUES)
    recs = runs[[v for v, _ in ENV_VALUES].index(value)]
    assert io_of(recs) == ([("io::stdout", "hello")] if captures else [])


def test_a_tqdm_bar_does_not_produce_a_row_per_repaint(misc):
    (recs,) = misc["runs"]["bar.py"]
    bars = io_of(recs)
    assert 1 <= len(bars) <= 2 and all("200/200" in line for _, line in bars)


def test_set_capture_extract_says_where_extraction_went(misc):
    out = misc["procs"]["extract_flag.py"]
    told = out.stdout + out.stderr
    assert "no effect" in told and "capture --extract" in told
    assert misc["extract"] == []


def test_io_channels_are_apart_from_metrics(misc):
    # 4.0.1's is_io_channel: flor.io() holds the io:: channels, never metrics or timings.
    channels = misc["p"].py("import json, flordb as flor\nprint(json.dumps(sorted(set(flor.io()['channel']))))")
    assert channels == ["io::stderr", "io::stdout"]


# --- extraction rules (4.0.1's TestExtractPairs and TestExtractFields) ------------------

RECOGNIZED = {
    "loss: 0.42": [("loss", 0.42)],
    "acc=0.91": [("acc", 0.91)],
    "train loss: 0.5, val loss: 0.7": [("loss", 0.5)],
    "lr: 1e-3": [("lr", 0.001)],
    "delta: -3.5": [("delta", -3.5)],
    "val_acc : 90": [("val_acc", 90.0)],
    "epoch 1 | loss: 0.4 | acc: 0.9": [("acc", 0.9), ("loss", 0.4)],
}
REJECTED = [
    "fetching http://host:80/data",
    "Epoch 1/10",
    "started at 2026-08-13T11:27:06",
    "elapsed 11:27:06",
    "acc: 90%",
    "checkpoint=/tmp/ckpt.pth",
    "device: cuda",
    "no pairs here at all",
]
INDEXED = {
    "epoch 0 | loss: 0.5": ("epoch", 0),
    "Epoch 1/10 loss: 0.4": ("epoch", 1),
    "step: 1200 | lr: 1e-3": ("step", 1200),
    "step=7 loss: 0.1": ("step", 7),
    "iteration 7 | val_loss=0.22": ("iteration", 7),
    "batch 32 | loss: 0.1": ("batch", 32),
    "loss: 0.4, epoch: 3": ("epoch", 3),
}
NO_INDEX = ["Loading 5 files", "epoch 1.5 | loss: 0.2", "loss: 0.42", "trained for 3 epochs", "elapsed 11:27:06"]
MANY = " ".join(f"m{i}: {i}" for i in range(50))
OTHERS = [
    "loss: 0.5 loss: 0.9",
    MANY,
    "epoch: 2 | loss: 0.3",
    "epoch 1/10 loss: 0.4 acc: 0.9",
    "epoch 1 | step: 40 | loss: 0.2",
    "loss: 1",
]
LINES = list(dict.fromkeys([*RECOGNIZED, *REJECTED, *INDEXED, *NO_INDEX, *OTHERS]))


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """Each line printed in its own iteration of a loop `case`, then `capture --extract`:
    line -> (sorted measures, index the text gave or None)."""
    p = new_project(tmp_path_factory, "lines")
    p.write("lines.py", f"import flordb as flor\nLINES = {LINES!r}\nfor i in flor.loop('case', range(len(LINES))):\n    print(LINES[i])\n")
    p.run("lines.py")
    p.flor("capture", "--extract")
    got = {line: ([], None) for line in LINES}
    for r in cache(p, "extract"):
        case, *rest = r["ctx"]
        line = LINES[case["iteration"]]
        measures, _ = got[line]
        measures.append((r["name"], float(r["value"])))
        got[line] = (measures, (rest[0]["name"], rest[0]["iteration"]) if rest else None)
    return {line: (sorted(m), idx) for line, (m, idx) in got.items()}


@pytest.mark.parametrize("line", list(RECOGNIZED))
def test_extract_recognized(extracted, line):
    assert extracted[line][0] == sorted(RECOGNIZED[line])


@pytest.mark.parametrize("line", REJECTED)
def test_extract_rejected(extracted, line):
    assert extracted[line] == ([], None)


def test_first_occurrence_of_a_key_wins(extracted):
    assert extracted["loss: 0.5 loss: 0.9"][0] == [("loss", 0.5)]


def test_pairs_per_line_are_capped(extracted):
    assert len(extracted[MANY][0]) == 8


@pytest.mark.parametrize("line", list(INDEXED))
def test_step_prefixes_become_the_index(extracted, line):
    assert extracted[line][1] == INDEXED[line]


@pytest.mark.parametrize("line", NO_INDEX)
def test_no_index_is_invented(extracted, line):
    assert extracted[line][1] is None


def test_the_index_is_not_also_a_measure(extracted):
    assert extracted["epoch: 2 | loss: 0.3"] == ([("loss", 0.3)], ("epoch", 2))


def test_measures_survive_beside_the_index(extracted):
    assert extracted["epoch 1/10 loss: 0.4 acc: 0.9"] == ([("acc", 0.9), ("loss", 0.4)], ("epoch", 1))


def test_a_second_step_name_stays_a_measure(extracted):
    measures, index = extracted["epoch 1 | step: 40 | loss: 0.2"]
    assert index == ("epoch", 1) and ("step", 40.0) in measures


def test_nothing_found_gives_nothing(extracted):
    assert extracted["no pairs here at all"] == ([], None)
    assert extracted["loss: 1"] == ([("loss", 1.0)], None)


# --- 4.0.1's TestCapturedRun, TestDisabling.test_env_var_turns_capture_off ---------------


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    p = new_project(tmp_path_factory, "captured")
    p.write("train.py", TRAIN)
    p.write("train2.py", TRAIN)
    on = p.run("train.py", "--kwargs", "unused=1")  # the unread key makes FlorDB say something
    off = p.run("train2.py", env={"FLOR_CAPTURE": "0"})
    on_file, off_file = run_files(p)
    csv = p.run("-c", "import flordb as flor; print(flor.dataframe('val_acc').to_csv(index=False))").stdout
    return {"p": p, "on": on, "off": off, "recs": records(p, on_file), "off_recs": records(p, off_file), "csv": csv}


def test_prints_are_recorded_with_loop_context(captured):
    got = [(r["value"], r["ctx"]) for r in captured["recs"] if r["name"] == "io::stdout"]
    assert ("setup done", None) in got
    for epoch, line in enumerate(EPOCH_LINES):
        assert (line, [{"name": "epoch", "iteration": epoch, "value": str(epoch)}]) in got


def test_captured_io_gets_its_own_value_type(captured):
    types = {r["name"]: r["type"] for r in captured["recs"]}
    assert types["io::stdout"] == 2 and types["io::log::info"] == 2 and types["val_acc"] == 1


def test_flor_log_echo_is_not_captured(captured):
    assert not [line for _, line in io_of(captured["recs"]) if "val_acc" in line]
    assert len([r for r in captured["recs"] if r["name"] == "val_acc"]) == 3
    # Documented: flor.log does not echo at all here (4.0.1 prints each call).
    assert "val_acc" not in captured["on"].stdout


def test_a_logging_call_produces_exactly_one_record(captured):
    info = [line for ch, line in io_of(captured["recs"]) if ch == "io::log::info"]
    assert info == [f"validated epoch {e}" for e in range(3)]
    assert "validated epoch 0" in captured["on"].stderr
    assert not [line for ch, line in io_of(captured["recs"]) if ch == "io::stderr" and "validated" in line]


def test_flor_own_chatter_is_not_captured(captured):
    own = [line for line in captured["on"].stderr.splitlines() if line.startswith("flordb")]
    assert own, "the unread --kwargs key should have made FlorDB say so"
    lines = [line for _, line in io_of(captured["recs"])]
    assert not [line for line in lines if line in own or "never read" in line]


def test_capture_does_not_disturb_the_metric_table(captured):
    lines = [line for line in captured["csv"].splitlines() if line.strip()]
    # Documented difference: a run_id column beside tstamp.
    assert lines[0] == "projid,tstamp,filename,run_id,source,epoch,val_acc"
    tail = lambda script: sorted(line.split(",", 5)[5] for line in lines[1:] if f",{script}," in line)
    assert tail("train.py") == tail("train2.py") == ["0,90", "1,91", "2,92"]
    assert {line.split(",")[4] for line in lines[1:]} == {"forward"}


def test_stdout_still_reaches_the_terminal(captured):
    assert captured["on"].stdout.splitlines() == ["setup done", *EPOCH_LINES]


def test_env_var_turns_capture_off(captured):
    assert "setup done" in captured["off"].stdout
    assert io_of(captured["off_recs"]) == []


# --- 4.0.1's TestZeroCodeChanges --------------------------------------------------------

PRINT_ONLY = """
import flordb as flor

for epoch in range(3):
    print(f'epoch {epoch} | loss: {1.0 / (epoch + 2):.4f}')
"""


@pytest.fixture(scope="module")
def print_only(tmp_path_factory):
    p = new_project(tmp_path_factory, "print_only")
    p.write("train.py", PRINT_ONLY)
    p.run("train.py")
    settle(p)
    return p


def test_the_run_is_written_at_all(print_only):
    assert len(run_files(print_only)) == 1


def test_prints_are_the_records(print_only):
    assert [line for ch, line in io_of(records(print_only)) if ch == "io::stdout"] == [
        "epoch 0 | loss: 0.5000",
        "epoch 1 | loss: 0.3333",
        "epoch 2 | loss: 0.2500",
    ]


def test_the_run_still_gets_its_auto_commit(print_only):
    # Documented difference: the commit is refs/flor/runs/<run>, not a commit on a branch.
    (run_file,) = run_files(print_only)
    ref = f"refs/flor/runs/{run_file.stem}"
    assert print_only.git("log", "-1", "--format=%s", ref).startswith("FLOR::Auto-commit::")
    assert f".flor/runs/{run_file.name}" in print_only.git("ls-tree", "-r", "--name-only", ref)
    assert print_only.git("for-each-ref", "--format=%(refname)", "refs/heads") == ""  # no branch made


def test_the_run_reaches_the_cache(print_only):
    assert len([r for r in cache(print_only) if r["name"] == "io::stdout"]) == 3


def test_a_silent_script_records_nothing(project):
    project.write("quiet.py", "import flordb as flor\nx = 1 + 1\n")
    project.run("quiet.py")
    assert run_files(project) == []


# --- 4.0.1's TestAdHocInvocations, TestDisabling.test_flor_subcommands_... --------------


@pytest.fixture(scope="module")
def adhoc(tmp_path_factory):
    p = new_project(tmp_path_factory, "adhoc")
    p.write("train.py", TRAIN)
    p.run("train.py")
    settle(p)
    snap = {"files0": run_files(p), "git0": git_state(p), "io0": [r for r in cache(p) if r["name"].startswith("io::")]}
    p.run("-c", "import flordb as flor; print(flor.io())")
    snap["files1"] = run_files(p)
    p.run("-c", "import flordb as flor; print('noise')")
    snap["git1"] = git_state(p)
    p.run("-c", "import flordb as flor; print(flor.io().to_string())")
    snap["io1"] = [r for r in cache(p) if r["name"].startswith("io::")]
    p.flor("dataframe", "val_acc")
    p.flor("unpack")
    snap["io2"] = [r for r in cache(p) if r["name"].startswith("io::")]
    snap["files2"] = run_files(p)
    return snap


def test_dash_c_does_not_record_a_run(adhoc):
    assert adhoc["files1"] == adhoc["files0"] and len(adhoc["files0"]) == 1


def test_dash_c_does_not_add_a_commit(adhoc):
    assert adhoc["git1"] == adhoc["git0"]


def test_reading_back_does_not_pollute_the_io_table(adhoc):
    assert len(adhoc["io0"]) == 7  # setup line, 3 epoch lines, 3 log lines
    assert adhoc["io1"] == adhoc["io0"]


def test_flor_subcommands_do_not_capture_themselves(adhoc):
    assert adhoc["io2"] == adhoc["io0"] and adhoc["files2"] == adhoc["files0"]


# --- 4.0.1's TestExtraction ---------------------------------------------------------------


@pytest.fixture(scope="module")
def extraction(tmp_path_factory):
    """One run of TRAIN, then preview, extract, extract again, unpack, a deleted cache."""
    p = new_project(tmp_path_factory, "extraction")
    p.write("train.py", TRAIN)
    p.run("train.py")
    settle(p)
    s = {"recs": records(p), "fresh": cache(p)}
    p.flor("unpack")
    s["unpacked_first"] = cache(p, "extract")
    s["preview"] = p.flor("capture", "--preview")
    s["after_preview"] = cache(p, "extract")
    s["git_before"] = git_state(p)
    s["extract"] = p.flor("capture", "--extract")
    s["git_after"] = git_state(p)
    s["once"] = cache(p)
    s["frame"] = p.frame("loss")
    p.flor("capture", "--extract")
    s["twice"] = cache(p, "extract")
    p.flor("unpack")
    s["unpacked"] = cache(p)
    (p.path / ".flor" / "flor.db").unlink()  # what a teammate's fresh clone looks like
    p.flor("unpack")
    s["rebuilt"] = cache(p, "extract")
    p.flor("capture", "--extract")
    s["re_extracted"] = cache(p, "extract")
    s["p"] = p
    return s


def extract_rows(rows):
    return [r for r in rows if r["source"] == "extract"]


def test_a_run_writes_no_extractions_on_its_own(extraction):
    assert [r for r in extraction["recs"] if r["name"] == "loss"] == []
    assert extract_rows(extraction["fresh"]) == []


def test_preview_writes_nothing(extraction):
    out = extraction["preview"].stdout
    assert "loss" in out and "nothing written" in out
    assert extraction["after_preview"] == []


def test_extract_writes_the_metrics_preview_promised(extraction):
    loss = [r for r in extract_rows(extraction["once"]) if r["name"] == "loss"]
    loss.sort(key=lambda r: r["ctx"][0]["iteration"])
    assert [float(r["value"]) for r in loss] == [1.0, 0.5, 0.3333]
    assert [r["ctx"][0]["iteration"] for r in loss] == [0, 1, 2]
    # The preview shows one line per value it would write (4.0.1 marks them with "<-").
    assert len([line for line in extraction["preview"].stdout.splitlines() if "loss = " in line]) == len(loss)


def test_the_raw_line_survives_alongside_the_extraction(extraction):
    stdout = [r["value"] for r in extraction["once"] if r["name"] == "io::stdout" and r["source"] == "forward"]
    assert "epoch 0 loss: 1.0000" in stdout


def test_extracted_metrics_reach_the_dataframe(extraction):
    rows = [(r["source"], r["epoch"], r["loss"]) for r in extraction["frame"]]
    assert sorted(rows) == [("extract", 0, 1.0), ("extract", 1, 0.5), ("extract", 2, 0.3333)]


def test_extracting_twice_leaves_what_extracting_once_leaves(extraction):
    assert extraction["twice"] == extract_rows(extraction["once"])


def test_unpack_drops_the_extraction(extraction):
    """Documented difference: 4.0.1's unpack keeps extracted rows; here `flor unpack`
    rebuilds the cache from the run files, so they go (extract again)."""
    assert extract_rows(extraction["unpacked"]) == []
    forward = lambda rows: [r for r in rows if r["source"] == "forward"]
    assert forward(extraction["unpacked"]) == forward(extraction["once"])


def test_unpack_does_not_invent_extractions(extraction):
    assert extraction["unpacked_first"] == []


def test_the_text_is_kept_in_git_and_the_reading_is_not(extraction):
    """Documented difference: the run file travels in git under refs/flor/runs/<run>,
    not in the branch; nothing of .flor/ is tracked on the branch."""
    p = extraction["p"]
    (run_file,) = run_files(p)
    tree = p.git("ls-tree", "-r", "--name-only", f"refs/flor/runs/{run_file.stem}").splitlines()
    assert f".flor/runs/{run_file.name}" in tree
    assert not [f for f in tree if f.startswith(".flor/") and not f.startswith(".flor/runs/")]
    assert p.git("ls-files", ".flor") == ""
    assert not (p.path / ".flor" / "extracted").exists()


def test_a_rebuilt_cache_loses_the_columns_until_re_extracted(extraction):
    # The cache is .flor/flor.db here (4.0.1: .flor/<projid>.db).
    assert extract_rows(extraction["once"])
    assert extraction["rebuilt"] == []
    assert extraction["re_extracted"] == extract_rows(extraction["once"])


def test_extraction_commits_nothing(extraction):
    assert extraction["git_after"] == extraction["git_before"]
    assert "`flor unpack` drops them" in extraction["extract"].stdout  # the rows live in the cache only


UNNAMED = """
import flordb as flor

for epoch in range(3):
    print(f"epoch {epoch} | loss: {1.0 / (epoch + 1):.4f}")
"""


def test_an_unnamed_loop_gets_its_index_back_from_the_text(project):
    """The script never calls flor.loop: the index comes from the text, so the table has
    one row per epoch, not a 3x3 join of `epoch` and `loss`."""
    project.write("train.py", UNNAMED)
    project.run("train.py")
    project.flor("capture", "--extract")
    rows = extract_rows(cache(project))
    assert [r["name"] for r in rows] == ["loss"] * 3
    assert sorted((r["ctx"][0]["name"], r["ctx"][0]["iteration"]) for r in rows) == [("epoch", 0), ("epoch", 1), ("epoch", 2)]
    out = project.run("-c", "import flordb as flor; print(flor.dataframe('loss').to_csv(index=False))").stdout
    assert len(out.strip().splitlines()) == 4


# --- 4.0.1's TestReplay (of captured output) ---------------------------------------------


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    p = new_project(tmp_path_factory, "replayed")
    p.write("train.py", TRAIN)
    p.run("train.py")
    settle(p)
    (run_file,) = run_files(p)
    s = {"before": run_file.read_bytes()}
    p.run("train.py", "--replay_flor", "--apply", "val_acc", "--iter", "epoch=all")
    s["quiet"] = [r for r in cache(p, "replay") if r["name"].startswith("io::")]
    p.run("train.py", "--replay_flor", "--apply", "val_acc,io::stdout", "--iter", "epoch=all")
    s["io"] = [r for r in cache(p, "replay") if r["name"].startswith("io::")]
    s["files"] = run_files(p)
    s["after"] = run_file.read_bytes()
    p.flor("unpack")
    s["unpacked"] = [r for r in cache(p, "replay") if r["name"].startswith("io::")]
    return s


def test_a_projected_replay_stays_quiet(replayed):
    assert replayed["quiet"] == []


def test_io_can_be_projected_explicitly(replayed):
    assert [(r["name"], r["value"]) for r in replayed["io"]] == [("io::stdout", line) for line in ["setup done", *EPOCH_LINES]]


def test_replay_does_not_touch_the_forward_jsonl(replayed):
    assert replayed["after"] == replayed["before"] and len(replayed["files"]) == 1


def test_unpack_keeps_replayed_io(replayed):
    """Documented-different: replayed values live in their replay files under
    .flor/replays/, which `flor unpack` reads back (4.0.1's unpack wipes them)."""
    assert replayed["unpacked"] == replayed["io"]

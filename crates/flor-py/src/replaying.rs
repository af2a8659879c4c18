//! The replay side: finding the run to reproduce, reading the script's log sites,
//! planning each outer loop from the checkpoints, and pointing the recorder at the
//! replay's own file.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use flor_core::analyze;
use flor_core::git::Repo;
use flor_core::record::verify::{Expected, Verifier};
use flor_core::record::{LineHeader, ReplaySink};
use flor_core::replay::{self, Request};
use flor_core::store::Store;
use flor_core::Error;

use crate::checkpoints::VERIFIED;
use crate::convert::to_py;
use crate::errors::{to_py as err_to_py, ReplayError};
use crate::recording::with_recorder;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(script_info, m)?)?;
    m.add_function(wrap_pyfunction!(read_script, m)?)?;
    m.add_function(wrap_pyfunction!(replay_open, m)?)?;
    m.add_function(wrap_pyfunction!(replay_start, m)?)?;
    m.add_function(wrap_pyfunction!(replay_mute, m)?)?;
    m.add_function(wrap_pyfunction!(replay_plan, m)?)?;
    m.add_function(wrap_pyfunction!(iter_spec, m)?)?;
    m.add_function(wrap_pyfunction!(script_loops, m)?)?;
    m.add_function(wrap_pyfunction!(local_modules, m)?)?;
    m.add_function(wrap_pyfunction!(loop_names, m)?)?;
    m.add_function(wrap_pyfunction!(replay_skipping_nested, m)?)?;
    m.add_function(wrap_pyfunction!(replay_divergence, m)?)?;
    m.add_function(wrap_pyfunction!(replay_report, m)?)?;
    m.add_function(wrap_pyfunction!(replay_abandon, m)?)?;
    m.add_function(wrap_pyfunction!(replay_merge, m)?)?;
    Ok(())
}

/// What the run found by `replay_open` recorded, kept for `replay_start`'s check (the
/// run file is read once).
static EXPECTED: Mutex<Option<(String, Expected)>> = Mutex::new(None);

/// The iterations an `--iter LOOP=SPEC` selects out of `n` (`None`: a loop whose length
/// is unknown, where only lists and `none` can be answered), as `flor replay` reads it.
#[pyfunction]
#[pyo3(signature = (spec, n, loop_name))]
fn iter_spec(spec: &str, n: Option<i64>, loop_name: &str) -> PyResult<Vec<i64>> {
    let unsized_ = n.is_none() && matches!(spec.trim(), "all" | "last");
    let result = if unsized_ {
        Err("the loop's length is unknown here".to_string())
    } else {
        replay::campaign::requested(spec, n.unwrap_or(i64::MAX))
    };
    result.map_err(|e| ReplayError::new_err(format!("--iter {loop_name}={spec}: {e}")))
}

/// `(project root, script path relative to it or None)` of this process.
#[pyfunction]
fn script_info(py: Python<'_>) -> PyResult<(PathBuf, Option<String>)> {
    with_recorder(py, |r| {
        let c = r.config();
        Ok((c.root.clone(), c.script.clone()))
    })
}

/// The log sites of a script: `[(name or None, line, level, [loop names], needs_nested,
/// clock)]`; `needs_nested`: a level-1 statement reading what its nested loops build, so
/// replay runs those loops for it; `clock`: its value depends on the clock or the machine,
/// so replay does not compare it with the record.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_script(
    source: &str,
) -> PyResult<Vec<(Option<String>, usize, usize, Vec<String>, bool, bool)>> {
    let info = analyze::read_script(source)
        .map_err(|e| err_to_py(Error::Replay(format!("cannot read the script: {e}"))))?;
    Ok(info
        .sites
        .into_iter()
        .map(|s| {
            (
                s.name.literal().map(str::to_owned),
                s.line,
                s.level,
                s.loops,
                s.needs_nested,
                s.clock,
            )
        })
        .collect())
}

/// The project's own modules that `script` (relative to `root`) imports, relative to
/// `root` (see `replay::campaign::local_modules`).
#[pyfunction]
fn local_modules(root: PathBuf, script: String, source: &str) -> Vec<String> {
    replay::campaign::local_modules(&root, &script, source)
}

/// The names of every `flor.loop` and `flor.iteration` of a script (none if it does not
/// parse).
#[pyfunction]
fn loop_names(source: &str) -> Vec<String> {
    analyze::read_script(source)
        .map(|info| {
            info.loops
                .into_iter()
                .map(|l| l.name.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `flor.loop`s of a script: `[(name, line, end_line, level, [(carried path,
/// rebound)])]`; an outer loop's carried state is what its checkpoints must hold beyond the
/// enrolled objects (`analyze::CarriedVar`). A script that does not parse has none.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn script_loops(source: &str) -> Vec<(String, usize, usize, usize, Vec<(String, bool)>)> {
    let Ok(info) = analyze::read_script(source) else {
        return Vec::new();
    };
    info.loops
        .into_iter()
        .filter(|l| l.kind == analyze::LoopKind::Loop)
        .map(|l| {
            let carried = l.carried.into_iter().map(|c| (c.path, c.rebound)).collect();
            (
                l.name.as_str().to_owned(),
                l.line,
                l.end_line,
                l.level,
                carried,
            )
        })
        .collect()
}

/// Finds the run to replay (`run`, or the newest finished run of `script`) and the
/// file the replay of `names` writes. Returns a dict with `run_id`, `tstamp`,
/// `projid`, `filename`, `args` (list of pairs), `loop_counts`, `flor_dir`, `output`,
/// `argv` (the recorded command line), `start`, `cwd`, and `written_since`: the
/// project's ignored files written after the run started (absolute paths), which the run
/// did not see as they are now, and `as_then`: untracked files written since that the
/// run's code version holds (path -> bytes as the run saw them); `starts`: where its state came from when it resumed
/// another run (JSON objects, see `record::meta::START`).
#[pyfunction]
#[pyo3(signature = (cwd, script, run, names, tag))]
fn replay_open<'py>(
    py: Python<'py>,
    cwd: PathBuf,
    script: Option<String>,
    run: Option<String>,
    names: Vec<String>,
    tag: String,
) -> PyResult<Bound<'py, PyDict>> {
    let (target, output, left_out) = py
        .detach(|| {
            let store = Store::discover(&cwd)?;
            let (target, expected) =
                replay::find_with_expected(&store, script.as_deref(), run.as_deref())?;
            let output = target.output(&names, &tag);
            *EXPECTED.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((target.run_id.clone(), expected));
            let root = store.layout().root().to_path_buf();
            // Files of the checkout the run did not see as they are now: ignored ones,
            // and untracked ones, which its code version holds as they were (or not).
            let mut left_out: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
            if let Some(repo) = Repo::discover(&root) {
                for rel in repo.ignored_as_of(target.start).left_out {
                    left_out.push((root.join(rel), None));
                }
                for rel in repo.untracked_written_since(target.start) {
                    let then = target
                        .version
                        .as_deref()
                        .and_then(|v| repo.file_bytes_at(v, &rel));
                    left_out.push((root.join(rel), then));
                }
            }
            Ok::<_, Error>((target, output, left_out))
        })
        .map_err(err_to_py)?;
    let d = PyDict::new(py);
    d.set_item("run_id", &target.run_id)?;
    d.set_item("tstamp", &target.tstamp)?;
    d.set_item("projid", &target.projid)?;
    d.set_item("filename", &target.filename)?;
    d.set_item("script", &target.script)?;
    let args = PyList::empty(py);
    for (name, value) in &target.args {
        args.append((name, to_py(py, value)?))?;
    }
    d.set_item("args", args)?;
    d.set_item("loop_counts", target.loop_counts.clone())?;
    d.set_item("flor_dir", &target.flor_dir)?;
    d.set_item("output", output)?;
    d.set_item("argv", &target.argv)?;
    d.set_item("start", target.start)?;
    d.set_item("cwd", &target.cwd)?;
    d.set_item("env", target.env.as_ref().map(ToString::to_string))?;
    let as_then = PyDict::new(py);
    let mut hidden = Vec::new();
    for (path, then) in left_out {
        match then {
            Some(bytes) => as_then.set_item(&path, PyBytes::new(py, &bytes))?,
            None => hidden.push(path),
        }
    }
    d.set_item("written_since", hidden)?;
    d.set_item("as_then", as_then)?;
    let starts: Vec<String> = target.starts.iter().map(ToString::to_string).collect();
    d.set_item("starts", starts)?;
    Ok(d)
}

/// Makes this process a replay: records go to `output` under the historical run's
/// identity, only `apply` names and args. With `verify`, every value logged again under a
/// name the run logged is compared with the record (see `record::verify`): `skipped`
/// maps names never compared to the reason, `stale` names are not compared in
/// iterations that skip their nested loops, `tolerance` is relative (0: bit for bit).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (run_id, tstamp, projid, filename, output, apply, verify=true, skipped=BTreeMap::new(), stale=Vec::new(), tolerance=0.0))]
fn replay_start(
    py: Python<'_>,
    run_id: String,
    tstamp: String,
    projid: String,
    filename: String,
    output: PathBuf,
    apply: Vec<String>,
    verify: bool,
    skipped: BTreeMap<String, String>,
    stale: Vec<String>,
    tolerance: f64,
) -> PyResult<()> {
    let expected = EXPECTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .filter(|(id, _)| *id == run_id)
        .map(|(_, e)| e);
    let verifier = match (verify, expected) {
        (true, Some(expected)) => Some(Verifier::new(
            expected,
            skipped,
            stale.into_iter().collect(),
            tolerance,
        )),
        _ => None,
    };
    let sink = ReplaySink {
        run_id,
        tstamp,
        projid,
        filename,
        output,
        apply: apply.into_iter().collect::<HashSet<_>>(),
    };
    with_recorder(py, |r| {
        r.start_replay(sink);
        r.set_verifier(verifier);
        Ok(())
    })
}

/// In replay: whether the current outer iteration skips its nested loops (the check then
/// leaves out the names that read what they build).
#[pyfunction]
fn replay_skipping_nested(py: Python<'_>, skipping: bool) -> PyResult<()> {
    with_recorder(py, |r| {
        r.set_skipping_nested(skipping);
        Ok(())
    })
}

/// In replay: the first logged value that differs from the record, as a dict
/// (`iteration`, `place`, `name`, `recorded`, `replayed`, `message`), or None.
#[pyfunction]
fn replay_divergence<'py>(py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
    let found = with_recorder(py, |r| Ok(r.divergence().cloned()))?;
    let Some(m) = found else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("iteration", m.iteration)?;
    d.set_item("place", &m.place)?;
    d.set_item("name", &m.name)?;
    d.set_item("recorded", m.recorded.as_ref().map(ToString::to_string))?;
    d.set_item("replayed", m.replayed.to_string())?;
    d.set_item("message", m.to_string())?;
    Ok(Some(d))
}

/// In replay: what the check found so far, as JSON text (None without a check).
#[pyfunction]
fn replay_report(py: Python<'_>) -> PyResult<Option<String>> {
    with_recorder(py, |r| {
        Ok(r.verify_report()
            .and_then(|rep| serde_json::to_string(rep).ok()))
    })
}

/// In replay: joins the replay's `parts` (and their check reports) into `output` with the
/// provenance line `provenance` (JSON text) first; returns the records written.
#[pyfunction]
fn replay_merge(
    py: Python<'_>,
    parts: Vec<PathBuf>,
    output: PathBuf,
    provenance: &str,
) -> PyResult<usize> {
    let header = with_recorder(py, |r| {
        let sink = r
            .replay_sink()
            .ok_or_else(|| Error::Replay("this process is not a replay".into()))?;
        Ok(LineHeader::new(&sink.projid, &sink.tstamp, &sink.filename))
    })?;
    let provenance: serde_json::Value = serde_json::from_str(provenance)
        .map_err(|e| err_to_py(Error::Replay(format!("bad provenance: {e}"))))?;
    py.detach(|| replay::merge_parts(&header, &parts, &output, provenance))
        .map(|m| m.records)
        .map_err(err_to_py)
}

/// In replay: drops what this process recorded; it is about to start again.
#[pyfunction]
fn replay_abandon(py: Python<'_>) -> PyResult<()> {
    with_recorder(py, |r| {
        r.abandon_replay();
        Ok(())
    })
}

/// In replay: whether what is logged from now on is dropped.
#[pyfunction]
fn replay_mute(py: Python<'_>, muted: bool) -> PyResult<()> {
    with_recorder(py, |r| {
        r.set_muted(muted);
        Ok(())
    })
}

/// Plans one outer loop. Returns a dict: `steps` as `[(iteration, action,
/// restore_iteration or None)]` (actions `silent`, `own`, `full`; a restore is the end
/// checkpoint of that iteration, -1 the loop's entry), `exit_restore`, `from_scratch`,
/// `refused` (`[(checkpoint, why)]`: left out, incomplete here or not verifying) and `available` (the
/// count of end checkpoints at hand).
///
/// `carried`: the loop's carried state as the analysis of the running script names it (a
/// checkpoint without it is set aside: `set_aside` lists `(iteration, why)`);
/// `use_checkpoints` false plans as if the run had none (a replay from the start).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (flor_dir, run_id, occurrence, iterations, own, full, carried=Vec::new(), use_checkpoints=true))]
fn replay_plan<'py>(
    py: Python<'py>,
    flor_dir: PathBuf,
    run_id: String,
    occurrence: u32,
    iterations: i64,
    own: Vec<i64>,
    full: Vec<i64>,
    carried: Vec<String>,
    use_checkpoints: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let req = Request {
        occurrence,
        iterations,
        own: own.into_iter().collect(),
        full: full.into_iter().collect(),
        carried,
    };
    let (plan, refused, available) = py
        .detach(|| {
            let manifests = if use_checkpoints {
                flor_core::ckpt::list(&flor_dir, &run_id)?
            } else {
                Vec::new()
            };
            let available = manifests
                .iter()
                .filter(|m| m.occurrence == occurrence)
                .count();
            let mut keep = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
            let (plan, refused) =
                replay::plan_verified_with(&flor_dir, manifests, &req, &mut keep)?;
            Ok::<_, Error>((plan, refused, available))
        })
        .map_err(err_to_py)?;
    let d = PyDict::new(py);
    let steps: Vec<(i64, &str, Option<i64>)> = plan
        .steps
        .iter()
        .map(|s| {
            (
                s.iteration,
                s.action.as_str(),
                s.restore.map(|k| k.iteration),
            )
        })
        .collect();
    d.set_item("steps", steps)?;
    d.set_item("exit_restore", plan.exit_restore.map(|k| k.iteration))?;
    d.set_item("from_scratch", plan.from_scratch)?;
    let refused: Vec<(String, String)> = refused
        .into_iter()
        .map(|r| {
            (
                r.key.file_name().trim_end_matches(".json").to_string(),
                r.why,
            )
        })
        .collect();
    d.set_item("refused", refused)?;
    d.set_item("available", available)?;
    d.set_item("set_aside", plan.set_aside.clone())?;
    Ok(d)
}

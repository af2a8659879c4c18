//! The replay side: finding the run to reproduce, reading the script's log sites,
//! planning each outer loop from the checkpoints, and pointing the recorder at the
//! replay's own file.

use std::collections::HashSet;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use flor_core::analyze;
use flor_core::record::ReplaySink;
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
    Ok(())
}

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

/// The log sites of a script: `[(name or None, line, level, [loop names], needs_nested)]`;
/// `needs_nested`: a level-1 statement reading what its nested loops build, so replay
/// runs those loops for it.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn read_script(source: &str) -> PyResult<Vec<(Option<String>, usize, usize, Vec<String>, bool)>> {
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
            )
        })
        .collect())
}

/// Finds the run to replay (`run`, or the newest finished run of `script`) and the
/// file the replay of `names` writes. Returns a dict with `run_id`, `tstamp`,
/// `projid`, `filename`, `args` (list of pairs), `loop_counts`, `flor_dir`, `output`.
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
    let (target, output) = py
        .detach(|| {
            let store = Store::discover(&cwd)?;
            let target = replay::find(&store, script.as_deref(), run.as_deref())?;
            let output = target.output(&names, &tag);
            Ok::<_, Error>((target, output))
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
    Ok(d)
}

/// Makes this process a replay: records go to `output` under the historical run's
/// identity, only `apply` names and args.
#[pyfunction]
fn replay_start(
    py: Python<'_>,
    run_id: String,
    tstamp: String,
    projid: String,
    filename: String,
    output: PathBuf,
    apply: Vec<String>,
) -> PyResult<()> {
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
/// `refused` (checkpoints left out because they do not verify) and `available` (the
/// count of end checkpoints at hand).
#[pyfunction]
fn replay_plan<'py>(
    py: Python<'py>,
    flor_dir: PathBuf,
    run_id: String,
    occurrence: u32,
    iterations: i64,
    own: Vec<i64>,
    full: Vec<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let req = Request {
        occurrence,
        iterations,
        own: own.into_iter().collect(),
        full: full.into_iter().collect(),
    };
    let (plan, refused, available) = py
        .detach(|| {
            let manifests = flor_core::ckpt::list(&flor_dir, &run_id)?;
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
    let refused: Vec<String> = refused.iter().map(|k| k.file_name()).collect();
    d.set_item("refused", refused)?;
    d.set_item("available", available)?;
    Ok(d)
}

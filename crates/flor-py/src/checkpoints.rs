//! Checkpoints: taking them (the training thread copies each buffer once, here, with
//! the GIL held, into a buffer the writer gave back; hashing, compression and writing
//! happen on the engine's writer thread), listing them and reading them back verified
//! (with the GIL released).

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList};

use flor_core::ckpt::{self, CarriedInfo, Key, ObjectInfo, Point, Submission};
use flor_core::store::Store;
use flor_core::Error;

use crate::errors::to_py as err_to_py;
use crate::recording::with_recorder;

/// Chunks that replay's planning read and verified, kept for the restores that follow
/// (each chunk is read and hashed once); at most this many bytes.
const VERIFIED_BUDGET: u64 = 256 << 20;
pub(crate) static VERIFIED: LazyLock<Mutex<ckpt::Verified>> =
    LazyLock::new(|| Mutex::new(ckpt::Verified::new(VERIFIED_BUDGET)));

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(ckpt_decide, m)?)?;
    m.add_function(wrap_pyfunction!(ckpt_take, m)?)?;
    m.add_function(wrap_pyfunction!(ckpt_stats, m)?)?;
    m.add_function(wrap_pyfunction!(set_epsilon, m)?)?;
    m.add_function(wrap_pyfunction!(ckpt_list, m)?)?;
    m.add_function(wrap_pyfunction!(ckpt_read, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_run, m)?)?;
    Ok(())
}

fn point_of(point: &str) -> PyResult<Point> {
    match point {
        "end" => Ok(Point::End),
        "nested" => Ok(Point::Nested),
        other => Err(err_to_py(Error::Invalid(format!(
            "checkpoint point {other:?} is neither 'end' nor 'nested'"
        )))),
    }
}

/// At the start of an outer iteration: whether the policy takes its checkpoints.
#[pyfunction]
#[pyo3(signature = (force=false))]
fn ckpt_decide(py: Python<'_>, force: bool) -> PyResult<bool> {
    with_recorder(py, |r| Ok(r.ckpt_decide(force)))
}

/// Copies the leaves' bytes (objects with the buffer protocol, format `B`) and hands
/// the checkpoint to the writer thread. `carried`: the loop's carried state in the
/// skeleton, as `(path, how, note)` (see `ckpt::CarriedInfo`), if it was captured.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (loop_name, occurrence, iteration, point, index, skeleton, leaves, objects, copy_secs, carried=None))]
fn ckpt_take(
    py: Python<'_>,
    loop_name: String,
    occurrence: u32,
    iteration: i64,
    point: &str,
    index: u32,
    skeleton: Vec<u8>,
    leaves: &Bound<'_, PyList>,
    objects: Vec<(String, String)>,
    copy_secs: f64,
    carried: Option<Vec<(String, String, Option<String>)>>,
) -> PyResult<()> {
    let started = std::time::Instant::now();
    let point = point_of(point)?;
    let buffers = leaves
        .iter()
        .map(|leaf| PyBuffer::<u8>::get(&leaf))
        .collect::<PyResult<Vec<_>>>()?;
    let lens: Vec<usize> = buffers.iter().map(PyBuffer::len_bytes).collect();
    let spares = with_recorder(py, |r| Ok(r.ckpt_spares()))?;
    // Waiting for the writer to store earlier copies lets other Python threads run.
    let permit = py.detach(|| spares.reserve(lens.iter().sum()));
    let mut copied = spares.take(&lens);
    for (buffer, out) in buffers.iter().zip(&mut copied) {
        buffer.copy_to_slice(py, out)?;
    }
    let key = match point {
        Point::End => Key::end(occurrence, iteration),
        Point::Nested => Key::nested(occurrence, iteration, index),
    };
    let submission = Submission {
        loop_name,
        key,
        nested: if point == Point::End { index } else { 0 },
        skeleton,
        leaves: copied,
        objects: objects
            .into_iter()
            .map(|(name, backend)| ObjectInfo { name, backend })
            .collect(),
        carried: carried.map(|c| {
            c.into_iter()
                .map(|(path, how, note)| CarriedInfo { path, how, note })
                .collect()
        }),
        permit: Some(permit),
    };
    let secs = copy_secs + started.elapsed().as_secs_f64();
    with_recorder(py, |r| r.checkpoint(submission, secs))
}

/// What checkpointing did in this process's current or last run.
#[pyfunction]
fn ckpt_stats<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let (stats, spent, taken, skipped) = with_recorder(py, |r| Ok(r.ckpt_stats()))?;
    let d = PyDict::new(py);
    d.set_item("train_thread_secs", spent)?;
    d.set_item("iterations_taken", taken)?;
    d.set_item("iterations_skipped", skipped)?;
    if let Some(s) = stats {
        d.set_item("checkpoints", s.checkpoints)?;
        d.set_item("raw_bytes", s.raw_bytes)?;
        d.set_item("stored_bytes", s.stored_bytes)?;
        d.set_item("writer_secs", s.busy_secs)?;
    }
    Ok(d)
}

/// Sets the checkpoint budget: a fraction of training time.
#[pyfunction]
fn set_epsilon(py: Python<'_>, epsilon: f64) -> PyResult<()> {
    if !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(err_to_py(Error::Invalid(format!(
            "epsilon must be a fraction of training time such as 1/15, not {epsilon}"
        ))));
    }
    with_recorder(py, |r| {
        r.set_epsilon(epsilon);
        Ok(())
    })
}

/// The run id of `run` (a run id or a tstamp) in the project at `cwd`, and the
/// project's `.flor/` folder.
#[pyfunction]
fn resolve_run(py: Python<'_>, cwd: PathBuf, run: String) -> PyResult<(String, PathBuf)> {
    py.detach(|| {
        let store = Store::discover(&cwd)?;
        let runs = store.runs()?;
        let found = runs
            .iter()
            .find(|r| r.run_id == run || r.tstamp == run)
            .ok_or_else(|| Error::NoRun(run.clone()))?;
        Ok((found.run_id.clone(), store.layout().flor_dir()))
    })
    .map_err(err_to_py)
}

/// Every checkpoint of `run_id` as a list of dicts (nothing is read but manifests).
#[pyfunction]
fn ckpt_list<'py>(
    py: Python<'py>,
    flor_dir: PathBuf,
    run_id: String,
) -> PyResult<Bound<'py, PyList>> {
    let manifests = py
        .detach(|| ckpt::list(&flor_dir, &run_id))
        .map_err(err_to_py)?;
    let out = PyList::empty(py);
    for m in manifests {
        let d = PyDict::new(py);
        d.set_item("loop", &m.loop_name)?;
        d.set_item("occurrence", m.occurrence)?;
        d.set_item("iteration", m.iteration)?;
        d.set_item(
            "point",
            match m.point {
                Point::End => "end",
                Point::Nested => "nested",
            },
        )?;
        d.set_item("index", m.index)?;
        let objects: Vec<(String, String)> = m
            .objects
            .iter()
            .map(|o| (o.name.clone(), o.backend.clone()))
            .collect();
        d.set_item("objects", objects)?;
        let carried: Option<Vec<(String, String, Option<String>)>> = m
            .carried
            .map(|c| c.into_iter().map(|c| (c.path, c.how, c.note)).collect());
        d.set_item("carried", carried)?;
        d.set_item("raw_bytes", m.raw_bytes)?;
        d.set_item("created", m.created)?;
        out.append(d)?;
    }
    Ok(out)
}

/// Reads one checkpoint back, every chunk verified (here, or by the replay plan that
/// expects this read): `(skeleton, [leaf bytearrays])`. The leaves are fresh writable
/// buffers that the caller may wrap without copying.
#[pyfunction]
fn ckpt_read<'py>(
    py: Python<'py>,
    flor_dir: PathBuf,
    run_id: String,
    occurrence: u32,
    iteration: i64,
    point: &str,
    index: u32,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>)> {
    let key = match point_of(point)? {
        Point::End => Key::end(occurrence, iteration),
        Point::Nested => Key::nested(occurrence, iteration, index),
    };
    let loaded = py
        .detach(|| {
            let mut verified = VERIFIED.lock().unwrap_or_else(|e| e.into_inner());
            ckpt::read_with(Path::new(&flor_dir), &run_id, key, &mut verified)
        })
        .map_err(err_to_py)?;
    let leaves = PyList::empty(py);
    for leaf in &loaded.leaves {
        leaves.append(PyByteArray::new(py, leaf))?;
    }
    Ok((PyBytes::new(py, &loaded.skeleton), leaves))
}

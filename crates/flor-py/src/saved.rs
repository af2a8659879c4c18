//! Copies of the files a script saves (`torch.save`), and lineage: which run's copy a
//! run started from (see `flor_core::ckpt::saved` and the recorder's lineage).

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use flor_core::ckpt;

use crate::errors::to_py as err_to_py;
use crate::recording::with_recorder;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(saved_keep, m)?)?;
    m.add_function(wrap_pyfunction!(note_resume, m)?)?;
    m.add_function(wrap_pyfunction!(note_explicit_start, m)?)?;
    m.add_function(wrap_pyfunction!(saved_list, m)?)?;
    m.add_function(wrap_pyfunction!(saved_read, m)?)?;
    Ok(())
}

/// Keeps the current run's copy of `path`, which the script just saved as `name`.
#[pyfunction]
fn saved_keep(py: Python<'_>, name: &str, path: PathBuf) -> PyResult<()> {
    with_recorder(py, |r| r.keep_saved(name, &path))
}

/// The script loads `path` (as `name`) outside any loop; returns the run it resumes from
/// when the file is a copy another run kept, untouched since.
#[pyfunction]
fn note_resume(py: Python<'_>, name: &str, path: PathBuf) -> PyResult<Option<String>> {
    with_recorder(py, |r| r.note_resume(name, &path))
}

/// Records that the current run starts from `run`'s copy `name` (its `call`-th read).
#[pyfunction]
fn note_explicit_start(py: Python<'_>, run: &str, name: &str, call: u32) -> PyResult<()> {
    with_recorder(py, |r| r.note_explicit_start(run, name, call))
}

/// The copies run `run_id` kept: dicts with `name`, `path` (where the script wrote it),
/// `size`, `saved_at`.
#[pyfunction]
fn saved_list<'py>(
    py: Python<'py>,
    flor_dir: PathBuf,
    run_id: String,
) -> PyResult<Bound<'py, PyList>> {
    let kept = py
        .detach(|| ckpt::saved(&flor_dir, &run_id))
        .map_err(err_to_py)?;
    let out = PyList::empty(py);
    for s in kept {
        let d = PyDict::new(py);
        d.set_item("name", &s.name)?;
        d.set_item("path", &s.source.path)?;
        d.set_item("size", s.source.size)?;
        d.set_item("saved_at", s.saved_at)?;
        out.append(d)?;
    }
    Ok(out)
}

/// The bytes of run `run_id`'s copy of `name`, verified.
#[pyfunction]
fn saved_read<'py>(
    py: Python<'py>,
    flor_dir: PathBuf,
    run_id: String,
    name: String,
) -> PyResult<Bound<'py, PyBytes>> {
    let data = py
        .detach(|| ckpt::read_saved(&flor_dir, &run_id, &name))
        .map_err(err_to_py)?;
    Ok(PyBytes::new(py, &data))
}

//! The reading side: the pivoted dataframe, SQL queries, the run table and unpack. The
//! engine works with the GIL released; columns cross over as raw buffers that numpy
//! wraps without a per-cell Python object.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyList, PyTuple};

use flor_core::pivot::{self, Column, ColumnData, Frame};
use flor_core::record::Value;
use flor_core::store::{QueryResult, RunInfo, Store};

use crate::convert::{to_py, to_value};
use crate::errors::to_py as err_to_py;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dataframe, m)?)?;
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(io, m)?)?;
    m.add_function(wrap_pyfunction!(project_paths, m)?)?;
    m.add_function(wrap_pyfunction!(runs, m)?)?;
    m.add_function(wrap_pyfunction!(unpack, m)?)?;
    Ok(())
}

/// The pivoted table of `names` in the project at `cwd`, as a list of columns:
/// `(name, kind, data, extra)` with kind `int` (i64 bytes, mask bytes), `float`
/// (f64 bytes), `bool` (u8 bytes, mask bytes), `text` (i32 code bytes, categories) or
/// `object` (list of values, None). Byte buffers are bytearrays.
#[pyfunction]
fn dataframe<'py>(
    py: Python<'py>,
    cwd: PathBuf,
    names: Vec<String>,
) -> PyResult<Bound<'py, PyList>> {
    let frame = py
        .detach(|| {
            let store = Store::discover(&cwd)?;
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            pivot::dataframe(&store, &refs)
        })
        .map_err(err_to_py)?;
    frame_to_py(py, &frame)
}

pub(crate) fn frame_to_py<'py>(py: Python<'py>, frame: &Frame) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for Column { name, data } in &frame.columns {
        let item: Bound<'py, PyTuple> = match data {
            ColumnData::Int(v) => (
                name,
                "int",
                buffer(py, v, |x| x.unwrap_or(0).to_le_bytes())?,
                buffer(py, v, |x| [u8::from(x.is_none())])?,
            )
                .into_pyobject(py)?,
            ColumnData::Float(v) => (
                name,
                "float",
                buffer(py, v, |x| x.unwrap_or(f64::NAN).to_le_bytes())?,
                py.None(),
            )
                .into_pyobject(py)?,
            ColumnData::Bool(v) => (
                name,
                "bool",
                buffer(py, v, |x| [u8::from(x.unwrap_or(false))])?,
                buffer(py, v, |x| [u8::from(x.is_none())])?,
            )
                .into_pyobject(py)?,
            ColumnData::Text { codes, categories } => (
                name,
                "text",
                buffer(py, codes, |c| c.to_le_bytes())?,
                PyList::new(py, categories)?,
            )
                .into_pyobject(py)?,
            ColumnData::Mixed(v) => {
                let list = PyList::empty(py);
                for x in v {
                    list.append(to_py(py, x)?)?;
                }
                (name, "object", list, py.None()).into_pyobject(py)?
            }
        };
        out.append(item)?;
    }
    Ok(out)
}

/// A bytearray of `N` bytes per item, written in place: numpy wraps it writable, so
/// neither side copies a column again.
fn buffer<'py, T, const N: usize>(
    py: Python<'py>,
    items: &[T],
    bytes: impl Fn(&T) -> [u8; N],
) -> PyResult<Bound<'py, PyByteArray>> {
    PyByteArray::new_with(py, items.len() * N, |buf| {
        for (chunk, item) in buf.chunks_exact_mut(N).zip(items) {
            chunk.copy_from_slice(&bytes(item));
        }
        Ok(())
    })
}

/// The captured output of the project at `cwd`, a row per line (see [`pivot::io_frame`]),
/// as columns like [`dataframe`]'s.
#[pyfunction]
#[pyo3(signature = (cwd, channel=None))]
fn io<'py>(py: Python<'py>, cwd: PathBuf, channel: Option<String>) -> PyResult<Bound<'py, PyList>> {
    let frame = py
        .detach(|| pivot::io_frame(&Store::discover(&cwd)?, channel.as_deref()))
        .map_err(err_to_py)?;
    frame_to_py(py, &frame)
}

/// Where the project around `cwd` keeps its files (nothing is created): `root`,
/// `flor_dir`, `runs_dir`, `objects_dir`, `db_path`.
#[pyfunction]
fn project_paths<'py>(py: Python<'py>, cwd: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let root = flor_core::store::find_root(&cwd).unwrap_or(cwd);
    let layout = flor_core::store::Layout::new(&root);
    let d = PyDict::new(py);
    d.set_item("root", layout.root())?;
    d.set_item("flor_dir", layout.flor_dir())?;
    d.set_item("runs_dir", layout.runs_dir())?;
    d.set_item("objects_dir", layout.objects_dir())?;
    d.set_item("db_path", layout.db_path())?;
    Ok(d)
}

/// Runs SQL on the cache; returns `(columns, rows)` with rows as lists of values.
#[pyfunction]
#[pyo3(signature = (cwd, sql, params=None, write=false))]
fn query<'py>(
    py: Python<'py>,
    cwd: PathBuf,
    sql: String,
    params: Option<Vec<Bound<'py, PyAny>>>,
    write: bool,
) -> PyResult<(Vec<String>, Bound<'py, PyList>)> {
    let params: Vec<Value> = params.unwrap_or_default().iter().map(to_value).collect();
    let QueryResult { columns, rows } = py
        .detach(|| Store::discover(&cwd)?.query(&sql, &params, write))
        .map_err(err_to_py)?;
    Ok((columns, rows_to_py(py, &rows)?))
}

fn rows_to_py<'py>(py: Python<'py>, rows: &[Vec<Value>]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for row in rows {
        let r = PyList::empty(py);
        for v in row {
            r.append(to_py(py, v)?)?;
        }
        out.append(r)?;
    }
    Ok(out)
}

/// Every run of the project: `(columns, rows)`.
#[pyfunction]
fn runs<'py>(py: Python<'py>, cwd: PathBuf) -> PyResult<(Vec<&'static str>, Bound<'py, PyList>)> {
    let infos = py
        .detach(|| Store::discover(&cwd)?.runs())
        .map_err(err_to_py)?;
    let rows: Vec<Vec<Value>> = infos.iter().map(RunInfo::to_row).collect();
    Ok((RunInfo::COLUMNS.to_vec(), rows_to_py(py, &rows)?))
}

/// Rebuilds the cache from the run files.
#[pyfunction]
fn unpack<'py>(py: Python<'py>, cwd: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let report = py
        .detach(|| Store::discover(&cwd)?.unpack())
        .map_err(err_to_py)?;
    let d = PyDict::new(py);
    d.set_item("runs", report.imported)?;
    d.set_item("records", report.records)?;
    Ok(d)
}

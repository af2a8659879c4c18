//! Python's exception classes for engine errors, all under `flordb.FlorError`, and the
//! one conversion from [`flor_core::Error`] to them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    flordb,
    FlorError,
    PyException,
    "Base class of every FlorDB error."
);
create_exception!(
    flordb,
    StoreError,
    FlorError,
    "The .flor store could not be read or written."
);
create_exception!(
    flordb,
    QueryError,
    FlorError,
    "A query or where-clause is invalid or failed."
);
create_exception!(flordb, GitError, FlorError, "A git operation failed.");
create_exception!(
    flordb,
    ProjectNotFoundError,
    FlorError,
    "No FlorDB project here or above."
);
create_exception!(
    flordb,
    RecordError,
    FlorError,
    "A run file holds a line that is not a FlorDB record."
);

create_exception!(
    flordb,
    CheckpointError,
    FlorError,
    "A checkpoint is missing, incomplete or does not verify."
);
create_exception!(
    flordb,
    ReplayError,
    FlorError,
    "A replay cannot be set up or carried out as asked."
);

/// Classes that are also the standard exception flordb 4.0.1 raises in their place, so
/// code written for it (`except FileNotFoundError`) still catches them; made with two
/// bases, which `create_exception!` cannot do.
static CHECKPOINT_NOT_FOUND: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RUN_NOT_FOUND: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn class_with_builtin<'py>(
    py: Python<'py>,
    name: &str,
    ours: Bound<'py, PyType>,
    builtin: &str,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let builtin = py.import("builtins")?.getattr(builtin)?;
    let bases = PyTuple::new(py, [ours.into_any(), builtin])?;
    let namespace = PyDict::new(py);
    namespace.set_item("__doc__", doc)?;
    namespace.set_item("__module__", "flordb")?;
    let class = py
        .get_type::<PyType>()
        .call1((name, bases, namespace))?
        .cast_into::<PyType>()?;
    Ok(class.unbind())
}

/// One of the two-base classes, made on first use.
fn two_based<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    ours: Bound<'py, PyType>,
    builtin: &str,
    doc: &str,
) -> PyResult<Bound<'py, PyType>> {
    cell.get_or_try_init(py, || class_with_builtin(py, name, ours, builtin, doc))
        .map(|class| class.bind(py).clone())
}

fn checkpoint_not_found(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    two_based(
        py,
        &CHECKPOINT_NOT_FOUND,
        "CheckpointNotFoundError",
        py.get_type::<CheckpointError>(),
        "FileNotFoundError",
        "The run has no checkpoint or saved file here (a FileNotFoundError too, as in flordb 4.0.1).",
    )
}

fn run_not_found(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    two_based(
        py,
        &RUN_NOT_FOUND,
        "RunNotFoundError",
        py.get_type::<FlorError>(),
        "ValueError",
        "No recorded run has this run id or tstamp here (a ValueError too).",
    )
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FlorError", py.get_type::<FlorError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    m.add("GitError", py.get_type::<GitError>())?;
    m.add(
        "ProjectNotFoundError",
        py.get_type::<ProjectNotFoundError>(),
    )?;
    m.add("RecordError", py.get_type::<RecordError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    m.add("CheckpointNotFoundError", checkpoint_not_found(py)?)?;
    m.add("RunNotFoundError", run_not_found(py)?)?;
    m.add("ReplayError", py.get_type::<ReplayError>())?;
    Ok(())
}

/// Maps an engine error to its exception class, keeping the engine's message.
pub(crate) fn to_py(err: flor_core::Error) -> PyErr {
    use flor_core::Error as E;
    let msg = err.to_string();
    match err {
        E::Io { .. } | E::Cache(_) | E::Unsaved(_) => StoreError::new_err(msg),
        E::Query(_) => QueryError::new_err(msg),
        E::Git { .. } => GitError::new_err(msg),
        E::NoProject(_) => ProjectNotFoundError::new_err(msg),
        E::BadRecord { .. } => RecordError::new_err(msg),
        E::Checkpoint(_) => CheckpointError::new_err(msg),
        E::NoCheckpoint(_) => {
            // (The class exists once the module is imported; its base class otherwise.)
            Python::attach(|py| match checkpoint_not_found(py) {
                Ok(class) => PyErr::from_type(class, msg),
                Err(_) => CheckpointError::new_err(msg),
            })
        }
        E::NoRun(_) => Python::attach(|py| match run_not_found(py) {
            Ok(class) => PyErr::from_type(class, msg),
            Err(_) => FlorError::new_err(msg),
        }),
        E::Replay(_) => ReplayError::new_err(msg),
        E::Invalid(_) => FlorError::new_err(msg),
    }
}

//! Python's exception classes for engine errors, all under `flordb.FlorError`, and the
//! one conversion from [`flor_core::Error`] to them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

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
    CheckpointNotFoundError,
    CheckpointError,
    "The run has no checkpoint at the point asked for."
);
create_exception!(
    flordb,
    ReplayError,
    FlorError,
    "A replay cannot be set up or carried out as asked."
);

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
    m.add(
        "CheckpointNotFoundError",
        py.get_type::<CheckpointNotFoundError>(),
    )?;
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
        E::NoCheckpoint(_) => CheckpointNotFoundError::new_err(msg),
        E::Replay(_) => ReplayError::new_err(msg),
        E::Invalid(_) => FlorError::new_err(msg),
    }
}

//! The one error type of the engine; the edges (CLI, Python) add context and map it
//! to exit codes and exception classes.

use std::path::PathBuf;

/// Everything that can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite cache failed. It is derived data: a damaged one is rebuilt from the
    /// run files (`flor unpack`); a busy one is waited for, and only reported when
    /// another process held it past the wait.
    #[error("sqlite cache: {0}{hint}", hint = cache_hint(.0))]
    Cache(#[from] rusqlite::Error),
    /// A query written by the user is not valid SQL or failed.
    #[error("query failed: {0}")]
    Query(String),
    /// A `.jsonl` run file has a line that is not a FlorDB record.
    #[error("{path}: line {line}: {message}")]
    BadRecord {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A git command failed.
    #[error("{command}: {message}")]
    Git { command: String, message: String },
    /// No FlorDB project (no `.flor/` and no git repository) here or above.
    #[error(
        "no FlorDB project found at {0} or above (run a script that imports flordb, or `git init`)"
    )]
    NoProject(PathBuf),
    /// No recorded run has this run id or tstamp here.
    #[error("no recorded run {0:?} in this project (flor.runs() lists them)")]
    NoRun(String),
    /// A checkpoint is incomplete or does not verify.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The run has no checkpoint at the point asked for (never taken, or not here).
    #[error("checkpoint: {0}")]
    NoCheckpoint(String),
    /// Records of a run could not be written to its file (a full disk); the message says
    /// where what was held was saved instead.
    #[error("{0}")]
    Unsaved(String),
    /// A replay cannot be set up or carried out as asked.
    #[error("replay: {0}")]
    Replay(String),
    /// A name or argument given by the user is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// What to do about a cache error: nothing for a busy cache (it is not damaged), a
/// rebuild otherwise.
fn cache_hint(err: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, ReadOnly};
    match err.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => {
            " (another FlorDB process held the cache for over a minute; try again)"
        }
        Some(DiskFull) => " (the disk is full; free space, then try again)",
        Some(ReadOnly) => " (the cache cannot be written here)",
        _ => " (run `flor unpack` to rebuild the cache from the run files)",
    }
}

/// Result with the engine's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

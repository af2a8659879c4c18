//! Output capture's binding: the Python layer's tee of `sys.stdout` and `sys.stderr`
//! and its `logging` hook hand text here; the engine turns it into records
//! (`flor_core::record::capture`). FlorDB's own messages are written muted, so they
//! never become records of the run.

use std::cell::Cell;

use pyo3::prelude::*;

use flor_core::record::capture::{Limits, Stream};

use crate::errors::FlorError;
use crate::recording::try_with_recorder;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(capture_write, m)?)?;
    m.add_function(wrap_pyfunction!(capture_log, m)?)?;
    m.add_function(wrap_pyfunction!(capture_mute, m)?)?;
    m.add_function(wrap_pyfunction!(set_capture_limits, m)?)?;
    Ok(())
}

thread_local! {
    /// How many muted writes this thread is inside.
    static MUTED: Cell<u32> = const { Cell::new(0) };
}

/// While alive, nothing this thread writes is captured.
pub(crate) struct Muted;

impl Drop for Muted {
    fn drop(&mut self) {
        MUTED.with(|m| m.set(m.get().saturating_sub(1)));
    }
}

pub(crate) fn mute() -> Muted {
    MUTED.with(|m| m.set(m.get() + 1));
    Muted
}

fn muted() -> bool {
    MUTED.with(Cell::get) > 0
}

/// capture_write(stream, text): text the script wrote to stdout (1) or stderr (2).
/// Never raises: the script's output matters more than its record.
#[pyfunction]
fn capture_write(py: Python<'_>, stream: u8, text: &str) {
    if muted() {
        return;
    }
    let stream = if stream == 2 {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let _ = try_with_recorder(py, |r| r.capture_write(stream, text));
}

/// capture_log(level, logger, message): a message that went through `logging`.
#[pyfunction]
fn capture_log(py: Python<'_>, level: &str, logger: &str, message: &str) {
    if muted() {
        return;
    }
    let _ = try_with_recorder(py, |r| r.capture_log(level, Some(logger), message));
}

/// capture_mute(muted): counts muted sections of this thread (`True` enters one,
/// `False` leaves it).
#[pyfunction]
fn capture_mute(muted: bool) {
    MUTED.with(|m| {
        m.set(if muted {
            m.get() + 1
        } else {
            m.get().saturating_sub(1)
        })
    });
}

/// set_capture_limits(max_line, max_records)
#[pyfunction]
fn set_capture_limits(py: Python<'_>, max_line: usize, max_records: usize) -> PyResult<()> {
    if max_line == 0 {
        return Err(FlorError::new_err(
            "set_capture: max_line must be at least 1",
        ));
    }
    try_with_recorder(py, |r| {
        r.set_capture_limits(Limits {
            max_line,
            max_records,
        });
        Ok(())
    })
}

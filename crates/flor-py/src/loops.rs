//! `flor.loop` for the loops that need nothing from Python per step: a native iterator
//! whose `__next__` advances the user's iterable and records the position in one call.
//!
//! Inside a training loop every call finds its code and data evicted by the step, so
//! the number of trips matters more than their length: a Python generator frame plus a
//! call into the recorder made two, this slot call makes one. `loop_enter` happens when
//! `flor.loop(...)` is called, not at the first step as with a generator.

use pyo3::prelude::*;
use pyo3::types::PyIterator;

use crate::convert::item_text;
use crate::recording::with_recorder;

/// One open `flor.loop`: its segment is on the recorder's stack until the iterable is
/// exhausted, iterating it raises, or the iterator is dropped (a `break`, an exception
/// in the body): whichever comes first closes it, once.
#[pyclass(module = "flordb._native", name = "Loop")]
pub(crate) struct Loop {
    items: Py<PyIterator>,
    depth: usize,
    next_index: i64,
    open: bool,
    /// Called when the iterable is exhausted, before the segment closes.
    on_complete: Option<Py<PyAny>>,
}

/// loop_iter(name, iterable, on_complete=None)
///
/// Enters loop `name` and returns its iterator.
#[pyfunction]
#[pyo3(signature = (name, iterable, on_complete=None))]
pub(crate) fn loop_iter(
    py: Python<'_>,
    name: &str,
    iterable: &Bound<'_, PyAny>,
    on_complete: Option<Py<PyAny>>,
) -> PyResult<Loop> {
    // A non-iterable raises here, before a segment is opened.
    let items = iterable.try_iter()?.unbind();
    let depth = with_recorder(py, |r| r.loop_enter(name))?;
    Ok(Loop {
        items,
        depth,
        next_index: 0,
        open: true,
        on_complete,
    })
}

/// How many loops are open: 0 means the next `flor.loop` is the outermost.
#[pyfunction]
pub(crate) fn loop_depth(py: Python<'_>) -> PyResult<usize> {
    with_recorder(py, |r| Ok(r.depth()))
}

#[pymethods]
impl Loop {
    /// Closes the loop's segment now (idempotent); the wrapping generator of the
    /// checkpointed outer loop calls it from its `finally`.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        with_recorder(py, |r| r.loop_exit(self.depth))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if !self.open {
            return Ok(None);
        }
        let mut items = self.items.bind(py).clone();
        match items.next() {
            Some(Ok(item)) => {
                let text = item_text(&item);
                let index = self.next_index;
                self.next_index += 1;
                with_recorder(py, |r| r.loop_next(self.depth, index, text))?;
                Ok(Some(item.unbind()))
            }
            Some(Err(err)) => {
                self.close(py)?;
                Err(err)
            }
            None => {
                let completed = match self.on_complete.take() {
                    Some(callback) => callback.call0(py).map(drop),
                    None => Ok(()),
                };
                self.close(py)?;
                completed.map(|()| None)
            }
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if self.open {
            // Dropped mid-loop: a `break`, or an exception leaving the body.
            Python::attach(|py| {
                if let Err(err) = self.close(py) {
                    err.write_unraisable(py, None);
                }
            });
        }
    }
}

//! Entry points that CPython calls directly, without PyO3's trampoline: `flor.log` and
//! the native loop's `__next__`, the calls a training loop makes at every step.
//!
//! Inside a training loop each call finds its code evicted by the step, and then PyO3's
//! entry alone (its attach bookkeeping, reference pool and panic trap, each on pages of
//! their own) costs as much as the call's work: after a 4 ms numpy step an empty PyO3
//! function took 5.1-6.8 us against 2.9-4.0 us for an empty plain C function.
//!
//! The unsafe code of the crate is here and in `loops`. CPython calls these functions
//! with the GIL held, which is what `Python::assume_attached` asks for.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyString};

use flor_core::record::Kind;

use crate::convert::plain_value;
use crate::recording::with_recorder;

/// Runs an entry's body and hands its outcome to CPython: a new reference, or null
/// with the error set (null with no error set ends an iterator). A panic becomes
/// `PanicException` instead of unwinding into the interpreter.
pub(crate) fn run_entry(
    py: Python<'_>,
    body: impl FnOnce() -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(obj)) => obj,
        Ok(Err(err)) => {
            err.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            PanicException::new_err("internal error in flordb's recorder; please report it")
                .restore(py);
            ptr::null_mut()
        }
    }
}

const LOG_DOC: &CStr = c"log(name, value)
--

Records `value` under `name` in the current loop context and returns it unchanged.
Numbers, strings, booleans, None, and lists/dicts of those keep their type; numpy
and torch scalars are logged as numbers; images (figures, PIL images, image files)
as the path the object hook stored them under; anything else as `str(value)`.";

/// Adds `log` to the module: the direct entry below, which hands every call it does
/// not take itself to `full`, the PyO3 function with the complete argument handling.
pub(crate) fn add_log(m: &Bound<'_, PyModule>, full: Bound<'_, PyCFunction>) -> PyResult<()> {
    // CPython keeps a pointer to the definition for the life of the function object,
    // which lives as long as the module: the definition is never freed.
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"log".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: log_entry,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: LOG_DOC.as_ptr(),
    }));
    let module_name = m.name()?;
    // SAFETY: `def` outlives the function; `full` and the module name are borrowed and
    // CPython takes its own references to them.
    let log = unsafe {
        Bound::from_owned_ptr_or_err(
            m.py(),
            ffi::PyCFunction_NewEx(def, full.as_ptr(), module_name.as_ptr()),
        )?
    };
    m.add("log", log)
}

/// `flor.log(name, value)` with a string name and a plain number, bool or None, as
/// nearly every call in a training loop is. Anything else (keywords, other values, a
/// wrong call) goes to `full`, the function's bound `self`.
unsafe extern "C" fn log_entry(
    full: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a C function with the GIL held.
    let py = unsafe { Python::assume_attached() };
    if nargs == 2 && kwnames.is_null() {
        // SAFETY: CPython passes `nargs` valid borrowed references in `args`.
        let (name, value) = unsafe {
            (
                Borrowed::from_ptr(py, *args),
                Borrowed::from_ptr(py, *args.add(1)),
            )
        };
        if let (Ok(name), Some(number)) = (name.cast::<PyString>(), plain_value(&value)) {
            return run_entry(py, || {
                let name = name.to_str()?;
                with_recorder(py, |r| r.log(name, number, Kind::Log))?;
                Ok(value.to_owned().into_ptr())
            });
        }
    }
    // SAFETY: forwards this call's own arguments, unchanged, to a callable.
    unsafe { ffi::PyObject_Vectorcall(full, args, nargs as usize, kwnames) }
}

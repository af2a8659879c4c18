//! `flor.loop` for the loops that need nothing from Python per step: a native iterator
//! whose `__next__` advances the user's iterable and records the position in one call.
//!
//! Inside a training loop every call finds its code and data evicted by the step, so
//! the number of trips matters more than their length: a Python generator frame plus a
//! call into the recorder made two, this slot call makes one. It is a plain C type, not
//! a PyO3 class, so that the slot is entered without PyO3's trampoline (see `entry`).
//! `loop_enter` happens when `flor.loop(...)` is called, not at the first step as with a
//! generator.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::convert::item_text;
use crate::entry::run_entry;
use crate::recording::with_recorder;

/// One open `flor.loop`: its segment is on the recorder's stack until the iterable is
/// exhausted, iterating it raises, or the iterator is dropped (a `break`, an exception
/// in the body): whichever comes first closes it, once.
#[repr(C)]
struct LoopObject {
    ob_base: ffi::PyObject,
    /// The user's iterator (a reference of its own); null once the loop is closed.
    items: *mut ffi::PyObject,
    /// Called when the iterable is exhausted, before the segment closes (or null).
    on_complete: *mut ffi::PyObject,
    depth: usize,
    next_index: i64,
}

const LOOP_DOC: &CStr =
    c"An open flor.loop: iterating it yields the iterable's items and records the position.";
const CLOSE_DOC: &CStr = c"close()
--

Closes the loop's segment now (idempotent).";

static LOOP_TYPE: OnceLock<Py<PyType>> = OnceLock::new();

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Loop", loop_type(m.py())?)?;
    m.add_function(wrap_pyfunction!(loop_iter, m)?)?;
    m.add_function(wrap_pyfunction!(loop_depth, m)?)?;
    Ok(())
}

fn loop_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    if let Some(ty) = LOOP_TYPE.get() {
        return Ok(ty.bind(py));
    }
    let ty = create_type(py)?;
    Ok(LOOP_TYPE.get_or_init(|| ty).bind(py))
}

fn create_type(py: Python<'_>) -> PyResult<Py<PyType>> {
    // The type keeps a pointer to its method table: it is never freed.
    let methods = Box::leak(Box::new([
        ffi::PyMethodDef {
            ml_name: c"close".as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunction: close_method,
            },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: CLOSE_DOC.as_ptr(),
        },
        ffi::PyMethodDef::zeroed(),
    ]));
    let slot = |slot: c_int, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
    let mut slots = [
        slot(ffi::Py_tp_iter, ffi::PyObject_SelfIter as *mut c_void),
        slot(ffi::Py_tp_iternext, iternext as *mut c_void),
        slot(ffi::Py_tp_dealloc, dealloc as *mut c_void),
        slot(ffi::Py_tp_methods, methods.as_mut_ptr().cast()),
        slot(ffi::Py_tp_doc, LOOP_DOC.as_ptr() as *mut c_void),
        slot(0, ptr::null_mut()),
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"flordb._native.Loop".as_ptr(),
        basicsize: std::mem::size_of::<LoopObject>() as c_int,
        itemsize: 0,
        // Made only by `loop_iter`: `Loop()` from Python is refused with a TypeError.
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
            | ffi::Py_TPFLAGS_IMMUTABLETYPE) as c_uint,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and its slots are valid for the call; CPython copies what it
    // keeps, except the method table, which is leaked above.
    let ty = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut spec))? };
    Ok(ty.cast_into::<PyType>()?.unbind())
}

/// loop_iter(name, iterable, on_complete=None)
///
/// Enters loop `name` and returns its iterator.
#[pyfunction]
#[pyo3(signature = (name, iterable, on_complete=None))]
fn loop_iter<'py>(
    py: Python<'py>,
    name: &str,
    iterable: &Bound<'py, PyAny>,
    on_complete: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    // A non-iterable raises here, before a segment is opened.
    let items = iterable.try_iter()?;
    let ty = loop_type(py)?;
    // SAFETY: allocates an instance of the Loop type, zeroed: closed until filled in.
    let obj =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_GenericAlloc(ty.as_type_ptr(), 0))? };
    let depth = with_recorder(py, |r| r.loop_enter(name))?;
    let me = obj.as_ptr().cast::<LoopObject>();
    // SAFETY: `obj` is a LoopObject no one else has seen yet.
    unsafe {
        (*me).depth = depth;
        (*me).on_complete = on_complete.map_or(ptr::null_mut(), Py::into_ptr);
        (*me).items = items.into_ptr();
    }
    Ok(obj)
}

/// How many loops are open: 0 means the next `flor.loop` is the outermost.
#[pyfunction]
fn loop_depth(py: Python<'_>) -> PyResult<usize> {
    with_recorder(py, |r| Ok(r.depth()))
}

unsafe extern "C" fn iternext(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a slot with the GIL held, on an instance of the Loop type.
    let py = unsafe { Python::assume_attached() };
    run_entry(py, || unsafe { step(py, obj.cast()) })
}

/// Advances the loop: the next item (a new reference), or null when it has ended.
///
/// # Safety
/// `me` is a live LoopObject and the GIL is held. Fields are read afresh after each
/// call into Python, which may run anything, this loop's own `close()` included.
unsafe fn step(py: Python<'_>, me: *mut LoopObject) -> PyResult<*mut ffi::PyObject> {
    unsafe {
        let items = (*me).items;
        if items.is_null() {
            return Ok(ptr::null_mut());
        }
        // Held across the call in case the loop is closed from inside the iterable.
        ffi::Py_INCREF(items);
        let item = ffi::PyIter_Next(items);
        ffi::Py_DECREF(items);
        if !item.is_null() {
            let text = item_text(&Borrowed::from_ptr(py, item));
            let index = (*me).next_index;
            (*me).next_index += 1;
            let depth = (*me).depth;
            return match with_recorder(py, |r| r.loop_next(depth, index, text)) {
                Ok(()) => Ok(item),
                Err(err) => {
                    ffi::Py_DECREF(item);
                    Err(err)
                }
            };
        }
        if let Some(err) = PyErr::take(py) {
            // The iterable raised: the loop ends here, and the error goes on.
            if let Err(close_err) = close(py, me) {
                close_err.write_unraisable(py, None);
            }
            return Err(err);
        }
        let callback = std::mem::replace(&mut (*me).on_complete, ptr::null_mut());
        let completed = if callback.is_null() {
            Ok(())
        } else {
            let out = Bound::from_owned_ptr_or_err(py, ffi::PyObject_CallNoArgs(callback));
            ffi::Py_DECREF(callback);
            out.map(drop)
        };
        close(py, me)?;
        completed.map(|()| ptr::null_mut())
    }
}

/// Closes the loop's segment if it is open, then lets go of the user's iterator.
///
/// # Safety
/// `me` is a live LoopObject and the GIL is held.
unsafe fn close(py: Python<'_>, me: *mut LoopObject) -> PyResult<()> {
    unsafe {
        let items = std::mem::replace(&mut (*me).items, ptr::null_mut());
        if items.is_null() {
            return Ok(());
        }
        let depth = (*me).depth;
        let closed = with_recorder(py, |r| r.loop_exit(depth));
        // Last: dropping a generator runs its `finally`, which may log in the outer loop.
        ffi::Py_DECREF(items);
        closed
    }
}

unsafe extern "C" fn close_method(
    obj: *mut ffi::PyObject,
    _unused: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a method with the GIL held, on an instance of the Loop type.
    let py = unsafe { Python::assume_attached() };
    run_entry(py, || unsafe {
        close(py, obj.cast())?;
        Ok(ffi::Py_NewRef(ffi::Py_None()))
    })
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: CPython deallocates with the GIL held, an instance of the Loop type that
    // no one references any more.
    unsafe {
        let py = Python::assume_attached();
        let me = obj.cast::<LoopObject>();
        // Dropped mid-loop: a `break`, or an exception leaving the body. Nothing may
        // unwind out of a destructor: an error (or a panic) is reported as unraisable.
        let closed = run_entry(py, || {
            close(py, me).map(|()| ffi::Py_NewRef(ffi::Py_None()))
        });
        if closed.is_null() {
            ffi::PyErr_WriteUnraisable(ptr::null_mut());
        } else {
            ffi::Py_DECREF(closed);
        }
        ffi::Py_XDECREF((*me).on_complete);
        let ty = ffi::Py_TYPE(obj);
        let free: ffi::freefunc = std::mem::transmute(ffi::PyType_GetSlot(ty, ffi::Py_tp_free));
        free(obj.cast());
        // Instances of a heap type hold a reference to it.
        ffi::Py_DECREF(ty.cast());
    }
}

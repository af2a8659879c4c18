//! Python objects to logged [`Value`]s and back. Scalars take a fast path; lists and
//! dicts of JSON-able values stay structured; numpy and torch scalars become numbers
//! through `.item()`; anything else is logged as `str(value)`, as flordb does.
//!
//! `flor.log` also gives the Python layer's object hook (`set_object_hook`) a chance
//! at what would become `str(value)` and at strings that end in an image suffix: it
//! stores images as artifacts and returns their path. Numbers never reach it.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value as Json;

use flor_core::record::{Item, Value};

/// Converts a logged Python object.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> Value {
    structured_value(obj).unwrap_or_else(|| Value::Str(text(obj)))
}

/// The value of `obj` when it has one of its own; `None` when it would be logged as
/// `str(obj)` (which is left to the caller: it may be costly, or not wanted at all).
fn structured_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Some(value) = plain_value(obj) {
        return Some(value);
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return Some(big_int(i.as_any()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Some(Value::Str(s.to_string_lossy().into_owned()));
    }
    if obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
        || obj.is_instance_of::<PyDict>()
    {
        return to_json(obj, 0, Leaves::Numbers).map(Value::Json);
    }
    if let Some(item) = scalar_item(obj) {
        return Some(to_value(&item));
    }
    array_list(obj).map(Value::Json)
}

/// Arrays of at most this many elements are logged as (nested) lists of their exact
/// values; larger ones go to the object hook, which stores them as `.npy` artifacts.
const INLINE_ELEMENTS: usize = 10_000;

/// A numpy array or torch tensor of one or more dimensions as the nested list of its
/// values (`tolist()`: every element exactly, a float32 as the float64 it equals), when
/// it is small enough to live in a record and its elements are plain numbers.
fn array_list(obj: &Bound<'_, PyAny>) -> Option<Json> {
    let module = obj.get_type().module().ok()?;
    let module = module.to_string_lossy();
    if !(module.starts_with("numpy") || module.starts_with("torch")) {
        return None;
    }
    let ndim: usize = obj.getattr("ndim").ok()?.extract().ok()?;
    let size = match obj.getattr("size").ok()? {
        // torch's `size` is a method; numpy's an int.
        s if s.is_callable() => obj.call_method0("numel").ok()?.extract::<usize>().ok()?,
        s => s.extract::<usize>().ok()?,
    };
    if ndim == 0 || size > INLINE_ELEMENTS {
        return None;
    }
    let list = obj.call_method0("tolist").ok()?;
    to_json(&list, 0, Leaves::Plain)
}

/// The value of a float (numpy's `float64` included), an int that fits 64 bits, a bool or
/// None: what nearly every `flor.log` in a training loop is given. `None` for anything else.
pub(crate) fn plain_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Some(Value::Float(f.value()));
    }
    if obj.is_none() {
        return Some(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Some(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return i.extract::<i64>().ok().map(Value::Int);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Some(Value::Float(f.value()));
    }
    None
}

/// The Python callable `flor.log` consults; see [`to_logged_value`].
static OBJECT_HOOK: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// File suffixes whose paths `flor.log` offers to the object hook.
const IMAGE_SUFFIXES: [&str; 7] = [".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp"];

/// set_object_hook(hook)
///
/// `hook(obj)` is called by `log` for objects it would log as `str(obj)` and for
/// strings ending in an image suffix; it returns the value to log instead, or None.
#[pyfunction]
pub(crate) fn set_object_hook(hook: Option<Py<PyAny>>) {
    *OBJECT_HOOK.lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

/// Converts a value given to `flor.log`: as [`to_value`], except that objects that
/// would be logged as their text, and image paths, go through the object hook first.
/// An error raised by the hook is the caller's.
pub(crate) fn to_logged_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    // The hook sees an object before anything calls str() on it: a figure or a large
    // array is never printed only to be thrown away.
    let value = structured_value(obj);
    let offer = match &value {
        None => true,
        Some(Value::Str(s)) => has_image_suffix(s),
        Some(_) => false,
    };
    if offer {
        let hook = OBJECT_HOOK
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| h.clone_ref(obj.py()));
        if let Some(hook) = hook {
            let out = hook.bind(obj.py()).call1((obj,))?;
            if !out.is_none() {
                return Ok(to_value(&out));
            }
        }
    }
    Ok(value.unwrap_or_else(|| Value::Str(text(obj))))
}

fn has_image_suffix(s: &str) -> bool {
    let tail = &s.as_bytes()[s.len().saturating_sub(5)..];
    if !tail.contains(&b'.') {
        return false;
    }
    IMAGE_SUFFIXES.iter().any(|suffix| {
        tail.len() >= suffix.len()
            && tail[tail.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    })
}

fn big_int(obj: &Bound<'_, PyAny>) -> Value {
    let digits = text(obj);
    serde_json::from_str::<Json>(&digits).map_or(Value::Str(digits), Value::Json)
}

/// numpy scalars, 0-d arrays and one-element tensors: their Python number.
fn scalar_item<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    let ndim: usize = obj.getattr("ndim").ok()?.extract().ok()?;
    if ndim != 0 {
        return None;
    }
    let item = obj.call_method0("item").ok()?;
    let is_plain = item.is_instance_of::<PyFloat>()
        || item.is_instance_of::<PyInt>()
        || item.is_instance_of::<PyBool>();
    is_plain.then_some(item)
}

fn text(obj: &Bound<'_, PyAny>) -> String {
    obj.str()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "<unprintable>".into())
}

/// Which leaves [`to_json`] accepts besides Python's own scalars.
#[derive(Clone, Copy, PartialEq)]
enum Leaves {
    /// Only None, bool, int, float and str (what a numpy or torch scalar's `.item()` gives).
    Plain,
    /// Also numpy/torch scalars, as numbers (a logged value).
    Numbers,
}

/// JSON for lists, tuples and dicts (string keys) of JSON-able values; `None` if any
/// part is not JSON-able. Never calls `str()` on a leaf: a batch of arrays is rejected
/// at its first array, not printed.
fn to_json(obj: &Bound<'_, PyAny>, depth: usize, leaves: Leaves) -> Option<Json> {
    if depth > 64 {
        return None;
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .map(|x| to_json(&x, depth + 1, leaves))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|x| to_json(&x, depth + 1, leaves))
            .collect::<Option<Vec<_>>>()
            .map(Json::Array);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in dict.iter() {
            let key = k.cast::<PyString>().ok()?.to_string_lossy().into_owned();
            map.insert(key, to_json(&v, depth + 1, leaves)?);
        }
        return Some(Json::Object(map));
    }
    if obj.is_none() {
        return Some(Json::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Some(Json::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>()
        || obj.is_instance_of::<PyFloat>()
        || obj.is_instance_of::<PyString>()
    {
        return match to_value(obj) {
            Value::Int(i) => Some(Json::from(i)),
            Value::Float(f) => Some(flor_core::record::float_json(f)),
            Value::Str(s) => Some(Json::String(s)),
            Value::Json(j) => Some(j),
            _ => None,
        };
    }
    if leaves == Leaves::Numbers {
        return scalar_item(obj).and_then(|item| to_json(&item, depth + 1, Leaves::Plain));
    }
    None
}

/// A loop item's text, as flordb keeps it: `str(item)` when the item is JSON-able,
/// else nothing (batches of tensors are not worth a string per step).
pub(crate) fn item_text(obj: &Bound<'_, PyAny>) -> Option<Item> {
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        if let Ok(i) = i.extract::<i64>() {
            return Some(Item::Int(i));
        }
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Some(Item::from(&*s.to_string_lossy()));
    }
    (!obj.is_none() && is_plain_json(obj, 0)).then(|| Item::from(text(obj).as_str()))
}

/// Whether `obj` is None, a bool, int, float or str, or a list, tuple or dict (string
/// keys) of those. Builds nothing: it runs at every step of a loop over batches
/// (`enumerate(loader)`), where it meets an array at once and says no.
fn is_plain_json(obj: &Bound<'_, PyAny>, depth: usize) -> bool {
    if obj.is_exact_instance_of::<PyFloat>() || obj.is_exact_instance_of::<PyInt>() {
        return true;
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return depth < 64 && tuple.iter().all(|x| is_plain_json(&x, depth + 1));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return depth < 64 && list.iter().all(|x| is_plain_json(&x, depth + 1));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return depth < 64
            && dict
                .iter()
                .all(|(k, v)| k.is_instance_of::<PyString>() && is_plain_json(&v, depth + 1));
    }
    obj.is_none()
        || obj.is_instance_of::<PyInt>()
        || obj.is_instance_of::<PyString>()
        || obj.is_instance_of::<PyFloat>()
}

/// A value back as a Python object.
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => PyFloat::new(py, *f).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Json(j) => json_to_py(py, j)?,
    })
}

fn json_to_py<'py>(py: Python<'py>, json: &Json) -> PyResult<Bound<'py, PyAny>> {
    Ok(match json {
        Json::Array(items) => {
            let list = PyList::empty(py);
            for x in items {
                list.append(json_to_py(py, x)?)?;
            }
            list.into_any()
        }
        Json::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
        Json::Number(n) if n.is_i64() => {
            n.as_i64().unwrap_or_default().into_pyobject(py)?.into_any()
        }
        Json::Number(n) if n.is_u64() => {
            n.as_u64().unwrap_or_default().into_pyobject(py)?.into_any()
        }
        // Beyond 64 bits: Python's int from the digits kept exactly.
        Json::Number(n) if flor_core::record::is_integer(n) => {
            py.get_type::<PyInt>().call1((n.to_string(),))?
        }
        Json::Number(n) => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        other => to_py(py, &Value::from_json(other.clone()))?,
    })
}

//! `flordb._native`: the Python binding of the FlorDB engine. Thin by design: it
//! converts values, releases the GIL around engine work and maps engine errors to
//! exception classes. Everything else lives in `flor-core`.

use pyo3::prelude::*;

mod capturing;
mod checkpoints;
mod convert;
mod entry;
mod errors;
mod loops;
mod reading;
mod recording;
mod replaying;
mod saved;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    recording::register(m)?;
    capturing::register(m)?;
    loops::register(m)?;
    reading::register(m)?;
    checkpoints::register(m)?;
    replaying::register(m)?;
    saved::register(m)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    Ok(())
}

/// Runs the `flor` command line with `argv` (program name first); returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(|| flor_cli::run(argv))
}

//! The recording side: one [`Recorder`] per process, driven by `flor.log`, `flor.arg`,
//! `flor.loop`, `flor.iteration` and `flor.commit`. Calls come with the GIL held, so
//! the mutex is never contended; `log` stays well under a microsecond.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use flor_core::git::{self, Repo};
use flor_core::record::{Item, Kind, LineHeader, Recorder, RunConfig, RunStatus};
use flor_core::store::find_root;

use crate::convert::{item_text, to_logged_value, to_value};
use crate::errors::{to_py, FlorError};

static RECORDER: Mutex<Option<Recorder>> = Mutex::new(None);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    crate::entry::add_log(m, wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(echo_line, m)?)?;
    m.add_function(wrap_pyfunction!(log_arg, m)?)?;
    m.add_function(wrap_pyfunction!(loop_enter, m)?)?;
    m.add_function(wrap_pyfunction!(loop_next, m)?)?;
    m.add_function(wrap_pyfunction!(loop_exit, m)?)?;
    m.add_function(wrap_pyfunction!(iteration_enter, m)?)?;
    m.add_function(wrap_pyfunction!(iteration_exit, m)?)?;
    m.add_function(wrap_pyfunction!(commit, m)?)?;
    m.add_function(wrap_pyfunction!(current_run, m)?)?;
    m.add_function(wrap_pyfunction!(record_env, m)?)?;
    m.add_function(wrap_pyfunction!(note_code_read, m)?)?;
    m.add_function(wrap_pyfunction!(finish_runs, m)?)?;
    m.add_function(wrap_pyfunction!(crate::convert::set_object_hook, m)?)?;
    Ok(())
}

/// Runs `f` on the process's recorder, then prints any warnings it left.
pub(crate) fn with_recorder<T>(
    py: Python<'_>,
    f: impl FnOnce(&mut Recorder) -> flor_core::Result<T>,
) -> PyResult<T> {
    let guard = RECORDER.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        return Err(FlorError::new_err(
            "flordb is not configured; import flordb before calling it",
        ));
    }
    run_on(py, guard, f)
}

/// Runs `f` on the recorder `guard` holds (there is one), releases it, then prints the
/// warnings `f` left.
fn run_on<T>(
    py: Python<'_>,
    mut guard: std::sync::MutexGuard<'_, Option<Recorder>>,
    f: impl FnOnce(&mut Recorder) -> flor_core::Result<T>,
) -> PyResult<T> {
    let Some(rec) = guard.as_mut() else {
        return Err(FlorError::new_err("flordb is not configured"));
    };
    let out = f(rec).map_err(to_py);
    let warnings = rec.take_warnings();
    drop(guard);
    if !warnings.is_empty() {
        warn(py, &warnings)?;
    }
    out
}

/// As [`with_recorder`], but does nothing when this thread is already inside it (a
/// write to a captured stream from within the engine's own call).
pub(crate) fn try_with_recorder(
    py: Python<'_>,
    f: impl FnOnce(&mut Recorder) -> flor_core::Result<()>,
) -> PyResult<()> {
    let guard = match RECORDER.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
    };
    if guard.is_none() {
        return Ok(());
    }
    run_on(py, guard, f)
}

fn warn(py: Python<'_>, messages: &[String]) -> PyResult<()> {
    // FlorDB's own messages are not the run's output.
    let _muted = crate::capturing::mute();
    let stderr = py.import("sys")?.getattr("stderr")?;
    for m in messages {
        stderr.call_method1("write", (format!("flordb: {m}\n"),))?;
    }
    Ok(())
}

/// Sets up the recorder for this process: where the project is, which script runs.
#[pyfunction]
#[pyo3(signature = (cwd, argv, python, name=None))]
fn configure(
    cwd: PathBuf,
    argv: Vec<String>,
    python: Option<String>,
    name: Option<String>,
) -> PyResult<()> {
    let repo = Repo::discover(&cwd);
    let root = repo
        .as_ref()
        .map(|r| r.root().to_path_buf())
        .or_else(|| find_root(&cwd))
        .unwrap_or_else(|| cwd.clone());
    let argv0 = argv.first().cloned().unwrap_or_default();
    let filename = match argv0.as_str() {
        "" => "-".to_string(),
        a => Path::new(a)
            .file_name()
            .map_or(a.to_string(), |n| n.to_string_lossy().into_owned()),
    };
    let script = std::path::absolute(cwd.join(&argv0))
        .ok()
        .filter(|p| p.is_file())
        .and_then(|p| {
            p.strip_prefix(&root)
                .ok()
                .map(|r| r.to_string_lossy().into_owned())
        });
    let projid = root
        .file_name()
        .map_or("project".into(), |n| n.to_string_lossy().into_owned());
    let cwd_text = std::path::absolute(&cwd).ok().map(|abs| {
        abs.strip_prefix(&root)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_else(|_| abs.to_string_lossy().into_owned())
    });
    let config = RunConfig {
        root,
        repo,
        projid,
        filename,
        script,
        argv,
        python,
        cwd: cwd_text,
        name,
    };
    exit_status::register();
    let mut recorder = Recorder::new(config);
    // With an interpreter to start the finisher, run files reach git after the run.
    recorder.defer_git(recorder.config().python.is_some());
    *RECORDER.lock().unwrap_or_else(|e| e.into_inner()) = Some(recorder);
    Ok(())
}

/// log(name, value) -> value
///
/// Records `value` under `name` in the current loop context and returns it unchanged.
/// Numbers, strings, booleans, None, and lists/dicts of those keep their type; numpy
/// and torch scalars are logged as numbers; images (figures, PIL images, image files)
/// as the path the object hook stored them under; anything else as `str(value)`.
#[pyfunction]
fn log<'py>(
    py: Python<'py>,
    name: &Bound<'py, PyString>,
    value: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let converted = to_logged_value(&value)?;
    let name = name.to_str()?;
    with_recorder(py, |r| r.log(name, converted, Kind::Log))?;
    Ok(value)
}

/// The line an echo of `flor.log(name, value)` prints here (see `set_echo`).
#[pyfunction]
fn echo_line(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    let converted = to_value(value);
    with_recorder(py, |r| Ok(r.echo_line(name, &converted)))
}

/// Records a hyper-parameter read by `flor.arg`.
#[pyfunction]
fn log_arg(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
    let converted = to_value(value);
    with_recorder(py, |r| r.log_arg(name, converted))
}

#[pyfunction]
fn loop_enter(py: Python<'_>, name: &str) -> PyResult<usize> {
    with_recorder(py, |r| r.loop_enter(name))
}

#[pyfunction]
fn loop_next(
    py: Python<'_>,
    depth: usize,
    iteration: i64,
    item: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let text = item_text(item);
    with_recorder(py, |r| r.loop_next(depth, iteration, text))
}

#[pyfunction]
fn loop_exit(py: Python<'_>, depth: usize) -> PyResult<()> {
    with_recorder(py, |r| r.loop_exit(depth))
}

#[pyfunction]
#[pyo3(signature = (name, idx=None, value=None))]
fn iteration_enter(
    py: Python<'_>,
    name: &str,
    idx: Option<i64>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<usize> {
    let text = match value {
        Some(v) if !v.is_none() => Some(Item::from(&*v.str()?.to_string_lossy())),
        _ => None,
    };
    with_recorder(py, |r| r.iteration_enter(name, idx, text))
}

#[pyfunction]
fn iteration_exit(py: Python<'_>, depth: usize) -> PyResult<()> {
    with_recorder(py, |r| r.iteration_exit(depth))
}

/// Ends the active run. `exit_code` 0 means finished, anything else failed. Returns a
/// dict describing the run, or None when no run was active. `at_exit`: the process is
/// ending; where the C library says with which status ([`exit_status`]), that status is
/// the one the run keeps, and the finisher starts after it is known.
#[pyfunction]
#[pyo3(signature = (exit_code=0, at_exit=false))]
fn commit<'py>(
    py: Python<'py>,
    exit_code: i32,
    at_exit: bool,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let status = if exit_code == 0 {
        RunStatus::Finished
    } else {
        RunStatus::Failed(exit_code)
    };
    let (summary, root, python) = with_recorder(py, |r| {
        let summary = r.commit(status)?;
        let config = r.config();
        Ok((summary, config.root.clone(), config.python.clone()))
    })?;
    let pending = summary.is_some() && git::has_pending(&root);
    let deferred = match (&summary, at_exit) {
        (Some(s), true) => exit_status::defer(ExitWatch {
            path: s.path.clone(),
            header: s.header.clone(),
            recorded: s.status,
            finisher: pending
                .then(|| finisher_command(py, python.as_deref(), &root))
                .flatten(),
        }),
        _ => false,
    };
    if pending && !deferred {
        finish_in_background(py, python.as_deref(), &root)?;
    }
    summary
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("run_id", s.run_id.as_str())?;
            d.set_item("records", s.records)?;
            d.set_item("version", s.version)?;
            Ok(d)
        })
        .transpose()
}

/// Loads this module from its file alone (not the `flordb` package, which would
/// configure a recorder), commits the project's waiting runs to git and imports them
/// into the cache.
const FINISHER: &str = "import importlib.util as u, sys
spec = u.spec_from_file_location('flordb._native', sys.argv[1])
native = u.module_from_spec(spec)
spec.loader.exec_module(native)
native.finish_runs(sys.argv[2])
";

/// The command of the detached finisher: commits the finished run's file to git (see
/// `flor_core::git::pending`) and imports it into the cache, so that the exit does not
/// wait for either. It shares no pipe with this process, so whoever waits for this
/// process's output is not kept waiting.
fn finisher_command(
    py: Python<'_>,
    python: Option<&str>,
    root: &Path,
) -> Option<std::process::Command> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    let module: String = py
        .import("flordb._native")
        .and_then(|m| m.getattr("__file__"))
        .and_then(|f| f.extract())
        .ok()?;
    let mut cmd = Command::new(python?);
    cmd.arg("-c")
        .arg(FINISHER)
        .arg(module)
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C meant for the script does not stop it.
        .process_group(0);
    Some(cmd)
}

/// Starts the finisher ([`finisher_command`]); if it cannot start, the commit is made here.
fn finish_in_background(py: Python<'_>, python: Option<&str>, root: &Path) -> PyResult<()> {
    let spawned = finisher_command(py, python, root).and_then(|mut c| c.spawn().ok());
    match spawned {
        // Reaped by a thread, should this process live on (a notebook).
        Some(mut child) => {
            std::thread::spawn(move || child.wait());
            Ok(())
        }
        None => {
            if let Err(err) = py.detach(|| git::finish_pending(root)) {
                warn(
                    py,
                    &[format!(
                        "the run's records were not committed to git: {err}"
                    )],
                )?;
            }
            Ok(())
        }
    }
}

/// finish_runs(root) -> int: commits the project's runs that wait for git (the
/// background finisher's entry point), then brings the query cache up to date, so that
/// the next `flor.dataframe` or replay does not import the run on its own clock.
/// Returns how many runs were committed.
#[pyfunction]
fn finish_runs(py: Python<'_>, root: PathBuf) -> PyResult<usize> {
    py.detach(|| {
        let committed = git::finish_pending(&root)?;
        flor_core::store::Store::open(&root)?.sync()?;
        Ok(committed)
    })
    .map_err(to_py)
}

/// Records the settings that change the run's numbers (JSON text: thread counts,
/// deterministic flags, library versions), which replay runs under.
#[pyfunction]
fn record_env(py: Python<'_>, env: &str) -> PyResult<()> {
    let value: serde_json::Value = serde_json::from_str(env)
        .map_err(|e| FlorError::new_err(format!("record_env: not JSON: {e}")))?;
    with_recorder(py, |r| r.record_env(value))
}

/// note_code_read(files)
///
/// The source files the run read (the script and the modules it imported): those of the
/// project modified after the process started are recorded with the run, with a warning
/// that its code version may not be what ran.
#[pyfunction]
fn note_code_read(py: Python<'_>, files: Vec<PathBuf>) -> PyResult<()> {
    with_recorder(py, |r| {
        r.note_code_read(&files);
        Ok(())
    })
}

/// The active run as `(run_id, tstamp)`, or None before the first FlorDB call.
#[pyfunction]
fn current_run(py: Python<'_>) -> PyResult<Option<(String, String)>> {
    with_recorder(py, |r| {
        Ok(r.run_id()
            .map(|id| (id.to_string(), r.tstamp().unwrap_or_default().to_string())))
    })
}

/// What the process's own exit status may still change about the run it just committed,
/// and the finisher to start once that is settled.
struct ExitWatch {
    path: PathBuf,
    header: LineHeader,
    recorded: RunStatus,
    finisher: Option<std::process::Command>,
}

/// The status the process really exits with, from the C library (glibc's `on_exit`):
/// Python's exit handlers cannot see a `raise SystemExit(3)`, the `exit(3)` builtin, an
/// exception shown by the script's own `sys.excepthook`, or a `sys.exit(3)` the script
/// caught. Runs after the interpreter is gone: no Python here.
mod exit_status {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use flor_core::record::{amend_status, RunStatus};

    use super::ExitWatch;

    static WATCH: Mutex<Option<ExitWatch>> = Mutex::new(None);
    static REGISTERED: AtomicBool = AtomicBool::new(false);

    // The one foreign call of this crate: glibc's `on_exit`, which no safe crate wraps.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    mod c {
        use std::ffi::{c_int, c_void};
        unsafe extern "C" {
            pub fn on_exit(function: extern "C" fn(c_int, *mut c_void), arg: *mut c_void) -> c_int;
        }
    }

    /// Watches the process's exit, once; false where the C library cannot tell the status.
    pub(super) fn register() -> bool {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            if !REGISTERED.swap(true, Ordering::SeqCst) {
                // SAFETY: `on_exit` stores a function pointer to call at exit(); `exiting`
                // is an `extern "C"` function that lives as long as the process.
                #[allow(unsafe_code)]
                let ok = unsafe { c::on_exit(exiting, std::ptr::null_mut()) } == 0;
                REGISTERED.store(ok, Ordering::SeqCst);
            }
        }
        REGISTERED.load(Ordering::SeqCst)
    }

    /// Hands the committed run to the exit watch; false if none is registered (the caller
    /// starts the finisher itself).
    pub(super) fn defer(watch: ExitWatch) -> bool {
        if !REGISTERED.load(Ordering::SeqCst) {
            return false;
        }
        *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = Some(watch);
        true
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    extern "C" fn exiting(status: std::ffi::c_int, _arg: *mut std::ffi::c_void) {
        let Some(mut watch) = WATCH.try_lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        let real = if status == 0 {
            RunStatus::Finished
        } else {
            RunStatus::Failed(status)
        };
        if real != watch.recorded {
            let _ = amend_status(&watch.path, &watch.header, real);
        }
        if let Some(cmd) = watch.finisher.as_mut() {
            let _ = cmd.spawn();
        }
    }
}

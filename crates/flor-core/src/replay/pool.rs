//! Executing replay tasks: one pool of worker slots shared by every run's tasks, each
//! task its own process (its output in a log file), longest first. A task that fails
//! costs only itself; a task stopped by Ctrl-C stops the pool from starting more.
//!
//! Processes come from a [`Launcher`]: [`Zygote`] forks them from a Python server that
//! has imported the scripts' heavy modules once; [`Direct`] starts a fresh interpreter.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};

use crate::{Error, Result};

/// One process to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: usize,
    pub cwd: PathBuf,
    /// The script and its arguments (the interpreter comes from the launcher).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    /// Estimated seconds (the pool starts the longest first).
    pub estimate: f64,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    /// The exit code; negative: the signal that killed it; `None`: it could not start.
    pub code: Option<i32>,
    pub secs: f64,
    pub error: Option<String>,
}

impl JobResult {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Ended by Ctrl-C (SIGINT, or Python's exit code for KeyboardInterrupt).
    pub fn interrupted(&self) -> bool {
        matches!(self.code, Some(130) | Some(-2))
    }
}

/// What the pool reports while it works.
pub enum Event<'a> {
    Started(&'a Job),
    Finished(&'a Job, &'a JobResult),
}

/// Starts a job's process and waits for it.
pub trait Launcher: Sync {
    fn run(&self, job: &Job) -> Result<i32>;
}

/// Runs `jobs` on `workers` slots; results in the order of `jobs`. After a job is
/// interrupted, no new job starts (those never started get `code: None`).
pub fn execute(
    jobs: &[Job],
    workers: usize,
    launcher: &dyn Launcher,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Vec<JobResult> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[b].estimate.total_cmp(&jobs[a].estimate));
    let queue = Mutex::new(order.into_iter().collect::<VecDeque<usize>>());
    let results: Mutex<Vec<Option<JobResult>>> = Mutex::new(vec![None; jobs.len()]);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(i) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    return;
                };
                let job = &jobs[i];
                on_event(Event::Started(job));
                let start = Instant::now();
                let result = match launcher.run(job) {
                    Ok(code) => JobResult {
                        code: Some(code),
                        secs: start.elapsed().as_secs_f64(),
                        error: None,
                    },
                    Err(e) => JobResult {
                        code: None,
                        secs: start.elapsed().as_secs_f64(),
                        error: Some(e.to_string()),
                    },
                };
                if result.interrupted() {
                    stop.store(true, Ordering::SeqCst);
                }
                on_event(Event::Finished(job, &result));
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| {
            r.unwrap_or(JobResult {
                code: None,
                secs: 0.0,
                error: Some("not started: the replay was interrupted".into()),
            })
        })
        .collect()
}

/// A fresh interpreter per job.
pub struct Direct {
    pub python: String,
}

impl Launcher for Direct {
    fn run(&self, job: &Job) -> Result<i32> {
        let log = std::fs::File::create(&job.log).map_err(|e| Error::io(&job.log, e))?;
        let err = log.try_clone().map_err(|e| Error::io(&job.log, e))?;
        let status = Command::new(&self.python)
            .args(&job.argv)
            .current_dir(&job.cwd)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .status()
            .map_err(|e| Error::Replay(format!("cannot start {} ({e})", self.python)))?;
        Ok(exit_code(status))
    }
}

#[cfg(unix)]
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|s| -s)).unwrap_or(1)
}

#[cfg(not(unix))]
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or(1)
}

const ZYGOTE: &str = include_str!("zygote.py");

/// Jobs forked from one Python server that imported the scripts' modules once.
pub struct Zygote {
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    waiting: Arc<Mutex<HashMap<usize, Sender<i32>>>>,
    /// The modules it imported.
    pub preloaded: Vec<String>,
}

impl Zygote {
    /// Starts the server with `python` and imports what `scripts` import (their
    /// third-party modules, not the project's own). Waits until it is ready.
    pub fn start(python: &str, scripts: &[PathBuf]) -> Result<Zygote> {
        let fail = |m: String| Error::Replay(format!("cannot start the replay workers: {m}"));
        let mut child = Command::new(python)
            .args(["-c", ZYGOTE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("{python}: {e}")))?;
        let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("no stdout".into()))?;
        let paths: Vec<String> = scripts
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        writeln!(stdin, "{}", serde_json::json!({ "preload": paths }))
            .map_err(|e| fail(e.to_string()))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .next()
            .and_then(|l| l.ok())
            .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .ok_or_else(|| fail("the server exited before it was ready".into()))?;
        let preloaded = ready["ready"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let waiting: Arc<Mutex<HashMap<usize, Sender<i32>>>> = Arc::default();
        let inbox = Arc::clone(&waiting);
        std::thread::spawn(move || {
            for line in lines.map_while(std::result::Result::ok) {
                let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let (Some(id), Some(code)) = (msg["id"].as_u64(), msg["exit"].as_i64()) else {
                    continue;
                };
                if let Some(tx) = inbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&(id as usize))
                {
                    let _ = tx.send(code as i32);
                }
            }
            // The server is gone: whoever still waits learns it from the dropped senders.
            inbox.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Ok(Zygote {
            child: Mutex::new(child),
            stdin: Mutex::new(Some(stdin)),
            waiting,
            preloaded,
        })
    }
}

impl Launcher for Zygote {
    fn run(&self, job: &Job) -> Result<i32> {
        let (tx, rx) = bounded(1);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id, tx);
        let env: serde_json::Map<String, serde_json::Value> = job
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let msg = serde_json::json!({
            "id": job.id,
            "cwd": job.cwd,
            "argv": job.argv,
            "env": env,
            "log": job.log,
        });
        {
            let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
            let pipe = stdin
                .as_mut()
                .ok_or_else(|| Error::Replay("the replay worker server has stopped".into()))?;
            writeln!(pipe, "{msg}")
                .and_then(|()| pipe.flush())
                .map_err(|_| Error::Replay("the replay worker server has stopped".into()))?;
        }
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(code) => return Ok(code),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Replay("the replay worker server died".into()))
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        // Closing its stdin tells the server to exit once its children have.
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON: &str = "python3";

    fn jobs(dir: &std::path::Path, scripts: &[(&str, &str)]) -> Vec<Job> {
        scripts
            .iter()
            .enumerate()
            .map(|(i, (name, body))| {
                let path = dir.join(name);
                std::fs::write(&path, body).unwrap();
                Job {
                    id: i,
                    cwd: dir.to_path_buf(),
                    argv: vec![path.to_string_lossy().into_owned(), "arg1".into()],
                    env: vec![("FLOR_TEST_VALUE".into(), format!("v{i}"))],
                    log: dir.join(format!("{name}.log")),
                    estimate: i as f64,
                }
            })
            .collect()
    }

    const SCRIPTS: [(&str, &str); 3] = [
        (
            "ok.py",
            "import os, sys, json\nprint(json.dumps([sys.argv[1:], os.environ['FLOR_TEST_VALUE'], __name__]))\n",
        ),
        ("fails.py", "print('before')\nraise ValueError('broken script')\n"),
        ("exits.py", "import sys\nsys.exit(3)\n"),
    ];

    fn check(launcher: &dyn Launcher, dir: &std::path::Path) {
        let jobs = jobs(dir, &SCRIPTS);
        let started = Mutex::new(0);
        let results = execute(&jobs, 2, launcher, &|e| {
            if let Event::Started(_) = e {
                *started.lock().unwrap() += 1;
            }
        });
        assert_eq!(*started.lock().unwrap(), 3);
        let codes: Vec<_> = results.iter().map(|r| r.code).collect();
        assert_eq!(codes, vec![Some(0), Some(1), Some(3)]);
        let out = std::fs::read_to_string(dir.join("ok.py.log")).unwrap();
        assert_eq!(out.trim(), r#"[["arg1"], "v0", "__main__"]"#);
        let err = std::fs::read_to_string(dir.join("fails.py.log")).unwrap();
        assert!(
            err.contains("before") && err.contains("ValueError: broken script"),
            "{err}"
        );
    }

    #[test]
    fn direct_jobs_run_in_parallel_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        check(
            &Direct {
                python: PYTHON.into(),
            },
            dir.path(),
        );
    }

    #[test]
    fn forked_jobs_behave_like_fresh_processes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("uses.py"), "import json, email.mime.text\n").unwrap();
        let zygote = Zygote::start(PYTHON, &[dir.path().join("uses.py")]).unwrap();
        assert!(
            zygote.preloaded.contains(&"email.mime.text".to_string()),
            "{:?}",
            zygote.preloaded
        );
        check(&zygote, dir.path());
    }
}

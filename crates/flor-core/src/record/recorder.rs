//! The in-process recorder a training script drives through `flor.log`, `flor.loop`,
//! `flor.iteration` and `flor.commit`. It holds the loop stack and the active run; the
//! run starts lazily at the first call (flordb's "deferred init"), so scripts that only
//! read never record a run.
//!
//! The hot path (`log`) does no I/O and allocates nothing: the record joins a batch for
//! the writer thread, after the loop positions that changed since the last record.

mod echo;
mod lineage;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::capture::{self, Capture, Limits, Stream, Verdict};
use super::verify::{Mismatch, Verifier, VerifyReport};
use super::writer::{Entry, Msg, Writer, BATCH, HEADROOM};
use super::{
    code_read, identity, meta, Item, Kind, LineHeader, Name, Position, Record, RunId, Value,
};
use crate::ckpt::{CkptWriter, Policy, Spares, Submission, WriterStats};
use crate::git::{Captured, PendingRun, Repo, Snapshot};
use crate::store::Layout;
use crate::Result;

/// What the recorder needs to know about the process it runs in.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where `.flor/` lives: the git repository's root, or the working directory.
    pub root: PathBuf,
    /// The git repository, if the project is in one.
    pub repo: Option<Repo>,
    /// flordb's `projid`: the root folder's name.
    pub projid: String,
    /// flordb's `filename`: the script's base name (`ipython`, `-`, ...).
    pub filename: String,
    /// The script's path relative to the root, when it is a file inside it.
    pub script: Option<String>,
    pub argv: Vec<String>,
    pub python: Option<String>,
    /// The working directory the run started in: relative to the root when inside it
    /// (`""` for the root itself), absolute otherwise. Replay starts there, so relative
    /// paths (`../data`) resolve as they did.
    pub cwd: Option<String>,
    /// The run's name (`--flor NAME`, flordb 2.x's `runid`), if the user gave one.
    pub name: Option<String>,
}

/// Where a replay's records go instead of a new run: the historical run's identity and
/// a file of its own under `.flor/replays/`. Only `apply` names and args are recorded.
#[derive(Debug, Clone)]
pub struct ReplaySink {
    pub run_id: String,
    pub tstamp: String,
    pub projid: String,
    pub filename: String,
    /// The replay file; written as `<output>.tmp` and renamed when the replay finishes.
    pub output: PathBuf,
    /// The names recorded; empty: every name.
    pub apply: HashSet<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Finished,
    Failed(i32),
}

/// What `commit` did, for the edges to report.
#[derive(Debug, Clone)]
pub struct CommitSummary {
    pub run_id: RunId,
    pub records: u64,
    pub version: Option<String>,
    /// The run file, complete.
    pub path: PathBuf,
    /// Its lines' header (projid, tstamp, filename), for [`amend_status`].
    pub header: LineHeader,
    pub status: RunStatus,
}

/// Appends an end record to a complete run file: the process ended with another status
/// than its exit handlers knew (`raise SystemExit(3)` is not seen by them; a caught
/// `sys.exit(3)` is). Readers take the last end record.
pub fn amend_status(path: &std::path::Path, header: &LineHeader, status: RunStatus) -> Result<()> {
    use std::io::Write;
    let (text, code) = match status {
        RunStatus::Finished => ("finished", 0),
        RunStatus::Failed(code) => ("failed", code),
    };
    let record = Record {
        name: meta::END.into(),
        value: Value::Json(serde_json::json!({
            "status": text,
            "exit_code": code,
            "end": unix_now(),
            "amended": "the process's own exit status",
        })),
        kind: Kind::Meta,
        arg: false,
    };
    let mut line = String::new();
    super::write_line(header, None, &record, &mut line);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| crate::Error::io(path, e))?;
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| crate::Error::io(path, e))
}

struct ActiveRun {
    /// Entries not yet handed to the writer.
    pending: Vec<Entry>,
    id: RunId,
    tstamp: String,
    path: PathBuf,
    writer: Writer,
    snapshot: Option<JoinHandle<Result<Snapshot>>>,
    /// When the code snapshot had read the working tree (None: no snapshot).
    captured_at: Option<SystemTime>,
    /// Whether the run file could not be written at the last barrier.
    file_failing: bool,
    args: Vec<(String, String)>,
}

impl ActiveRun {
    /// Queues a run-level record of FlorDB's own (`meta::*`).
    fn push_meta(&mut self, name: &'static str, value: serde_json::Value) {
        self.pending.push(Entry::RunLevel(Record {
            name: name.into(),
            value: Value::Json(value),
            kind: Kind::Meta,
            arg: false,
        }));
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let batch = std::mem::replace(&mut self.pending, self.writer.empty_batch());
            self.writer.send(batch);
        }
    }
}

/// Names remembered for the fast lookup in `intern`.
const RECENT_NAMES: usize = 8;

struct Frame {
    name: Name,
    iteration: Option<i64>,
    item: Option<Item>,
    /// Whether this frame is a `flor.iteration` block (one body) or a `flor.loop`.
    single: bool,
    entered: Instant,
    iter_started: Instant,
    // Welford's running mean and variance of iteration durations.
    n: u64,
    mean: f64,
    m2: f64,
}

impl Frame {
    fn close_iteration(&mut self, now: Instant) {
        if self.iteration.is_none() {
            return;
        }
        let secs = now.duration_since(self.iter_started).as_secs_f64();
        self.n += 1;
        let delta = secs - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (secs - self.mean);
    }
}

/// The recorder of one process. Not thread-safe by itself: the Python layer holds it
/// behind the GIL.
pub struct Recorder {
    config: RunConfig,
    layout: Layout,
    /// Import time, or the last commit: the origin of `time::setup` and `time::script`.
    origin: Instant,
    run: Option<ActiveRun>,
    frames: Vec<Frame>,
    /// The shallowest frame changed since the writer last heard of the stack.
    stack_changed_from: Option<usize>,
    recent: Vec<Name>,
    setup_emitted: bool,
    main_work_end: Option<Instant>,
    warnings: Vec<String>,
    replay: Option<ReplaySink>,
    /// In replay, whether the current iteration records nothing (it only rebuilds state).
    muted: bool,
    /// In replay, the check of re-logged values against the recorded run's.
    verifier: Option<Verifier>,
    ckpt: Option<CkptWriter>,
    /// Leaf buffers the checkpoint writer gave back, for the next checkpoint's copy.
    spares: Spares,
    policy: Policy,
    ckpt_stats: Option<WriterStats>,
    /// Seconds from the interpreter's start to this recorder's creation (the imports
    /// before flordb), recorded once as `time::boot`; `None` once recorded or unknown.
    boot: Option<f64>,
    /// Commit run files to git after the run (see `git::pending`) instead of at commit.
    defer_git: bool,
    /// What the script printed, on its way to becoming records.
    capture: Capture,
}

impl Recorder {
    pub fn new(config: RunConfig) -> Self {
        let layout = Layout::new(&config.root);
        Recorder {
            config,
            layout,
            origin: Instant::now(),
            run: None,
            frames: Vec::new(),
            stack_changed_from: None,
            recent: Vec::with_capacity(RECENT_NAMES),
            setup_emitted: false,
            boot: code_read::process_age(),
            main_work_end: None,
            warnings: Vec::new(),
            replay: None,
            muted: false,
            verifier: None,
            ckpt: None,
            spares: Spares::default(),
            policy: Policy::default(),
            ckpt_stats: None,
            defer_git: false,
            capture: Capture::default(),
        }
    }

    /// From now on a commit only notes that the run file is to be committed to git;
    /// the caller has the note carried out (`git::finish_pending`) off the exit path.
    pub fn defer_git(&mut self, defer: bool) {
        self.defer_git = defer;
    }

    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The active run, if one has started.
    pub fn run_id(&self) -> Option<&RunId> {
        self.run.as_ref().map(|r| &r.id)
    }

    /// The active run's flordb timestamp.
    pub fn tstamp(&self) -> Option<&str> {
        self.run.as_ref().map(|r| r.tstamp.as_str())
    }

    /// Messages for the user that the edge should print (they are not errors).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty()
    }

    /// Records a value in the current loop context. Starts the run on first use.
    pub fn log(&mut self, name: &str, value: Value, kind: Kind) -> Result<()> {
        self.emit(name, value, kind, false)
    }

    /// Sets how much output capture keeps.
    pub fn set_capture_limits(&mut self, limits: Limits) {
        self.capture.limits = limits;
    }

    /// Takes text the script wrote to `stream`; each line it completes is recorded.
    pub fn capture_write(&mut self, stream: Stream, text: &str) -> Result<()> {
        for line in self.capture.write(stream, text) {
            self.capture_line(stream.channel(), &line)?;
        }
        Ok(())
    }

    /// Records a message that went through Python's `logging` at `level`, a record
    /// per line; `logger` (the logger's name) prefixes it unless it is the root's.
    pub fn capture_log(&mut self, level: &str, logger: Option<&str>, message: &str) -> Result<()> {
        let channel = capture::log_channel(level);
        for line in message.split('\n') {
            match logger {
                Some(name) if !name.is_empty() && name != "root" => {
                    self.capture_line(&channel, &format!("{name}: {line}"))?
                }
                _ => self.capture_line(&channel, line)?,
            }
        }
        Ok(())
    }

    fn capture_line(&mut self, channel: &str, raw: &str) -> Result<()> {
        let mut key = rustc_hash::FxHasher::default();
        for f in &self.frames {
            f.name.as_str().hash(&mut key);
            f.iteration.hash(&mut key);
        }
        match self.capture.judge(channel, key.finish(), raw) {
            Verdict::Store(text) => self.emit(channel, Value::Str(text), Kind::Io, false),
            Verdict::OverCeiling { first: true } => {
                self.warnings.push(format!(
                    "output capture: this run reached its {} captured lines; later ones are not recorded \
                     (flor.set_capture(max_records=...) keeps more)",
                    self.capture.limits.max_records
                ));
                Ok(())
            }
            Verdict::Skip | Verdict::OverCeiling { first: false } => Ok(()),
        }
    }

    /// Records what is left of unterminated output at the end of a run.
    fn capture_partial(&mut self) -> Result<()> {
        for (stream, text) in self.capture.drain_partial() {
            self.capture_line(stream.channel(), &text)?;
        }
        Ok(())
    }

    /// Records the settings that change the run's numbers (`meta::ENV`), once per run;
    /// nothing in replay.
    pub fn record_env(&mut self, env: serde_json::Value) -> Result<()> {
        if self.replay.is_some() {
            return Ok(());
        }
        self.ensure_run()?;
        if let Some(run) = self.run.as_mut() {
            run.push_meta(meta::ENV, env);
        }
        Ok(())
    }

    /// Checks the source files the run read (`files`: the script and the modules it
    /// imported) against the time its process started: one modified after the start and
    /// before the code snapshot read it may have been read by the script in a form the
    /// snapshot does not hold. Records which, and warns. (A file changed after the
    /// snapshot, as a sweep writes the next run's config, is what the snapshot holds as
    /// the script read it at its start.)
    pub fn note_code_read(&mut self, files: &[PathBuf]) {
        if self.replay.is_some() {
            return;
        }
        let Some(run) = self.run.as_mut() else { return };
        let (Some(captured), Some(start)) = (run.captured_at, code_read::process_start()) else {
            return;
        };
        let changed = code_read::changed_between(&self.config.root, files, start, captured);
        if changed.is_empty() {
            return;
        }
        run.push_meta(meta::CODE_CHANGED, serde_json::json!({ "files": changed }));
        self.warnings.push(format!(
            "{} changed after this run started: its recorded code version may not be the code that ran \
             (start runs after their files are written; replay checks its values against this run's)",
            changed.join(", ")
        ));
    }

    /// Records a hyper-parameter read by `flor.arg`; it also goes into the commit message.
    pub fn log_arg(&mut self, name: &str, value: Value) -> Result<()> {
        self.ensure_run()?;
        if let Some(run) = self.run.as_mut() {
            run.args.push((name.to_string(), value.display()));
        }
        self.emit(name, value, Kind::Log, true)
    }

    fn emit(&mut self, name: &str, value: Value, kind: Kind, arg: bool) -> Result<()> {
        if self.replay.is_some() && kind == Kind::Log && !arg && self.verifier.is_some() {
            let interned = self.intern(name);
            if let Some(v) = self.verifier.as_mut().filter(|v| v.wants(interned)) {
                let stack: Vec<(Name, Option<i64>)> = self
                    .frames
                    .iter()
                    .filter(|f| f.iteration.is_some() || f.item.is_some())
                    .map(|f| (f.name, f.iteration))
                    .collect();
                v.check(&stack, interned, &value);
            }
        }
        if let Some(sink) = &self.replay {
            let projected = sink.apply.is_empty() || sink.apply.contains(name);
            // Captured output is replayed only when asked for by name (`--apply io::stdout`).
            let wanted = kind == Kind::Log || (kind == Kind::Io && sink.apply.contains(name));
            if !arg && (self.muted || !wanted || !projected) {
                return Ok(());
            }
        }
        self.ensure_run()?;
        let name = self.intern(name);
        self.sync_stack();
        if let Some(run) = self.run.as_mut() {
            run.pending.push(Entry::InContext(Record {
                name,
                value,
                kind,
                arg,
            }));
            if run.pending.len() >= BATCH - HEADROOM {
                run.flush();
            }
        }
        Ok(())
    }

    fn intern(&mut self, name: &str) -> Name {
        // Scripts log a handful of names over and over: a short scan beats hashing.
        if let Some(n) = self.recent.iter().find(|n| n.as_str() == name) {
            return *n;
        }
        let n = Name::intern(name);
        if self.recent.len() == RECENT_NAMES {
            self.recent.remove(0);
        }
        self.recent.push(n);
        n
    }

    fn sync_stack(&mut self) {
        let (Some(from), Some(run)) = (self.stack_changed_from, self.run.as_mut()) else {
            return;
        };
        self.stack_changed_from = None;
        if from >= self.frames.len() {
            run.pending.push(Entry::Truncate(self.frames.len()));
        }
        for (depth, f) in self.frames.iter().enumerate().skip(from) {
            let position = Position {
                name: f.name,
                iteration: f.iteration,
                item: f.item.clone(),
            };
            run.pending.push(Entry::Position { depth, position });
        }
    }

    /// Notes that the frames from `depth` on changed.
    fn stack_changed(&mut self, depth: usize) {
        self.stack_changed_from = Some(self.stack_changed_from.map_or(depth, |d| d.min(depth)));
    }

    /// How many loops are open: the depth the next `loop_enter` returns.
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// Enters a `flor.loop`; returns its depth, which `loop_next`/`loop_exit` take.
    pub fn loop_enter(&mut self, name: &str) -> Result<usize> {
        self.ensure_run()?;
        let now = Instant::now();
        if self.frames.is_empty() {
            self.emit_setup(now)?;
        }
        let name = self.intern(name);
        self.frames.push(Frame {
            name,
            iteration: None,
            item: None,
            single: false,
            entered: now,
            iter_started: now,
            n: 0,
            mean: 0.0,
            m2: 0.0,
        });
        let depth = self.frames.len() - 1;
        self.stack_changed(depth);
        Ok(depth)
    }

    /// Moves the loop at `depth` to its next item. At the outermost level this is an
    /// iteration boundary: everything logged so far reaches the run file first.
    pub fn loop_next(&mut self, depth: usize, iteration: i64, item: Option<Item>) -> Result<()> {
        let now = Instant::now();
        let Some(frame) = self.frames.get_mut(depth) else {
            return Ok(());
        };
        frame.close_iteration(now);
        frame.iteration = Some(iteration);
        frame.item = item;
        frame.iter_started = now;
        self.frames.truncate(depth + 1);
        self.stack_changed(depth);
        if depth == 0 {
            if let Some(v) = self.verifier.as_mut() {
                v.entered(iteration);
            }
            if iteration > 0 {
                self.barrier();
            }
        }
        Ok(())
    }

    /// Leaves the loop at `depth` (also on `break` and exceptions) and records its
    /// timing summary in the enclosing context.
    pub fn loop_exit(&mut self, depth: usize) -> Result<()> {
        if depth >= self.frames.len() {
            return Ok(());
        }
        let now = Instant::now();
        self.frames.truncate(depth + 1);
        let Some(mut frame) = self.frames.pop() else {
            return Ok(());
        };
        if !frame.single {
            frame.close_iteration(now);
        }
        self.stack_changed(depth);
        if frame.single {
            let secs = now.duration_since(frame.entered).as_secs_f64();
            self.emit("time::iter", Value::Float(secs), Kind::Time, false)?;
        } else {
            if frame.n > 0 {
                let std = if frame.n > 1 {
                    (frame.m2 / (frame.n - 1) as f64).sqrt()
                } else {
                    0.0
                };
                self.emit("time::iter", Value::Float(frame.mean), Kind::Time, false)?;
                self.emit("time::iter::std", Value::Float(std), Kind::Time, false)?;
                self.emit(
                    "time::iter::n",
                    Value::Int(frame.n as i64),
                    Kind::Time,
                    false,
                )?;
            }
            let total = now.duration_since(frame.entered).as_secs_f64();
            self.emit("time::loop", Value::Float(total), Kind::Time, false)?;
        }
        if depth == 0 {
            self.main_work_end = Some(now);
            self.barrier();
        }
        Ok(())
    }

    /// Enters a `flor.iteration` block: one segment with a given index and value.
    pub fn iteration_enter(
        &mut self,
        name: &str,
        iteration: Option<i64>,
        item: Option<Item>,
    ) -> Result<usize> {
        let depth = self.loop_enter(name)?;
        if let Some(frame) = self.frames.last_mut() {
            frame.single = true;
            frame.iteration = iteration;
            frame.item = item;
        }
        Ok(depth)
    }

    /// Leaves a `flor.iteration` block, recording its duration as `time::iter`.
    pub fn iteration_exit(&mut self, depth: usize) -> Result<()> {
        self.loop_exit(depth)
    }

    fn emit_setup(&mut self, now: Instant) -> Result<()> {
        if self.setup_emitted {
            return Ok(());
        }
        self.setup_emitted = true;
        if let Some(boot) = self.boot.take() {
            self.emit("time::boot", Value::Float(boot), Kind::Time, false)?;
        }
        let secs = now.duration_since(self.origin).as_secs_f64();
        self.emit("time::setup", Value::Float(secs), Kind::Time, false)
    }

    /// Makes everything logged so far reach the run file.
    pub fn barrier(&mut self) {
        let Some(run) = self.run.as_mut() else { return };
        run.flush();
        run.writer.barrier();
        // A failing file (a full disk) is reported when it starts failing and when it
        // recovers; meanwhile the writer holds the records.
        let failing = run.writer.health().failing();
        match (&failing, run.file_failing) {
            (Some((why, held)), false) => self.warnings.push(format!(
                "{} cannot be written ({why}): its records ({} KiB so far) are held in memory and \
                 written once there is space; free space on that disk",
                run.path.display(),
                held / 1024
            )),
            (None, true) => self.warnings.push(format!(
                "{} is written again: no record was lost",
                run.path.display()
            )),
            _ => {}
        }
        run.file_failing = failing.is_some();
    }

    /// Starts the run if none is active: creates its file, writes the header and starts
    /// the code snapshot in the background.
    pub fn ensure_run(&mut self) -> Result<()> {
        if self.run.is_some() {
            return Ok(());
        }
        self.layout.create()?;
        if let Some(sink) = &self.replay {
            return self.start_replay_file(sink.clone());
        }
        let id = RunId::new();
        let tstamp = identity::local_tstamp();
        let path = self.layout.run_file(&id);
        let header = LineHeader::new(&self.config.projid, &tstamp, &self.config.filename);
        let writer = Writer::spawn(&path, header)?;
        writer.send(vec![Entry::RunLevel(Record {
            name: meta::RUN.into(),
            value: Value::Json(self.run_header(&id)),
            kind: Kind::Meta,
            arg: false,
        })]);
        let mut captured_at = None;
        let snapshot = match &self.config.repo {
            // The code is captured before the script can change a file (a sweep that
            // rewrites its config for the next run); the commit that names it is made on
            // another thread, whose git runs in the environment of now.
            Some(repo) => {
                let repo = repo.with_env_snapshot();
                let began = SystemTime::now();
                let captured = repo.capture(&id);
                captured_at = captured.is_ok().then_some(began);
                Some(spawn_snapshot(repo, captured, id.clone(), writer.sender()))
            }
            None => {
                self.warnings.push(format!(
                    "{} is not inside a git repository: runs are recorded without their code version (run `git init` to keep versions)",
                    self.config.root.display()
                ));
                None
            }
        };
        self.run = Some(ActiveRun {
            pending: Vec::with_capacity(BATCH),
            id,
            tstamp,
            path,
            writer,
            snapshot,
            captured_at,
            file_failing: false,
            args: Vec::new(),
        });
        Ok(())
    }

    fn run_header(&self, id: &RunId) -> serde_json::Value {
        let mut header = serde_json::json!({
            "run_id": id.as_str(),
            "script": self.config.script,
            "argv": self.config.argv,
            "python": self.config.python,
            "cwd": self.config.cwd,
            "pid": std::process::id(),
            "host": hostname(),
            "start": unix_now(),
            "flordb": env!("CARGO_PKG_VERSION"),
        });
        // Only named runs carry the key: unnamed headers stay as they were.
        if let (Some(name), Some(map)) = (&self.config.name, header.as_object_mut()) {
            map.insert("name".into(), name.clone().into());
        }
        header
    }

    fn start_replay_file(&mut self, sink: ReplaySink) -> Result<()> {
        let tmp = tmp_path(&sink.output);
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
        }
        let _ = std::fs::remove_file(&tmp);
        let header = LineHeader::new(&sink.projid, &sink.tstamp, &sink.filename);
        let writer = Writer::spawn(&tmp, header)?;
        self.run = Some(ActiveRun {
            pending: Vec::with_capacity(BATCH),
            id: RunId::from_string(sink.run_id.clone()),
            tstamp: sink.tstamp.clone(),
            path: sink.output.clone(),
            writer,
            snapshot: None,
            captured_at: None,
            file_failing: false,
            args: Vec::new(),
        });
        Ok(())
    }

    /// Turns this process into a replay of a recorded run: nothing is recorded as a
    /// new run; the `apply` names and the args go to the sink's file.
    pub fn start_replay(&mut self, sink: ReplaySink) {
        self.replay = Some(sink);
    }

    pub fn replay_sink(&self) -> Option<&ReplaySink> {
        self.replay.as_ref()
    }

    /// In replay: compare what is logged again with the recorded run (see `verify`).
    pub fn set_verifier(&mut self, verifier: Option<Verifier>) {
        self.verifier = verifier;
    }

    /// In replay: whether the current outer iteration skips its nested loops.
    pub fn set_skipping_nested(&mut self, skipping: bool) {
        if let Some(v) = self.verifier.as_mut() {
            v.set_skipping_nested(skipping);
        }
    }

    /// In replay: the first value that came back different from the record.
    pub fn divergence(&self) -> Option<&Mismatch> {
        self.verifier.as_ref().and_then(Verifier::first_mismatch)
    }

    /// In replay: what the check found so far.
    pub fn verify_report(&self) -> Option<&VerifyReport> {
        self.verifier.as_ref().map(Verifier::report)
    }

    /// In replay: stops recording and removes what this replay wrote (it is about to be
    /// run again, from the start).
    pub fn abandon_replay(&mut self) {
        if let Some(mut run) = self.run.take() {
            run.flush();
            let _ = run.writer.finish();
            let _ = std::fs::remove_file(tmp_path(&run.path));
        }
        self.reset();
    }

    /// In replay: whether what is logged from now on is dropped.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Sets the checkpoint budget (a fraction of training time).
    pub fn set_epsilon(&mut self, epsilon: f64) {
        self.policy = Policy::new(epsilon);
    }

    /// At the start of an outer iteration: whether to checkpoint it.
    pub fn ckpt_decide(&mut self, force: bool) -> bool {
        self.replay.is_none() && self.policy.decide(Instant::now(), force)
    }

    /// Hands a checkpoint to the background writer. `copy_secs` is what copying the
    /// state out cost the caller; it counts against the budget with this call's time.
    pub fn checkpoint(&mut self, submission: Submission, copy_secs: f64) -> Result<()> {
        if self.replay.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        self.ensure_run()?;
        if self.ckpt.is_none() {
            let id = self
                .run
                .as_ref()
                .map(|r| r.id.to_string())
                .unwrap_or_default();
            self.ckpt = Some(CkptWriter::spawn(
                self.layout.flor_dir(),
                id,
                self.spares.clone(),
            )?);
        }
        if let Some(w) = &self.ckpt {
            w.submit(submission);
        }
        self.policy
            .charge(copy_secs + started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Where a checkpoint's copies come from: room for them ([`Spares::reserve`], which
    /// may wait for the writer) and buffers to copy into.
    pub fn ckpt_spares(&self) -> Spares {
        self.spares.clone()
    }

    /// What checkpointing did in the current (or last committed) run.
    pub fn ckpt_stats(&self) -> (Option<WriterStats>, f64, u64, u64) {
        let stats = self
            .ckpt
            .as_ref()
            .map(CkptWriter::stats)
            .or(self.ckpt_stats);
        (
            stats,
            self.policy.spent(),
            self.policy.taken,
            self.policy.skipped,
        )
    }

    fn finish_checkpoints(&mut self) -> Result<()> {
        let Some(writer) = self.ckpt.take() else {
            return Ok(());
        };
        let spent = self.policy.spent();
        let finished = writer.finish();
        self.spares.clear();
        match finished {
            Ok(stats) => {
                self.ckpt_stats = Some(stats);
                self.emit("time::ckpt", Value::Float(spent), Kind::Time, false)?;
            }
            Err(err) => self.warnings.push(format!(
                "some checkpoints of this run were not saved: {err}"
            )),
        }
        Ok(())
    }

    fn commit_replay(&mut self, status: RunStatus) -> Result<Option<CommitSummary>> {
        let Some(mut run) = self.run.take() else {
            return Ok(None);
        };
        run.flush();
        let records = run.writer.finish();
        self.reset();
        let records = records?;
        let tmp = tmp_path(&run.path);
        if status == RunStatus::Finished {
            std::fs::rename(&tmp, &run.path).map_err(|e| crate::Error::io(&run.path, e))?;
        } else {
            // A failed replay leaves nothing partial behind.
            let _ = std::fs::remove_file(&tmp);
        }
        let header = LineHeader::new(&self.config.projid, &run.tstamp, &self.config.filename);
        Ok(Some(CommitSummary {
            run_id: run.id,
            records,
            version: None,
            path: run.path,
            header,
            status,
        }))
    }

    /// Ends the active run: timing records, the end record, the complete file, the
    /// SQLite cache, then git. Returns `None` when no run was active. Problems after
    /// the file is complete are warnings: the file is the truth and nothing is lost.
    pub fn commit(&mut self, status: RunStatus) -> Result<Option<CommitSummary>> {
        if self.run.is_some() || self.capture.has_partial() {
            self.capture_partial()?;
        }
        if self.run.is_none() {
            return Ok(None);
        }
        if self.replay.is_some() {
            return self.commit_replay(status);
        }
        // Loops left open (an exception in a generator never closed) end here.
        while let Some(depth) = self.frames.len().checked_sub(1) {
            self.loop_exit(depth)?;
        }
        self.finish_checkpoints()?;
        let now = Instant::now();
        let script_secs = now.duration_since(self.origin).as_secs_f64();
        self.emit("time::script", Value::Float(script_secs), Kind::Time, false)?;
        if let Some(end) = self.main_work_end {
            let teardown = now.duration_since(end).as_secs_f64();
            self.emit("time::teardown", Value::Float(teardown), Kind::Time, false)?;
        }
        let Some(mut run) = self.run.take() else {
            return Ok(None);
        };
        let snapshot = match run.snapshot.take().map(JoinHandle::join) {
            Some(Ok(Ok(snap))) => Some(snap),
            Some(Ok(Err(err))) => {
                self.warnings.push(format!(
                    "the code version of this run was not recorded: {err}"
                ));
                None
            }
            Some(Err(_)) => None,
            None => None,
        };
        let (status_text, code) = match status {
            RunStatus::Finished => ("finished", 0),
            RunStatus::Failed(code) => ("failed", code),
        };
        run.flush();
        run.writer.send(vec![Entry::RunLevel(Record {
            name: meta::END.into(),
            value: Value::Json(serde_json::json!({
                "status": status_text,
                "exit_code": code,
                "end": unix_now(),
            })),
            kind: Kind::Meta,
            arg: false,
        })]);
        // The next run of this process starts fresh even when this one's file failed.
        let records = run.writer.finish();
        self.reset();
        let records = records?;

        // The query cache is not updated here: readers bring it up to date with the run
        // files, so a run's exit costs nothing per value.
        let version = snapshot.as_ref().map(|s| s.commit.clone());
        if let (Some(repo), Some(snap)) = (&self.config.repo, snapshot) {
            let pending = PendingRun {
                run_id: run.id.to_string(),
                tstamp: run.tstamp.clone(),
                args: run.args.clone(),
                snapshot: snap,
            };
            // Deferred, the exit costs nothing per value; if the note cannot be left,
            // the commit is made now. A `flor.*` branch is committed to now all the
            // same: the user may check out another branch the moment the script ends,
            // and the branch must hold the run by then.
            let deferred = self.defer_git
                && !pending.snapshot.commits_to_branch()
                && repo.defer_record(&pending).is_ok();
            if !deferred {
                if let Err(err) = repo.record_run(
                    &pending.snapshot,
                    &run.id,
                    &run.tstamp,
                    &run.path,
                    &run.args,
                ) {
                    self.warnings.push(format!(
                        "the run's records were not committed to git: {err}"
                    ));
                }
            }
        }
        let header = LineHeader::new(&self.config.projid, &run.tstamp, &self.config.filename);
        Ok(Some(CommitSummary {
            run_id: run.id,
            records,
            version,
            path: run.path,
            header,
            status,
        }))
    }

    /// Per-run state goes back to how a fresh process has it; the next call starts a
    /// new run.
    fn reset(&mut self) {
        self.frames.clear();
        self.stack_changed_from = None;
        self.setup_emitted = false;
        self.main_work_end = None;
        self.origin = Instant::now();
        self.muted = false;
        self.policy = Policy::new(self.policy.epsilon());
        self.capture.reset();
    }
}

fn spawn_snapshot(
    repo: Repo,
    captured: Result<Captured>,
    id: RunId,
    tx: crossbeam_channel::Sender<Msg>,
) -> JoinHandle<Result<Snapshot>> {
    std::thread::spawn(move || {
        let snap = repo.commit(captured?, &id)?;
        let _ = tx.send(Msg::Batch(vec![Entry::RunLevel(Record {
            name: meta::VERSION.into(),
            value: Value::Json(serde_json::json!({
                "commit": snap.commit,
                "tree": snap.tree,
                "branch": snap.branch,
                "head": snap.head,
            })),
            kind: Kind::Meta,
            arg: false,
        })]));
        Ok(snap)
    })
}

fn tmp_path(output: &std::path::Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    output.with_file_name(name)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The host name, for telling a killed run from one still running elsewhere.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod stack_tests {
    use super::*;
    use crate::record::{parse_line, Segment};

    fn recorder(root: &std::path::Path) -> Recorder {
        Recorder::new(RunConfig {
            root: root.to_path_buf(),
            repo: None,
            projid: "proj".into(),
            filename: "train.py".into(),
            script: Some("train.py".into()),
            argv: vec!["train.py".into()],
            python: None,
            cwd: None,
            name: None,
        })
    }

    fn ctx_of(lines: &[crate::record::ParsedLine], name: &str) -> Vec<Option<Vec<Segment>>> {
        lines
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.ctx.clone())
            .collect()
    }

    fn seg(name: &str, iteration: i64, value: Option<&str>) -> Segment {
        Segment {
            name: name.into(),
            iteration: Some(iteration),
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn each_record_carries_the_stack_it_was_logged_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = recorder(dir.path());
        rec.log("before", Value::Int(0), Kind::Log).unwrap();
        let e = rec.loop_enter("epoch").unwrap();
        for epoch in 0..2 {
            rec.loop_next(e, epoch, Some(Item::Int(epoch))).unwrap();
            let s = rec.loop_enter("step").unwrap();
            // Steps that log nothing still move the stack the writer must follow.
            for step in 0..3 {
                rec.loop_next(s, step, Some(Item::from("b"))).unwrap();
                if step == 1 {
                    rec.log("loss", Value::Int(step), Kind::Log).unwrap();
                }
            }
            rec.loop_exit(s).unwrap();
            rec.log("acc", Value::Int(epoch), Kind::Log).unwrap();
        }
        rec.loop_exit(e).unwrap();
        rec.log("after", Value::Int(1), Kind::Log).unwrap();
        let summary = rec.commit(RunStatus::Finished).unwrap().unwrap();

        let path = Layout::new(dir.path()).run_file(&summary.run_id);
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<_> = text.lines().map(|l| parse_line(l).unwrap()).collect();
        assert_eq!(ctx_of(&lines, "before"), vec![None]);
        assert_eq!(ctx_of(&lines, "after"), vec![None]);
        assert_eq!(
            ctx_of(&lines, "loss"),
            vec![
                Some(vec![seg("epoch", 0, Some("0")), seg("step", 1, Some("b"))]),
                Some(vec![seg("epoch", 1, Some("1")), seg("step", 1, Some("b"))]),
            ]
        );
        assert_eq!(
            ctx_of(&lines, "acc"),
            vec![
                Some(vec![seg("epoch", 0, Some("0"))]),
                Some(vec![seg("epoch", 1, Some("1"))]),
            ]
        );
        // The nested loop's timing lands in the epoch it ran in; the epoch loop's at run level.
        let loops = ctx_of(&lines, "time::loop");
        assert_eq!(loops.len(), 3);
        assert_eq!(loops[0], Some(vec![seg("epoch", 0, Some("0"))]));
        assert_eq!(loops[2], None);
        assert!(lines
            .iter()
            .filter(|l| l.kind == Kind::Meta)
            .all(|l| l.ctx.is_none()));
    }

    #[test]
    fn a_second_run_in_the_process_starts_from_a_fresh_stack() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = recorder(dir.path());
        let e = rec.loop_enter("epoch").unwrap();
        rec.loop_next(e, 0, None).unwrap();
        rec.log("x", Value::Int(0), Kind::Log).unwrap();
        rec.commit(RunStatus::Finished).unwrap().unwrap();
        // A second run in the same process: nothing of the first run's stack remains.
        let e = rec.loop_enter("epoch").unwrap();
        rec.loop_next(e, 4, None).unwrap();
        rec.log("x", Value::Int(1), Kind::Log).unwrap();
        let second = rec.commit(RunStatus::Finished).unwrap().unwrap();
        let path = Layout::new(dir.path()).run_file(&second.run_id);
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<_> = text.lines().map(|l| parse_line(l).unwrap()).collect();
        assert_eq!(ctx_of(&lines, "x"), vec![Some(vec![seg("epoch", 4, None)])]);
    }
}

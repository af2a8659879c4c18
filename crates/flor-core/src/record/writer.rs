//! The background writer: records travel over a channel and are formatted and appended
//! to the run's JSONL file off the training thread. A barrier makes everything sent so
//! far reach the file; the fsync follows on the writer's own time.
//!
//! The loop context travels as changes to a copy of the stack that the writer keeps:
//! the training thread allocates nothing per step. Batch buffers come back emptied for
//! reuse, so neither thread allocates or frees one per batch, and they stay under 128 KiB:
//! glibc serves larger blocks with mmap, and freeing one raises its mmap threshold for the
//! whole process, changing how the training's own buffers are placed.
//!
//! A write that fails (a full disk) loses nothing: the unwritten lines are held in memory
//! (up to [`HOLD_LIMIT`]) and written at the next barrier that succeeds. The training
//! thread learns of the failure, and of the recovery, through [`Health`]; a run that
//! ends with lines still held saves them beside the system's temporary files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::line::{write_line, LineHeader};
use super::{write_stack_json, Position, Record};
use crate::{Error, Result};

/// What the writer is told, in order.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A record logged in the loop context that the entries before it built.
    InContext(Record),
    /// Run metadata (header, version, end): no loop context, whatever the stack is.
    RunLevel(Record),
    /// The stack changed from `depth` on: it keeps `depth` positions, then this one.
    Position { depth: usize, position: Position },
    /// The stack keeps only its first `depth` positions.
    Truncate(usize),
}

pub(crate) enum Msg {
    /// Entries in the order they happened. The training thread sends them in batches:
    /// one channel hand-off (and at most one wake-up) per batch, not per value.
    Batch(Vec<Entry>),
    /// Write out everything received so far, then acknowledge.
    Barrier,
}

/// Entries per batch: hundreds of steps' worth (one wake-up of the writer each), in a
/// buffer small enough to stay out of glibc's mmap range.
pub(crate) const BATCH: usize = 1024;
/// A batch is handed over this many entries before it is full: the loop positions pushed
/// ahead of a record must not make the buffer grow.
pub(crate) const HEADROOM: usize = 32;
/// Emptied batch buffers kept for reuse.
const SPARES: usize = 4;

/// Unwritten lines held in memory while the file cannot be written; beyond this, new
/// records are counted as lost instead of filling the training's memory.
pub(crate) const HOLD_LIMIT: usize = 256 << 20;

/// What the writer thread tells the training thread about the file.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Why the last write failed; `None` while writes succeed.
    failure: Mutex<Option<String>>,
    /// Bytes held in memory, not yet in the file.
    held: AtomicU64,
    /// Records dropped because the hold was full.
    lost: AtomicU64,
}

impl Health {
    /// Why writing the file fails now, if it does, and how many bytes wait in memory.
    pub(crate) fn failing(&self) -> Option<(String, u64)> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        failure.map(|why| (why, self.held.load(Ordering::Relaxed)))
    }

    /// Records lost because the file could not be written and the hold was full.
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn set(&self, failure: Option<String>, held: usize) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = failure;
        self.held.store(held as u64, Ordering::Relaxed);
    }
}

/// Handle on a run file's writer thread.
pub(crate) struct Writer {
    tx: Sender<Msg>,
    /// Emptied batches coming back from the writer.
    spares: Receiver<Vec<Entry>>,
    /// The writer's answer to each barrier.
    acks: Receiver<()>,
    health: Arc<Health>,
    handle: JoinHandle<Result<u64>>,
}

impl Writer {
    /// Creates the run file (it must not exist) and starts the writer thread.
    pub(crate) fn spawn(path: &Path, header: LineHeader) -> Result<Writer> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let (spare_tx, spares) = crossbeam_channel::bounded(SPARES);
        let (ack_tx, acks) = crossbeam_channel::bounded(1);
        let path = path.to_path_buf();
        let health = Arc::new(Health::default());
        let shared = health.clone();
        let handle = std::thread::Builder::new()
            .name("flor-writer".into())
            .spawn(move || {
                let mut out = Output {
                    path,
                    file,
                    held: Vec::with_capacity(1 << 16),
                    health: shared,
                };
                let count = write_loop(&mut out, header, rx, spare_tx, ack_tx)?;
                out.finish(count)
            })
            .map_err(|e| Error::io("flor-writer thread", e))?;
        Ok(Writer {
            tx,
            spares,
            acks,
            health,
            handle,
        })
    }

    /// The file's health as the writer last saw it.
    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// An empty batch buffer: one the writer gave back, or a new one.
    pub(crate) fn empty_batch(&self) -> Vec<Entry> {
        self.spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH))
    }

    /// A sender for other threads (the git snapshot) that add records.
    pub(crate) fn sender(&self) -> Sender<Msg> {
        self.tx.clone()
    }

    pub(crate) fn send(&self, batch: Vec<Entry>) {
        // A dead writer reports its error from `finish`; logging must not raise mid-training.
        let _ = self.tx.send(Msg::Batch(batch));
    }

    /// Returns once every record sent before it is in the file (not yet fsynced).
    pub(crate) fn barrier(&self) {
        if self.tx.send(Msg::Barrier).is_ok() {
            let _ = self.acks.recv();
        }
    }

    /// Closes the channel, waits for the file to be complete and synced, and returns
    /// the number of records written.
    pub(crate) fn finish(self) -> Result<u64> {
        drop(self.tx);
        match self.handle.join() {
            Ok(result) => result,
            Err(_) => Err(Error::Invalid("the flor writer thread panicked".into())),
        }
    }
}

/// The run file and the lines not yet in it.
struct Output {
    path: PathBuf,
    file: File,
    /// Formatted lines waiting to be written (all of them while writes fail).
    held: Vec<u8>,
    health: Arc<Health>,
}

impl Output {
    /// Writes as much of what is held as the file takes; what is written leaves the hold.
    fn write_held(&mut self) -> bool {
        let mut written = 0;
        let result = loop {
            if written == self.held.len() {
                break Ok(());
            }
            match self.file.write(&self.held[written..]) {
                Ok(0) => break Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.held.drain(..written);
        let failure = result.err().map(|e| e.to_string());
        let ok = failure.is_none();
        self.health.set(failure, self.held.len());
        ok
    }

    fn sync(&mut self) {
        if let Err(e) = self.file.sync_data() {
            self.health.set(Some(e.to_string()), self.held.len());
        }
    }

    /// Takes one formatted line, unless the file fails and the hold is full.
    fn hold(&mut self, line: &[u8]) -> bool {
        if self.held.len() + line.len() > HOLD_LIMIT && self.health.failing().is_some() {
            self.health.lost.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.held.extend_from_slice(line);
        true
    }

    /// At the end: the last write, and if the file still fails, the held lines saved
    /// beside the system's temporary files, so that nothing is lost.
    fn finish(mut self, count: u64) -> Result<u64> {
        if self.write_held() {
            if let Err(e) = self.file.sync_all() {
                return Err(Error::io(&self.path, e));
            }
            let lost = self.health.lost();
            if lost == 0 {
                return Ok(count);
            }
            return Err(Error::Unsaved(format!(
                "{}: {lost} records were lost while the file could not be written",
                self.path.display()
            )));
        }
        let why = self.health.failing().map(|(w, _)| w).unwrap_or_default();
        let name = self
            .path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let rescue = std::env::temp_dir().join(format!("flordb-unsaved-{name}"));
        let saved = std::fs::write(&rescue, &self.held).is_ok();
        let lost = self.health.lost();
        let tail = if lost > 0 {
            format!("; {lost} more records were lost (over the memory hold)")
        } else {
            String::new()
        };
        Err(Error::Unsaved(if saved {
            format!(
                "{} could not be written ({why}): its last {} bytes of records are saved in {}; \
                 once there is space, append them: cat {} >> {}{tail}",
                self.path.display(),
                self.held.len(),
                rescue.display(),
                rescue.display(),
                self.path.display(),
            )
        } else {
            format!(
                "{} could not be written ({why}): its last {} bytes of records are lost{tail}",
                self.path.display(),
                self.held.len()
            )
        }))
    }
}

fn write_loop(
    out: &mut Output,
    header: LineHeader,
    rx: Receiver<Msg>,
    spares: Sender<Vec<Entry>>,
    acks: Sender<()>,
) -> Result<u64> {
    let mut line = String::with_capacity(1 << 10);
    let mut stack: Vec<Position> = Vec::new();
    // The stack's JSON, rendered at the first record after it changed.
    let mut ctx_json = String::from("null");
    let mut ctx_stale = false;
    let mut count = 0u64;
    for msg in rx {
        match msg {
            Msg::Batch(mut batch) => {
                for entry in batch.drain(..) {
                    let (rec, ctx) = match entry {
                        Entry::Position { depth, position } => {
                            stack.truncate(depth);
                            stack.push(position);
                            ctx_stale = true;
                            continue;
                        }
                        Entry::Truncate(depth) => {
                            stack.truncate(depth);
                            ctx_stale = true;
                            continue;
                        }
                        Entry::RunLevel(rec) => (rec, "null"),
                        Entry::InContext(rec) => {
                            if ctx_stale {
                                ctx_json.clear();
                                write_stack_json(&stack, &mut ctx_json);
                                ctx_stale = false;
                            }
                            (rec, ctx_json.as_str())
                        }
                    };
                    line.clear();
                    write_line(&header, Some(ctx), &rec, &mut line);
                    if out.hold(line.as_bytes()) {
                        count += 1;
                    }
                    // While the file fails, it is tried again at barriers only.
                    if out.held.len() > (1 << 16) && out.health.failing().is_none() {
                        out.write_held();
                    }
                }
                if batch.capacity() == BATCH {
                    let _ = spares.try_send(batch);
                }
            }
            Msg::Barrier => {
                let ok = out.write_held();
                let _ = acks.send(());
                if ok {
                    out.sync();
                }
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{parse_line, Kind, Record, Value};

    fn record(i: i64) -> Entry {
        Entry::InContext(Record {
            name: "x".into(),
            value: Value::Int(i),
            kind: Kind::Log,
            arg: false,
        })
    }

    #[test]
    fn a_batch_buffer_stays_below_the_mmap_threshold() {
        assert!(BATCH * std::mem::size_of::<Entry>() < 128 * 1024);
    }

    #[test]
    fn batches_reach_the_file_in_order_and_their_buffers_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.jsonl");
        let header = LineHeader::new("p", "2026-01-01T00:00:00", "t.py");
        let writer = Writer::spawn(&path, header).unwrap();
        let mut n = 0;
        for _ in 0..10 {
            let mut batch = writer.empty_batch();
            assert!(batch.is_empty() && batch.capacity() >= BATCH);
            for _ in 0..BATCH {
                batch.push(record(n));
                n += 1;
            }
            writer.send(batch);
            writer.barrier();
        }
        // Every batch was handed back after the first: the writer drained it.
        assert!(!writer.spares.is_empty());
        assert_eq!(writer.finish().unwrap(), n as u64);
        let text = std::fs::read_to_string(&path).unwrap();
        let values: Vec<i64> = text
            .lines()
            .map(|l| match parse_line(l).unwrap().value {
                Value::Int(i) => i,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(values, (0..n).collect::<Vec<_>>());
    }
}

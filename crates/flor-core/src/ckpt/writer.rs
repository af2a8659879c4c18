//! The background checkpoint writer: the training thread hands over copies of the state's
//! buffers and goes on; this thread hashes, compresses and stores the chunks, then writes
//! the manifest. The queue is short and the copies in flight are bounded in bytes
//! ([`Spares::reserve`]), so a writer that falls behind makes the training thread wait,
//! and that wait counts against the checkpoint budget ([`super::Policy`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::chunks::{ChunkRef, ChunkStore};
use super::manifest::{CarriedInfo, Key, Manifest, ObjectInfo, Point};
use super::spares::{Permit, Spares};
use crate::{Error, Result};

/// One checkpoint's state as copied out by the training thread.
#[derive(Debug)]
pub struct Submission {
    pub loop_name: String,
    pub key: Key,
    /// For an `end` checkpoint: the nested checkpoints its iteration took.
    pub nested: u32,
    pub skeleton: Vec<u8>,
    pub leaves: Vec<Vec<u8>>,
    pub objects: Vec<ObjectInfo>,
    /// The outer loop's carried state in the skeleton, if it was captured.
    pub carried: Option<Vec<CarriedInfo>>,
    /// The room the leaf copies hold until they are stored ([`Spares::reserve`]).
    pub permit: Option<Permit>,
}

/// What the writer did, for reports and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct WriterStats {
    pub checkpoints: u64,
    /// Bytes of state handed over.
    pub raw_bytes: u64,
    /// Bytes written to the chunk store (after deduplication and compression).
    pub stored_bytes: u64,
    /// Seconds the writer thread spent hashing, compressing and writing.
    pub busy_secs: f64,
}

enum Job {
    Write(Box<Submission>),
    Flush(Sender<()>),
}

/// Handle on one run's checkpoint writer thread.
pub struct CkptWriter {
    tx: Sender<Job>,
    handle: JoinHandle<Option<Error>>,
    stats: Arc<Mutex<WriterStats>>,
}

/// Checkpoints waiting to be written before `submit` blocks.
const QUEUE: usize = 2;

impl CkptWriter {
    /// Starts the writer of run `run_id` in the project whose `.flor/` is `flor_dir`;
    /// it gives each checkpoint's leaf buffers back to `spares` once they are stored.
    pub fn spawn(flor_dir: PathBuf, run_id: String, spares: Spares) -> Result<CkptWriter> {
        let manifests = super::manifest::run_dir(&flor_dir, &run_id)?;
        let store = ChunkStore::new(&flor_dir);
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let shared = stats.clone();
        let handle = std::thread::Builder::new()
            .name("flor-ckpt".into())
            .spawn(move || {
                // What killed checkpoint writes left behind goes, off the training thread.
                store.remove_stale_tmp();
                write_loop(&store, &manifests, &run_id, &rx, &shared, &spares)
            })
            .map_err(|e| Error::io("flor-ckpt thread", e))?;
        Ok(CkptWriter { tx, handle, stats })
    }

    /// Queues a checkpoint; waits only when the queue is full.
    pub fn submit(&self, submission: Submission) {
        let _ = self.tx.send(Job::Write(Box::new(submission)));
    }

    /// Returns once every checkpoint submitted so far is written.
    pub fn flush(&self) {
        let (ack, done) = crossbeam_channel::bounded(1);
        if self.tx.send(Job::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }

    pub fn stats(&self) -> WriterStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes everything still queued and stops the thread; reports the first failure.
    pub fn finish(self) -> Result<WriterStats> {
        drop(self.tx);
        let failure = self
            .handle
            .join()
            .unwrap_or_else(|_| Some(Error::Checkpoint("the writer thread panicked".into())));
        let stats = *self.stats.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            Some(err) => Err(err),
            None => Ok(stats),
        }
    }
}

fn write_loop(
    store: &ChunkStore,
    manifests: &std::path::Path,
    run_id: &str,
    rx: &Receiver<Job>,
    stats: &Mutex<WriterStats>,
    spares: &Spares,
) -> Option<Error> {
    // Chunks this thread stored or found: no second look at the disk for them.
    let mut known: HashSet<String> = HashSet::new();
    let mut failure = None;
    for job in rx {
        let mut sub = match job {
            Job::Write(sub) => sub,
            Job::Flush(ack) => {
                let _ = ack.send(());
                continue;
            }
        };
        let started = std::time::Instant::now();
        let written = write_one(store, manifests, run_id, &sub, &mut known);
        spares.give(std::mem::take(&mut sub.leaves));
        match written {
            Ok((raw, stored)) => {
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                s.checkpoints += 1;
                s.raw_bytes += raw;
                s.stored_bytes += stored;
                s.busy_secs += started.elapsed().as_secs_f64();
            }
            // One failed checkpoint does not stop the others; the first failure is reported.
            Err(err) => {
                failure.get_or_insert(err);
            }
        }
    }
    failure
}

fn write_one(
    store: &ChunkStore,
    manifests: &std::path::Path,
    run_id: &str,
    sub: &Submission,
    known: &mut HashSet<String>,
) -> Result<(u64, u64)> {
    let mut stored = 0;
    let mut put = |data: &[u8]| -> Result<ChunkRef> {
        let r = ChunkStore::reference(data);
        if known.contains(&r.hash) {
            return Ok(r);
        }
        stored += store.put_hashed(&r, data)?;
        known.insert(r.hash.clone());
        Ok(r)
    };
    let skeleton = put(&sub.skeleton)?;
    let leaves = sub
        .leaves
        .iter()
        .map(|l| put(l))
        .collect::<Result<Vec<_>>>()?;
    let raw = sub.skeleton.len() as u64 + sub.leaves.iter().map(|l| l.len() as u64).sum::<u64>();
    let manifest = Manifest {
        run_id: run_id.to_string(),
        loop_name: sub.loop_name.clone(),
        occurrence: sub.key.occurrence,
        iteration: sub.key.iteration,
        point: sub.key.point,
        index: match sub.key.point {
            Point::Nested => sub.key.index,
            Point::End => sub.nested,
        },
        skeleton,
        leaves,
        objects: sub.objects.clone(),
        carried: sub.carried.clone(),
        raw_bytes: raw,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    };
    manifest.write(manifests)?;
    Ok((raw, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_manifests_and_deduplicates() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::default();
        let writer =
            CkptWriter::spawn(dir.path().to_path_buf(), "run1".into(), spares.clone()).unwrap();
        let weights = vec![3u8; 4096];
        for it in 0..3 {
            writer.submit(Submission {
                loop_name: "epoch".into(),
                key: Key::end(0, it),
                nested: 0,
                skeleton: b"skeleton".to_vec(),
                leaves: vec![weights.clone(), vec![it as u8; 16]],
                objects: vec![ObjectInfo {
                    name: "model".into(),
                    backend: "state_dict".into(),
                }],
                carried: None,
                permit: None,
            });
        }
        let stats = writer.finish().unwrap();
        assert_eq!(stats.checkpoints, 3);
        // Every leaf buffer came back for reuse.
        assert_eq!(spares.take(&[4096]).len(), 1);
        assert!(spares.held() >= 2 * (4096 + 16));
        let all = super::super::manifest::list(dir.path(), "run1").unwrap();
        assert_eq!(all.len(), 3);
        let store = ChunkStore::new(dir.path());
        for m in &all {
            m.verify(&store).unwrap();
        }
        // The shared weights were stored once: 3 small chunks + 1 weights + 1 skeleton.
        let files: usize = walk(&dir.path().join("objects"));
        assert_eq!(files, 5);
    }

    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    1
                }
            })
            .sum()
    }
}

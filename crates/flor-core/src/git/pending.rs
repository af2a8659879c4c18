//! Committing a finished run's file to git after the run rather than at its exit.
//!
//! Hashing the run file into git costs about a microsecond per value logged; a run's
//! exit should cost nothing per value. So the exit leaves a note,
//! `.flor/tmp/pending/<run>.json`, and the work is done by a detached process started
//! at exit or, should that not run, by the next FlorDB read ([`finish_pending`] from
//! the store's sync): whichever comes first, under one lock, oldest run first so that
//! runs are committed in order. The run file is already complete and durable when the
//! note is written; the note only says what to commit. Only the run's own ref
//! (`refs/flor/runs/<run>`) is written this way, which nothing of the user's checkout
//! depends on: runs on a `flor.*` branch are still committed at exit (`Recorder`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Repo, Snapshot};
use crate::record::RunId;
use crate::store::files_with_extension;
use crate::{Error, Result};

/// What committing one run's records needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRun {
    pub run_id: String,
    pub tstamp: String,
    pub args: Vec<(String, String)>,
    pub snapshot: Snapshot,
}

/// The folder of notes under `root`.
pub fn pending_dir(root: &Path) -> PathBuf {
    root.join(".flor").join("tmp").join("pending")
}

/// Whether some run of the project at `root` waits for its records commit. One
/// directory listing: cheap enough for every read.
pub fn has_pending(root: &Path) -> bool {
    std::fs::read_dir(pending_dir(root)).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
    })
}

/// Commits every waiting run of the project at `root`, if it is a git repository.
/// Returns how many runs were committed; a run that fails is set aside (its note
/// renamed `.failed`, the error written into it) so that reads do not retry it.
pub fn finish_pending(root: &Path) -> Result<usize> {
    if !has_pending(root) {
        return Ok(0);
    }
    Repo::discover(root).map_or(Ok(0), |repo| repo.finish_pending(true))
}

/// [`finish_pending`] for a read: when another process holds the lock it is committing
/// these runs already, and the read goes on at once (its cache needs no commit) instead
/// of waiting for git.
pub fn finish_pending_unless_busy(root: &Path) -> Result<usize> {
    if !has_pending(root) {
        return Ok(0);
    }
    Repo::discover(root).map_or(Ok(0), |repo| repo.finish_pending(false))
}

impl Repo {
    /// Leaves the note that `run`'s records still have to be committed.
    pub fn defer_record(&self, run: &PendingRun) -> Result<()> {
        let dir = pending_dir(&self.root);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let text = serde_json::to_string(run)
            .map_err(|e| Error::Invalid(format!("pending run {}: {e}", run.run_id)))?;
        // Written whole, then renamed: a finisher never reads half a note.
        let tmp = dir.join(format!("{}.tmp", run.run_id));
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        let path = dir.join(format!("{}.json", run.run_id));
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// See [`finish_pending`].
    pub fn finish_pending(&self, wait: bool) -> Result<usize> {
        let dir = pending_dir(&self.root);
        let lock_path = self.tmp_dir()?.join("pending.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        if wait {
            lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        } else {
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(0),
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
        let mut done = 0;
        let mut first_error = None;
        // Run ids sort by start time.
        for note in files_with_extension(&dir, "json")? {
            match self.finish_one(&note) {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(err) => {
                    let failed = note.with_extension("failed");
                    let _ = std::fs::rename(&note, &failed);
                    let _ = std::fs::write(&failed, format!("{err}\n"));
                    first_error.get_or_insert(err);
                }
            }
        }
        drop(lock);
        match first_error {
            Some(err) => Err(err),
            None => Ok(done),
        }
    }

    /// Commits one noted run; false when its run file is gone (nothing to commit).
    fn finish_one(&self, note: &Path) -> Result<bool> {
        let text = std::fs::read_to_string(note).map_err(|e| Error::io(note, e))?;
        let run: PendingRun = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", note.display())))?;
        let id = RunId::from_string(run.run_id.clone());
        let run_file = self
            .root
            .join(".flor")
            .join("runs")
            .join(format!("{id}.jsonl"));
        let found = run_file.exists();
        if found {
            self.record_run(&run.snapshot, &id, &run.tstamp, &run_file, &run.args)?;
        }
        std::fs::remove_file(note).map_err(|e| Error::io(note, e))?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    #[test]
    fn noted_runs_are_committed_in_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q", "-b", "flor.shadow"]);
        std::fs::write(root.join("train.py"), "print(1)\n").unwrap();
        git(root, &["add", "train.py"]);
        git(root, &["commit", "-qm", "code"]);
        let repo = Repo::discover(root).unwrap();
        let runs_dir = root.join(".flor").join("runs");
        std::fs::create_dir_all(&runs_dir).unwrap();
        std::fs::write(root.join(".flor").join(".gitignore"), "*\n").unwrap();
        assert!(!has_pending(root));
        for name in ["r1", "r2"] {
            let id = RunId::from_string(name.into());
            let snapshot = repo.snapshot(&id).unwrap();
            std::fs::write(runs_dir.join(format!("{name}.jsonl")), format!("{name}\n")).unwrap();
            repo.defer_record(&PendingRun {
                run_id: name.into(),
                tstamp: format!("t-{name}"),
                args: vec![("lr".into(), "0.1".into())],
                snapshot,
            })
            .unwrap();
        }
        // A note for a run whose file was deleted is dropped without a commit.
        let gone = RunId::from_string("r0".into());
        repo.defer_record(&PendingRun {
            run_id: "r0".into(),
            tstamp: "t".into(),
            args: vec![],
            snapshot: repo.snapshot(&gone).unwrap(),
        })
        .unwrap();
        assert!(has_pending(root));
        // Any read carries the notes out, should no finisher have run.
        crate::store::Store::open(root).unwrap().sync().unwrap();
        assert!(!has_pending(root));
        assert_eq!(finish_pending(root).unwrap(), 0);
        let log = git(root, &["log", "--format=%s", "flor.shadow"]);
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            ["FLOR::Auto-commit::t-r2", "FLOR::Auto-commit::t-r1", "code"]
        );
        let ref_tree = git(root, &["ls-tree", "-r", "--name-only", "refs/flor/runs/r1"]);
        assert!(ref_tree.contains(".flor/runs/r1.jsonl"), "{ref_tree}");
        assert_eq!(git(root, &["status", "--porcelain"]), "");
    }
}

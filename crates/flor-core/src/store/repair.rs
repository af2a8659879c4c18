//! Run files are the truth, and git keeps a second copy of each finished one (under
//! `refs/flor/runs/<run>`, see `git::Repo::record_run`). A run file that no longer reads
//! (bit rot, a bad edit) is put back from that copy, the damaged file kept beside it;
//! a deleted one is named once, and `flor unpack --restore` brings it back.

use std::path::{Path, PathBuf};

use super::runfile::RunFile;
use super::Store;
use crate::git;
use crate::{Error, Result};

impl Store {
    /// Puts `path` (a run file that does not read) back from git's copy; returns whether
    /// it did. The damaged file is kept as `<name>.damaged`.
    pub(super) fn repair_from_git(&self, path: &Path, why: &Error) -> bool {
        let Some(run_id) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            return false;
        };
        let Some(data) = git::committed_run_file(self.layout.root(), &run_id) else {
            return false;
        };
        let tmp = with_suffix(path, ".restored.tmp");
        let good = std::fs::write(&tmp, &data).is_ok() && RunFile::read(&tmp).is_ok();
        if !good {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        let aside = with_suffix(path, ".damaged");
        if std::fs::rename(path, &aside).is_err() || std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        eprintln!(
            "flordb: {} no longer reads ({why}); it was restored from git (refs/flor/runs/{run_id}), the damaged file kept as {}",
            path.display(),
            aside.display()
        );
        true
    }

    /// Tells that a run's file is gone while git still holds it (deleting the file is
    /// how a run is removed; it may also be a mistake).
    pub(super) fn note_deleted(&self, name: &str) {
        let run_id = name.trim_end_matches(".jsonl");
        if git::committed_run_file(self.layout.root(), run_id).is_some() {
            eprintln!(
                "flordb: the file of run {run_id} was deleted, so the run is gone from the tables; git still holds it: `flor unpack --restore` brings it back"
            );
        }
    }

    /// Writes back every run file git holds that is missing here; returns their run ids.
    pub fn restore_from_git(&self) -> Result<Vec<String>> {
        let dir = self.layout.runs_dir();
        let mut restored = Vec::new();
        for run_id in git::committed_runs(self.layout.root()) {
            let path = dir.join(format!("{run_id}.jsonl"));
            if path.exists() {
                continue;
            }
            let Some(data) = git::committed_run_file(self.layout.root(), &run_id) else {
                continue;
            };
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let tmp = with_suffix(&path, ".restored.tmp");
            std::fs::write(&tmp, &data).map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            restored.push(run_id);
        }
        Ok(restored)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

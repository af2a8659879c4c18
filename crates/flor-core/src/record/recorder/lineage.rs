//! The files a run saves itself, and the runs it resumed from. A forward run keeps a copy
//! of each file the script writes with `torch.save` ([`crate::ckpt::keep`]); a later run
//! whose set-up code loads that very file (same path, size and modification time) or
//! asks for a copy by name (`flor.load_checkpoint`) records a `flor::start`, so its
//! replay can start from the same state instead of from whatever the file holds by then.

use std::path::Path;

use super::super::meta;
use super::Recorder;
use crate::ckpt::{self, Source};
use crate::{Error, Result};

impl Recorder {
    /// Keeps this run's copy of `file`, just saved by the script as `name`. Nothing in
    /// replay, which never keeps what the script saves.
    pub fn keep_saved(&mut self, name: &str, file: &Path) -> Result<()> {
        if self.replay.is_some() {
            return Ok(());
        }
        self.ensure_run()?;
        let source = self.source_of(file)?;
        let run_id = self.run_id_string();
        ckpt::keep(&self.layout.flor_dir(), &run_id, name, file, source)?;
        Ok(())
    }

    /// The script loads `file` (as `name`) outside any loop: if it is a copy another run
    /// kept, untouched since, this run resumes from that run. Returns that run's id.
    pub fn note_resume(&mut self, name: &str, file: &Path) -> Result<Option<String>> {
        if self.replay.is_some() || !self.frames.is_empty() {
            return Ok(None);
        }
        let Ok(source) = self.source_of(file) else {
            return Ok(None);
        };
        let current = self.run.as_ref().map(|r| r.id.to_string());
        let Some((run, saved)) =
            ckpt::find_source(&self.layout.flor_dir(), &source, current.as_deref())?
        else {
            return Ok(None);
        };
        self.note_start(serde_json::json!({
            "via": "torch.load",
            "key": name,
            "run": run,
            "name": saved.name,
            "setup": !self.setup_emitted,
        }))?;
        Ok(Some(run))
    }

    /// Records that this run starts from run `run`'s copy of `name`, read through
    /// `flor.load_checkpoint` (its `call`-th read of that name).
    pub fn note_explicit_start(&mut self, run: &str, name: &str, call: u32) -> Result<()> {
        if self.replay.is_some() {
            return Ok(());
        }
        let setup = !self.setup_emitted && self.frames.is_empty();
        self.note_start(serde_json::json!({
            "via": "load_checkpoint",
            "key": name,
            "run": run,
            "name": name,
            "setup": setup,
            "call": call,
        }))
    }

    fn note_start(&mut self, start: serde_json::Value) -> Result<()> {
        self.ensure_run()?;
        if let Some(run) = self.run.as_mut() {
            run.push_meta(meta::START, start);
        }
        Ok(())
    }

    fn run_id_string(&self) -> String {
        self.run
            .as_ref()
            .map(|r| r.id.to_string())
            .unwrap_or_default()
    }

    /// `file`'s identity now: its path relative to the project (absolute outside it),
    /// size and modification time.
    fn source_of(&self, file: &Path) -> Result<Source> {
        let meta = std::fs::metadata(file).map_err(|e| Error::io(file, e))?;
        let modified = meta.modified().map_err(|e| Error::io(file, e))?;
        let mtime_ns = match modified.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        };
        let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let root =
            std::fs::canonicalize(&self.config.root).unwrap_or_else(|_| self.config.root.clone());
        let path = real
            .strip_prefix(&root)
            .unwrap_or(&real)
            .to_string_lossy()
            .into_owned();
        Ok(Source {
            path,
            size: meta.len(),
            mtime_ns,
        })
    }
}

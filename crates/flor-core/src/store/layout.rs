//! The `.flor/` folder of a project:
//!
//! ```text
//! .flor/.gitignore        "*": the folder ignores itself, the user's .gitignore is never edited
//! .flor/runs/<run>.jsonl  one file per run, the source of truth
//! .flor/flor.db           the SQLite cache, derived from the run files
//! .flor/tmp/              git's temporary index files and locks
//! .flor/replays/<run>/    replay results for a run (`source = replay`), one file per request
//! .flor/ckpts/<run>/      checkpoint manifests; .flor/objects/ their chunks
//! ```

use std::path::{Path, PathBuf};

use crate::record::RunId;
use crate::{Error, Result};

/// Paths inside one project's `.flor/` folder.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root` (the repository root); nothing is created yet.
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// The project root (the folder that holds `.flor/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn flor_dir(&self) -> PathBuf {
        self.root.join(".flor")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.flor_dir().join("runs")
    }

    pub fn db_path(&self) -> PathBuf {
        self.flor_dir().join("flor.db")
    }

    /// Where checkpoint chunks and other content-addressed objects live.
    pub fn objects_dir(&self) -> PathBuf {
        self.flor_dir().join("objects")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.flor_dir().join("tmp")
    }

    pub fn replays_dir(&self) -> PathBuf {
        self.flor_dir().join("replays")
    }

    /// Every finished replay file as `(run id, path)`, sorted.
    pub fn replay_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for run in subdirs(&self.replays_dir())? {
            let Some(id) = run.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            // A run folder that cannot be read is skipped, as a missing one would be.
            for f in files_with_extension(&run, "jsonl").unwrap_or_default() {
                out.push((id.clone(), f));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn run_file(&self, id: &RunId) -> PathBuf {
        self.runs_dir().join(format!("{id}.jsonl"))
    }

    /// Creates the folders and the self-ignoring `.gitignore`; idempotent.
    pub fn create(&self) -> Result<()> {
        for dir in [self.runs_dir(), self.tmp_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let ignore = self.flor_dir().join(".gitignore");
        if !ignore.exists() {
            let text = "# FlorDB's data: run files travel in git under refs/flor/, not in your commits.\n*\n";
            std::fs::write(&ignore, text).map_err(|e| Error::io(&ignore, e))?;
        }
        Ok(())
    }

    /// Every run file, sorted by name (run ids sort by start time).
    pub fn run_files(&self) -> Result<Vec<PathBuf>> {
        files_with_extension(&self.runs_dir(), "jsonl")
    }
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

/// The files in `dir` whose extension is `ext`, sorted; none if `dir` does not exist.
pub(crate) fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = entries(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// Finds the project root for `start`: the nearest folder at or above it that holds a
/// `.git` (folder or file) or a `.flor` folder.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists() || dir.join(".flor").is_dir())
        .map(Path::to_path_buf)
}

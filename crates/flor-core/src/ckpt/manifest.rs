//! Manifests: one JSON file per checkpoint under `.flor/ckpts/<run>/`, naming the chunks
//! of the enrolled objects' state. A checkpoint is identified by the outer loop it belongs
//! to (the how-many-th outer `flor.loop` of the run), the iteration (-1: the loop's entry)
//! and the point: the iteration's `end`, or the exit of its `k`-th nested loop. The
//! manifest is written last and atomically, so an existing manifest means every chunk was
//! written before it; [`Manifest::verify`] checks that they still hash right.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chunks::{ChunkRef, ChunkStore};
use crate::{Error, Result};

/// Where in an outer iteration a checkpoint was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Point {
    /// After the iteration's body (for iteration -1: at the loop's entry).
    End,
    /// Right after the iteration's `index`-th nested loop ended.
    Nested,
}

/// One enrolled object in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub name: String,
    /// `state_dict`, `numpy` or `pickle`: how the object is read and restored.
    pub backend: String,
}

/// One value of an outer loop's carried state (`analyze::CarriedVar`) in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedInfo {
    /// A name or attribute chain of the script (`X`, `self.best_acc`).
    pub path: String,
    /// How it was captured: `value` (rebound when restored), `state` (restored into the
    /// live object in place), `unbound` (not yet defined there), `unchanged` (an immutable
    /// value, nothing to restore), `ignored` (output only: a progress bar, a log file), or
    /// `failed` (it could not be saved: `note` says why).
    pub how: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl CarriedInfo {
    /// Whether a replay starting from this checkpoint gets the value back.
    pub fn restorable(&self) -> bool {
        self.how != "failed"
    }
}

/// Where a checkpoint sits in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// 0 for the run's first outer `flor.loop`, 1 for the second, ...
    pub occurrence: u32,
    /// The outer iteration; -1 for the loop's entry.
    pub iteration: i64,
    pub point: Point,
    /// For [`Point::Nested`]: which nested loop of the iteration (0-based).
    pub index: u32,
}

impl Key {
    /// The state after outer iteration `iteration` (-1: at the loop's entry).
    pub fn end(occurrence: u32, iteration: i64) -> Key {
        Key {
            occurrence,
            iteration,
            point: Point::End,
            index: 0,
        }
    }

    /// The state right after nested loop `index` of outer iteration `iteration`.
    pub fn nested(occurrence: u32, iteration: i64, index: u32) -> Key {
        Key {
            occurrence,
            iteration,
            point: Point::Nested,
            index,
        }
    }

    /// The manifest's file name.
    pub fn file_name(&self) -> String {
        let it = if self.iteration < 0 {
            "entry".to_string()
        } else {
            self.iteration.to_string()
        };
        match self.point {
            Point::End => format!("{}_{it}_end.json", self.occurrence),
            Point::Nested => format!("{}_{it}_nested{}.json", self.occurrence, self.index),
        }
    }
}

/// One checkpoint: the state of every enrolled object and the RNGs at one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    /// The outer loop's name.
    #[serde(rename = "loop")]
    pub loop_name: String,
    pub occurrence: u32,
    pub iteration: i64,
    pub point: Point,
    /// For `nested`: the nested loop's index; for `end`: how many nested checkpoints
    /// the iteration took (replay skips a nested loop only when it has them all).
    pub index: u32,
    /// The pickled structure of the state, tensors and arrays replaced by placeholders.
    pub skeleton: ChunkRef,
    /// The tensors' and arrays' raw bytes, in placeholder order.
    pub leaves: Vec<ChunkRef>,
    pub objects: Vec<ObjectInfo>,
    /// Bytes of state before deduplication and compression.
    pub raw_bytes: u64,
    /// Unix seconds when it was taken.
    pub created: f64,
    /// The outer loop's carried state captured with it; `None` in checkpoints of FlorDB
    /// versions that captured none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Vec<CarriedInfo>>,
}

impl Manifest {
    pub fn key(&self) -> Key {
        Key {
            occurrence: self.occurrence,
            iteration: self.iteration,
            point: self.point,
            index: if self.point == Point::Nested {
                self.index
            } else {
                0
            },
        }
    }

    /// Why a replay cannot start from this checkpoint, if it cannot: a path of `needed`
    /// (the loop's carried state, as today's analysis of the script names it) that it did
    /// not capture. The loop's entry needs none: replay computes it as the run did.
    pub fn missing_state(&self, needed: &[String]) -> Option<String> {
        if self.iteration < 0 && self.point == Point::End {
            return None;
        }
        for path in needed {
            let found = self.carried.iter().flatten().find(|c| &c.path == path);
            match found {
                Some(c) if c.restorable() => {}
                Some(c) => {
                    return Some(format!(
                        "{path} could not be saved ({})",
                        c.note.as_deref().unwrap_or("unknown reason")
                    ))
                }
                None if self.carried.is_none() => {
                    return Some(format!(
                        "{path} is carried from one iteration to the next, and this checkpoint was taken by a FlorDB that did not save such state"
                    ))
                }
                None => return Some(format!("{path} is carried from one iteration to the next but was not saved")),
            }
        }
        None
    }

    /// Every chunk it names, the skeleton first.
    pub fn chunks(&self) -> impl Iterator<Item = &ChunkRef> {
        std::iter::once(&self.skeleton).chain(&self.leaves)
    }

    /// Whether every chunk it names is stored (without reading them).
    pub fn complete(&self, store: &ChunkStore) -> bool {
        self.chunks().all(|c| store.has(c))
    }

    /// Reads every chunk, checking its hash: the checkpoint can be restored.
    pub fn verify(&self, store: &ChunkStore) -> Result<()> {
        for c in self.chunks() {
            store.get(c)?;
        }
        Ok(())
    }

    /// Writes the manifest into `dir` (temp file, then rename).
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(self.key().file_name());
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.key().file_name(),
            std::process::id()
        ));
        let text = serde_json::to_vec(self)
            .map_err(|e| Error::Checkpoint(format!("writing a manifest: {e}")))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }
}

/// The folder holding one run's manifests.
pub fn run_dir(flor_dir: &Path, run_id: &str) -> Result<PathBuf> {
    if run_id.is_empty()
        || run_id.starts_with('.')
        || run_id.contains(['/', '\\'])
        || run_id.contains("..")
    {
        return Err(Error::Invalid(format!("{run_id:?} is not a run id")));
    }
    Ok(flor_dir.join("ckpts").join(run_id))
}

/// Every manifest of a run, ordered by loop, iteration and point; unreadable files
/// (a torn write from a killed process) are left out. A run without checkpoints
/// gives an empty list and creates nothing.
pub fn list(flor_dir: &Path, run_id: &str) -> Result<Vec<Manifest>> {
    let dir = run_dir(flor_dir, run_id)?;
    let mut out: Vec<Manifest> = crate::store::files_with_extension(&dir, "json")?
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok())
        .filter_map(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .collect();
    out.sort_by_key(|m| (m.occurrence, m.iteration, m.point == Point::End, m.index));
    Ok(out)
}

/// Reads one manifest, if it exists.
pub fn read(flor_dir: &Path, run_id: &str, key: Key) -> Result<Option<Manifest>> {
    let path = run_dir(flor_dir, run_id)?.join(key.file_name());
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

//! Copies of the files a script saves itself (`torch.save(obj, "ckpt.pth")`), kept per
//! run as flordb 4.0.1 keeps them: one copy per path as the script passed it, holding the
//! last save. The bytes go to the chunk store (so a file saved unchanged by many runs is
//! stored once); `.flor/ckpts/<run>/saved.index` maps each name to its chunk and to the
//! identity of the file it was copied from, by which a later run that loads that very
//! file is known to have resumed from this one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chunks::{ChunkRef, ChunkStore};
use super::manifest::run_dir;
use crate::{Error, Result};

const INDEX: &str = "saved.index";

/// Which file a copy was made from, as it was right after the save: a file on disk with
/// the same path, size and modification time is that save's output, untouched since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Relative to the project root when inside it, else absolute.
    pub path: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// One kept copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedFile {
    /// The path exactly as the script passed it (`./ckpt.pth` is not `ckpt.pth`).
    pub name: String,
    pub chunk: ChunkRef,
    pub source: Source,
    /// Unix seconds of the save.
    pub saved_at: f64,
}

/// Copies `file`, just written by the script as `name`, into run `run_id`'s copies,
/// replacing an earlier save of the same name. On failure the earlier copy stays.
pub fn keep(
    flor_dir: &Path,
    run_id: &str,
    name: &str,
    file: &Path,
    source: Source,
) -> Result<SavedFile> {
    let data = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    let (chunk, _) = ChunkStore::new(flor_dir).put(&data)?;
    let saved = SavedFile {
        name: name.to_string(),
        chunk,
        source,
        saved_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default(),
    };
    let mut index = read_index(flor_dir, run_id)?;
    index.insert(name.to_string(), saved.clone());
    write_index(flor_dir, run_id, &index)?;
    Ok(saved)
}

/// The copies run `run_id` kept, by name; none (and nothing created) when it kept none.
pub fn saved(flor_dir: &Path, run_id: &str) -> Result<Vec<SavedFile>> {
    Ok(read_index(flor_dir, run_id)?.into_values().collect())
}

/// The bytes of run `run_id`'s copy of `name`, verified against its hash.
pub fn read_saved(flor_dir: &Path, run_id: &str, name: &str) -> Result<Vec<u8>> {
    let index = read_index(flor_dir, run_id)?;
    let Some(saved) = index.get(name) else {
        let names: Vec<&str> = index.keys().map(String::as_str).collect();
        return Err(Error::NoCheckpoint(if names.is_empty() {
            format!(
                "run {run_id} kept no copy of a saved file here (it saved none, or its copies stay on \
                 the machine that recorded it: they do not travel with git)"
            )
        } else {
            format!(
                "run {run_id} kept no copy of {name:?} (it kept: {})",
                names.join(", ")
            )
        }));
    };
    ChunkStore::new(flor_dir)
        .get(&saved.chunk)
        .map_err(|err| Error::Checkpoint(format!("run {run_id}'s copy of {name:?}: {err}")))
}

/// The newest run other than `except` whose copy came from the file `source` names, as
/// it is now: the run a script that loads that file resumes from.
pub fn find_source(
    flor_dir: &Path,
    source: &Source,
    except: Option<&str>,
) -> Result<Option<(String, SavedFile)>> {
    let ckpts = flor_dir.join("ckpts");
    let Ok(entries) = std::fs::read_dir(&ckpts) else {
        return Ok(None);
    };
    let mut best: Option<(String, SavedFile)> = None;
    for entry in entries.flatten() {
        let run = entry.file_name().to_string_lossy().into_owned();
        if Some(run.as_str()) == except || !entry.path().join(INDEX).is_file() {
            continue;
        }
        for saved in read_index(flor_dir, &run)?.into_values() {
            let newer = best
                .as_ref()
                .is_none_or(|(_, b)| saved.saved_at > b.saved_at);
            if saved.source == *source && newer {
                best = Some((run.clone(), saved));
            }
        }
    }
    Ok(best)
}

fn read_index(flor_dir: &Path, run_id: &str) -> Result<BTreeMap<String, SavedFile>> {
    let path = run_dir(flor_dir, run_id)?.join(INDEX);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Checkpoint(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

fn write_index(flor_dir: &Path, run_id: &str, index: &BTreeMap<String, SavedFile>) -> Result<()> {
    let dir = run_dir(flor_dir, run_id)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let path = dir.join(INDEX);
    let tmp = dir.join(format!(".{INDEX}.{}.tmp", std::process::id()));
    let text = serde_json::to_vec_pretty(index)
        .map_err(|e| Error::Checkpoint(format!("writing {}: {e}", path.display())))?;
    // Replaced whole: a reader sees the index before or after a save, never half of it.
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str, size: u64, mtime_ns: i64) -> Source {
        Source {
            path: path.into(),
            size,
            mtime_ns,
        }
    }

    #[test]
    fn the_last_save_of_each_name_is_kept_and_found_by_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let flor = dir.path();
        let file = dir.path().join("ckpt.pth");
        std::fs::write(&file, b"epoch 0").unwrap();
        keep(flor, "run1", "ckpt.pth", &file, source("ckpt.pth", 7, 1)).unwrap();
        std::fs::write(&file, b"epoch 1!").unwrap();
        keep(flor, "run1", "ckpt.pth", &file, source("ckpt.pth", 8, 2)).unwrap();
        keep(flor, "run1", "./other.pt", &file, source("other.pt", 8, 3)).unwrap();
        let kept = saved(flor, "run1").unwrap();
        assert_eq!(
            kept.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["./other.pt", "ckpt.pth"]
        );
        assert_eq!(read_saved(flor, "run1", "ckpt.pth").unwrap(), b"epoch 1!");
        // Only the file as the last save left it is that run's output.
        let found = find_source(flor, &source("ckpt.pth", 8, 2), None).unwrap();
        assert_eq!(
            found.map(|(run, s)| (run, s.name)),
            Some(("run1".into(), "ckpt.pth".into()))
        );
        assert!(find_source(flor, &source("ckpt.pth", 7, 1), None)
            .unwrap()
            .is_none());
        assert!(find_source(flor, &source("ckpt.pth", 8, 2), Some("run1"))
            .unwrap()
            .is_none());
        // The newest of two runs that left the same file wins.
        std::thread::sleep(std::time::Duration::from_millis(5));
        keep(flor, "run2", "ckpt.pth", &file, source("ckpt.pth", 8, 2)).unwrap();
        let found = find_source(flor, &source("ckpt.pth", 8, 2), None).unwrap();
        assert_eq!(found.unwrap().0, "run2");
        // Nothing kept: empty, and a clear error naming what is there.
        assert!(saved(flor, "run3").unwrap().is_empty());
        assert!(!flor.join("ckpts").join("run3").exists());
        let err = read_saved(flor, "run1", "missing.pth").unwrap_err();
        assert!(matches!(err, Error::NoCheckpoint(_)));
        assert!(err.to_string().contains("./other.pt, ckpt.pth"), "{err}");
    }
}

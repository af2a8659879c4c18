//! The content-addressed chunk store under `.flor/objects/`: one file per distinct
//! buffer, named by the blake3 hash of its bytes (`ab/cdef...`), so a tensor that does not
//! change between iterations or runs is stored once. Each file is one tag byte (0 raw,
//! 1 zstd) and the payload. Float weights shrink by 6-12% at zstd's fast level, so a
//! buffer is compressed only when a sample of it shrinks by a tenth or more;
//! the rest are kept raw, and the store never holds more than the raw bytes.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Fast compression: the writer thread must keep up with training.
const LEVEL: i32 = 1;
/// Buffers larger than this are tried on their first `SAMPLE` bytes before compressing.
const SAMPLE: usize = 64 << 10;

/// A buffer in the store: its hash and its length before compression.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkRef {
    pub hash: String,
    pub len: u64,
}

/// The `.flor/objects/` folder.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    dir: PathBuf,
}

impl ChunkStore {
    /// The store of the project whose `.flor/` folder is `flor_dir`; nothing is created yet.
    pub fn new(flor_dir: &Path) -> Self {
        ChunkStore {
            dir: flor_dir.join("objects"),
        }
    }

    pub(crate) fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(&hash[2..])
    }

    /// The reference of `data` without storing it.
    pub fn reference(data: &[u8]) -> ChunkRef {
        ChunkRef {
            hash: blake3::hash(data).to_hex().to_string(),
            len: data.len() as u64,
        }
    }

    /// Whether the chunk's file exists (its content is checked by [`ChunkStore::get`]).
    pub fn has(&self, chunk: &ChunkRef) -> bool {
        self.path(&chunk.hash).is_file()
    }

    /// Removes the temporary files of chunk writes that never finished (a process killed
    /// mid-checkpoint leaves a `.<hash>.<pid>.tmp` as large as the chunk): those whose
    /// writer is no longer running, or that are older than a day (the pid may have been
    /// reused). Another live process's write in progress is left alone. Returns how many.
    pub fn remove_stale_tmp(&self) -> usize {
        let Ok(subdirs) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        let me = std::process::id();
        for sub in subdirs.flatten() {
            let Ok(entries) = std::fs::read_dir(sub.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(pid) = tmp_writer(&name.to_string_lossy()) else {
                    continue;
                };
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
                if pid != me
                    && (old || !process_alive(pid))
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Stores `data` unless a chunk with its hash is already there. Returns its
    /// reference and the bytes written (0 when it was already stored).
    pub fn put(&self, data: &[u8]) -> Result<(ChunkRef, u64)> {
        let chunk = Self::reference(data);
        let written = self.put_hashed(&chunk, data)?;
        Ok((chunk, written))
    }

    /// [`ChunkStore::put`] for a `chunk` that is `data`'s reference, already computed.
    pub fn put_hashed(&self, chunk: &ChunkRef, data: &[u8]) -> Result<u64> {
        let path = self.path(&chunk.hash);
        if path.is_file() {
            return Ok(0);
        }
        let compressed = worth_compressing(data)?;
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = dir.join(format!(".{}.{}.tmp", &chunk.hash[2..], std::process::id()));
        let write = || -> std::io::Result<u64> {
            let mut f = std::fs::File::create(&tmp)?;
            let mut written = write_payload(&mut f, data, compressed)?;
            if written > data.len() as u64 + 1 {
                // The sample misled: compressed, it is larger than raw.
                f.set_len(0)?;
                f.seek(SeekFrom::Start(0))?;
                written = write_payload(&mut f, data, false)?;
            }
            // Durable before it is named: a named chunk is trusted by deduplication.
            f.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            Ok(written)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&path, e)
        })
    }

    /// Reads a chunk back and checks that its bytes hash to its name.
    pub fn get(&self, chunk: &ChunkRef) -> Result<Vec<u8>> {
        let path = self.path(&chunk.hash);
        let missing =
            |e: std::io::Error| Error::Checkpoint(format!("chunk {} is missing ({e})", chunk.hash));
        let corrupt =
            |why: String| Error::Checkpoint(format!("chunk {} is corrupt: {why}", chunk.hash));
        let mut file = std::fs::File::open(&path).map_err(missing)?;
        let mut tag = [0u8; 1];
        file.read_exact(&mut tag)
            .map_err(|e| corrupt(format!("no format byte ({e})")))?;
        // A raw chunk is read straight into its buffer (no second copy).
        let len = usize::try_from(chunk.len).map_err(|_| corrupt("too large".into()))?;
        let data = match tag[0] {
            RAW => {
                let mut data = Vec::with_capacity(len);
                file.take(chunk.len + 1)
                    .read_to_end(&mut data)
                    .map_err(missing)?;
                data
            }
            // Decompressed as it is read: one buffer, however large the chunk.
            ZSTD => {
                let mut data = Vec::with_capacity(len);
                zstd::stream::read::Decoder::new(file)
                    .and_then(|d| d.take(chunk.len + 1).read_to_end(&mut data))
                    .map_err(|e| corrupt(e.to_string()))?;
                data
            }
            _ => return Err(corrupt("unknown format".into())),
        };
        if data.len() as u64 != chunk.len || blake3::hash(&data).to_hex().as_str() != chunk.hash {
            return Err(Error::Checkpoint(format!(
                "chunk {} is corrupt: it does not match its hash",
                chunk.hash
            )));
        }
        Ok(data)
    }
}

/// Writes the tag byte and `data`, compressed as it goes (no second buffer) or raw;
/// returns the file's length.
fn write_payload(f: &mut std::fs::File, data: &[u8], compressed: bool) -> std::io::Result<u64> {
    if compressed {
        f.write_all(&[ZSTD])?;
        let mut encoder = zstd::stream::write::Encoder::new(&mut *f, LEVEL)?;
        encoder.write_all(data)?;
        encoder.finish()?;
    } else {
        f.write_all(&[RAW])?;
        f.write_all(data)?;
    }
    f.stream_position()
}

fn compress(data: &[u8]) -> Result<Vec<u8>> {
    zstd::bulk::compress(data, LEVEL)
        .map_err(|e| Error::Checkpoint(format!("compressing a chunk: {e}")))
}

/// The writer's pid of a chunk's temporary file name (`.<hash>.<pid>.tmp`).
fn tmp_writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    rest.rsplit_once('.')?.1.parse().ok()
}

/// Whether process `pid` exists (Linux: `/proc/<pid>`; elsewhere assumed, and only age
/// removes a file).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Whether compressing `data` saves a tenth or more, judged on its first `SAMPLE` bytes:
/// compressing 4 MB of float weights costs the writer 5-10 ms to save 6-12%.
fn worth_compressing(data: &[u8]) -> Result<bool> {
    if data.len() <= SAMPLE {
        return Ok(true);
    }
    let sample = &data[..SAMPLE];
    Ok(compress(sample)?.len() * 10 <= sample.len() * 9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_temporary_files_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(dir.path());
        let sub = dir.path().join("objects").join("ab");
        std::fs::create_dir_all(&sub).unwrap();
        // 4194999 is above the largest pid Linux hands out; this test's own pid is alive.
        let dead = sub.join(".cdef.4194999.tmp");
        let mine = sub.join(format!(".cdef.{}.tmp", std::process::id()));
        let chunk = sub.join("cdef");
        for p in [&dead, &mine, &chunk] {
            std::fs::write(p, b"x").unwrap();
        }
        let live_pid = std::os::unix::process::parent_id();
        let live = sub.join(format!(".beef.{live_pid}.tmp"));
        std::fs::write(&live, b"x").unwrap();
        assert_eq!(store.remove_stale_tmp(), 1);
        assert!(!dead.exists() && mine.exists() && chunk.exists() && live.exists());
        assert_eq!(tmp_writer(".00ff.123.tmp"), Some(123));
        assert_eq!(tmp_writer("00ff"), None);
    }

    use super::*;

    #[test]
    fn stores_once_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(dir.path());
        let data = vec![7u8; 100_000];
        let (a, written) = store.put(&data).unwrap();
        assert!(written > 0 && written < 1000, "{written}");
        let (b, again) = store.put(&data).unwrap();
        assert_eq!((a.clone(), 0), (b, again));
        assert_eq!(store.get(&a).unwrap(), data);
        // Incompressible data is kept raw: never more than the raw bytes plus the tag.
        let noise: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let (n, written) = store.put(&noise).unwrap();
        assert!(written <= noise.len() as u64 + 1);
        assert_eq!(store.get(&n).unwrap(), noise);
        // A large buffer whose sample does not compress is stored raw.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let big_noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (bn, written) = store.put(&big_noise).unwrap();
        assert_eq!(written, big_noise.len() as u64 + 1);
        assert_eq!(store.get(&bn).unwrap(), big_noise);
        // A tampered chunk is refused.
        let path = store.path(&a.hash);
        std::fs::write(&path, [0u8, 1, 2]).unwrap();
        assert!(store.get(&a).unwrap_err().to_string().contains("hash"));
    }
}

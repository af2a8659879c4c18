//! Checkpoints of the training state, taken at the outer loop's iteration boundaries and
//! used by replay to start any iteration without recomputing the ones before it.
//!
//! ```text
//! .flor/objects/ab/cdef...          chunks: one per distinct buffer, blake3-named, zstd where it pays
//! .flor/ckpts/<run>/0_3_end.json    manifests: which chunks make up one checkpoint
//! .flor/ckpts/<run>/saved.index     copies of the files the script saved (`torch.save`)
//! ```
//!
//! The Python layer copies the enrolled objects' tensors and arrays out (that copy is
//! all the training thread pays for) and pickles the rest into a small skeleton;
//! [`CkptWriter`] hashes, compresses and writes them on its own thread; [`Policy`]
//! keeps the training thread's share within a budget. Reading back goes through
//! [`read`], which verifies every chunk's hash.

mod chunks;
mod manifest;
mod policy;
mod saved;
mod spares;
mod writer;

use std::collections::HashMap;
use std::path::Path;

pub use chunks::{ChunkRef, ChunkStore};
pub use manifest::{
    list, read as read_manifest, run_dir, CarriedInfo, Key, Manifest, ObjectInfo, Point,
};
pub use policy::{Policy, DEFAULT_EPSILON};
pub use saved::{find_source, keep, read_saved, saved, SavedFile, Source};
pub use spares::{Permit, Spares};
pub use writer::{CkptWriter, Submission, WriterStats};

use crate::{Error, Result};

/// A checkpoint read back: its manifest, the skeleton and every leaf's bytes.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub skeleton: Vec<u8>,
    pub leaves: Vec<Vec<u8>>,
}

/// Reads the checkpoint `key` of `run_id`, verifying every chunk. Fails if the
/// checkpoint does not exist, is incomplete or does not verify.
pub fn read(flor_dir: &Path, run_id: &str, key: Key) -> Result<Loaded> {
    read_with(flor_dir, run_id, key, &mut Verified::default())
}

/// [`read`], taking the chunks that `verified` holds from it instead of reading and
/// hashing them again.
pub fn read_with(
    flor_dir: &Path,
    run_id: &str,
    key: Key,
    verified: &mut Verified,
) -> Result<Loaded> {
    let manifest = manifest::read(flor_dir, run_id, key)?.ok_or_else(|| {
        Error::NoCheckpoint(format!(
            "run {run_id} has no checkpoint {} (checkpoints stay on the machine that recorded them)",
            key.file_name().trim_end_matches(".json")
        ))
    })?;
    let store = ChunkStore::new(flor_dir);
    let mut get = |c: &ChunkRef| match verified.take(&c.hash) {
        Some(data) => Ok(data),
        None => store.get(c),
    };
    let skeleton = get(&manifest.skeleton)?;
    let leaves = manifest
        .leaves
        .iter()
        .map(get)
        .collect::<Result<Vec<_>>>()?;
    Ok(Loaded {
        manifest,
        skeleton,
        leaves,
    })
}

/// Chunks read and verified ahead of their use (replay verifies every checkpoint its plan
/// reads before it starts), kept for the reads that follow so that no chunk is read,
/// decompressed and hashed twice. Each is kept until its last expected use, within a
/// byte budget: beyond it, chunks are read again when used.
#[derive(Debug, Default)]
pub struct Verified {
    /// hash -> (bytes, reads still expected)
    chunks: HashMap<String, (Vec<u8>, u32)>,
    held: u64,
    budget: u64,
}

impl Verified {
    /// Holds at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Verified {
            budget,
            ..Default::default()
        }
    }

    /// Keeps `data` (verified to hash to `hash`) if the budget allows, expecting no read
    /// of it until [`Verified::expect`] says how many; returns whether it is kept.
    pub fn offer(&mut self, hash: &str, data: Vec<u8>) -> bool {
        let len = data.len() as u64;
        if self.held + len > self.budget || self.chunks.contains_key(hash) {
            return false;
        }
        self.held += len;
        self.chunks.insert(hash.to_owned(), (data, 0));
        true
    }

    /// Expects `uses` more reads of chunk `hash` (if it is held).
    pub fn expect(&mut self, hash: &str, uses: u32) {
        if let Some((_, n)) = self.chunks.get_mut(hash) {
            *n += uses;
        }
    }

    /// Drops the chunks that no read is expected to take.
    pub fn drop_unexpected(&mut self) {
        let mut freed = 0;
        self.chunks.retain(|_, (data, n)| {
            if *n == 0 {
                freed += data.len() as u64;
            }
            *n > 0
        });
        self.held -= freed;
    }

    /// The bytes of chunk `hash` if held; the last expected use takes them out.
    pub fn take(&mut self, hash: &str) -> Option<Vec<u8>> {
        let (data, uses) = self.chunks.get_mut(hash)?;
        if *uses > 1 {
            *uses -= 1;
            return Some(data.clone());
        }
        let (data, _) = self.chunks.remove(hash)?;
        self.held -= data.len() as u64;
        Some(data)
    }

    /// Bytes held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_chunks_serve_the_expected_reads_then_go() {
        let mut v = Verified::new(10);
        assert!(v.offer("a", vec![1; 4]));
        assert!(v.offer("b", vec![2; 4]));
        assert!(!v.offer("c", vec![3; 4]), "over the budget");
        v.expect("a", 2);
        v.drop_unexpected();
        assert_eq!(v.held(), 4, "b expects no read");
        assert_eq!(v.take("a"), Some(vec![1; 4]));
        assert_eq!(v.take("a"), Some(vec![1; 4]));
        assert_eq!((v.take("a"), v.held()), (None, 0));
    }

    #[test]
    fn planned_reads_take_verified_chunks_and_others_read_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(dir.path());
        let (skeleton, _) = store.put(b"skeleton").unwrap();
        let (leaf, _) = store.put(&[5u8; 1000]).unwrap();
        let m = Manifest {
            run_id: "r".into(),
            loop_name: "epoch".into(),
            occurrence: 0,
            iteration: 0,
            point: Point::End,
            index: 0,
            skeleton: skeleton.clone(),
            leaves: vec![leaf.clone(), leaf.clone()],
            objects: vec![],
            raw_bytes: 2000,
            created: 0.0,
            carried: None,
        };
        m.write(&run_dir(dir.path(), "r").unwrap()).unwrap();
        let mut v = Verified::new(1 << 20);
        v.offer(&leaf.hash, store.get(&leaf).unwrap());
        v.expect(&leaf.hash, 2);
        // The store's copy is gone: the read is served from `v`, twice, then `v` is empty.
        std::fs::remove_file(store.path(&leaf.hash)).unwrap();
        let got = read_with(dir.path(), "r", Key::end(0, 0), &mut v).unwrap();
        assert_eq!(got.leaves, vec![vec![5u8; 1000]; 2]);
        assert_eq!(got.skeleton, b"skeleton");
        assert_eq!(v.held(), 0);
        assert!(read(dir.path(), "r", Key::end(0, 0)).is_err());
    }
}

//! Replay of one recorded run: [`find`] the run and its args, [`plan`] each outer loop
//! from the checkpoints at hand, and [`plan_verified`] to plan only with checkpoints
//! whose chunks verify. The Python layer executes the plan inside the user's script;
//! the records go to a file under `.flor/replays/` that the store imports as
//! `source = replay`.

pub mod calibration;
pub mod campaign;
mod estimate;
mod merge;
mod plan;
pub mod pool;
mod target;

use std::collections::{HashMap, HashSet};
use std::path::Path;

pub use estimate::{makespan, restored_bytes, Timing};
pub use merge::{merge_parts, ranges, report_path, Merged, Verification, PROVENANCE, VERIFIED};
pub use plan::{plan, Action, Plan, Request, Step};
pub use target::{find, find_with_expected, Target};

use crate::ckpt::{self, ChunkStore, Key, Verified};
use crate::Result;

/// A checkpoint the plan would have read but may not: its chunks are not all here, or one
/// does not verify. Replay says which, and why, before planning around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub key: Key,
    pub why: String,
}

/// Plans `req` for run `run_id`, leaving out checkpoints that are incomplete or do not
/// verify (planning again without them until every checkpoint the plan reads is good).
/// Returns the plan and the checkpoints that were refused.
pub fn plan_verified(flor_dir: &Path, run_id: &str, req: &Request) -> Result<(Plan, Vec<Refused>)> {
    let manifests = ckpt::list(flor_dir, run_id)?;
    plan_verified_with(flor_dir, manifests, req, &mut Verified::default())
}

/// [`plan_verified`] from the run's manifests ([`ckpt::list`]). The chunks it reads to
/// verify them are kept in `keep` (within its budget) for the reads the plan makes
/// ([`ckpt::read_with`]), so each chunk is read and hashed once. Only checkpoints a plan
/// would use are read, so only those can be refused.
pub fn plan_verified_with(
    flor_dir: &Path,
    manifests: Vec<ckpt::Manifest>,
    req: &Request,
    keep: &mut Verified,
) -> Result<(Plan, Vec<Refused>)> {
    let store = ChunkStore::new(flor_dir);
    let mut manifests: Vec<ckpt::Manifest> = manifests
        .into_iter()
        .filter(|m| m.occurrence == req.occurrence)
        .collect();
    let mut verified: HashSet<String> = HashSet::new();
    let mut refused: Vec<Refused> = Vec::new();
    loop {
        let p = plan(req, &manifests);
        let mut bad = Vec::new();
        for k in &p.uses {
            let Some(m) = manifests.iter().find(|m| m.key() == *k) else {
                continue;
            };
            let problem = m.chunks().find_map(|c| {
                if verified.contains(&c.hash) {
                    return None;
                }
                match store.get(c) {
                    Ok(data) => {
                        keep.offer(&c.hash, data);
                        verified.insert(c.hash.clone());
                        None
                    }
                    Err(err) => Some(err.to_string()),
                }
            });
            if let Some(why) = problem {
                bad.push(Refused { key: *k, why });
            }
        }
        if bad.is_empty() {
            let mut uses: HashMap<&str, u32> = HashMap::new();
            for k in &p.uses {
                if let Some(m) = manifests.iter().find(|m| m.key() == *k) {
                    for c in m.chunks() {
                        *uses.entry(c.hash.as_str()).or_default() += 1;
                    }
                }
            }
            for (hash, n) in uses {
                keep.expect(hash, n);
            }
            keep.drop_unexpected();
            return Ok((p, refused));
        }
        manifests.retain(|m| !bad.iter().any(|b| b.key == m.key()));
        refused.extend(bad);
    }
}

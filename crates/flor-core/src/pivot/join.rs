//! The natural full outer join that folds one name's rows into the next, as flordb's
//! pandas `merge(how="outer")` on the common columns does: a run-level value attaches
//! to every loop row of its run, an epoch-level value to every step of its epoch, and
//! rows without a partner survive with missing cells. Keys are integers (run index,
//! source, loop iterations, interned loop values); missing is [`NULL_KEY`], and missing
//! matches missing, as in pandas.

use rustc_hash::FxHashMap as HashMap;

/// A key cell: run index, source, iteration or interned text id.
pub(crate) type Key = i64;
/// A missing key cell.
pub(crate) const NULL_KEY: Key = i64::MIN;
/// A missing value reference.
pub(crate) const NO_VALUE: u32 = u32::MAX;

/// Rows of key cells plus, per name slot, the index of the value in that name's list.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// Global key column ids, ascending.
    pub(crate) key_cols: Vec<usize>,
    /// Row-major key cells, `key_cols.len()` per row.
    pub(crate) keys: Vec<Key>,
    /// One vector per name slot, each with one entry per row.
    pub(crate) vals: Vec<Vec<u32>>,
}

impl Part {
    pub(crate) fn new(key_cols: Vec<usize>, keys: Vec<Key>, vals: Vec<Vec<u32>>) -> Part {
        Part {
            key_cols,
            keys,
            vals,
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.vals
            .first()
            .map_or_else(|| self.keys.len() / self.key_cols.len().max(1), Vec::len)
    }

    /// The rows listed in `rows`, in that order.
    pub(crate) fn select(self, rows: &[u32]) -> Part {
        if rows.len() == self.rows() {
            return self;
        }
        let keys = rows
            .iter()
            .flat_map(|&r| self.row(r as usize).iter().copied())
            .collect();
        let vals = self
            .vals
            .iter()
            .map(|v| rows.iter().map(|&r| v[r as usize]).collect())
            .collect();
        Part::new(self.key_cols.clone(), keys, vals)
    }

    fn row(&self, r: usize) -> &[Key] {
        let w = self.key_cols.len();
        &self.keys[r * w..(r + 1) * w]
    }
}

fn hash_keys(row: &[Key], positions: &[usize]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &p in positions {
        h = (h.rotate_left(5) ^ row[p] as u64).wrapping_mul(0x5851_f42d_4c95_7f2d);
    }
    h
}

/// Joins `left` and `right` on their common key columns. Value slots come out as the
/// left's followed by the right's.
pub(crate) fn outer_join(left: Part, right: Part) -> Part {
    let mut out_cols: Vec<usize> = left
        .key_cols
        .iter()
        .chain(&right.key_cols)
        .copied()
        .collect();
    out_cols.sort_unstable();
    out_cols.dedup();
    let common: Vec<usize> = left
        .key_cols
        .iter()
        .filter(|c| right.key_cols.contains(c))
        .copied()
        .collect();
    let pos = |part: &Part, cols: &[usize]| -> Vec<usize> {
        cols.iter()
            .map(|c| {
                part.key_cols
                    .iter()
                    .position(|k| k == c)
                    .unwrap_or(usize::MAX)
            })
            .collect()
    };
    let (l_common, r_common) = (pos(&left, &common), pos(&right, &common));
    let (l_out, r_out) = (pos(&left, &out_cols), pos(&right, &out_cols));

    // Hash the smaller side; stream the larger one so its order is kept.
    let left_builds = left.rows() < right.rows();
    let (build, probe) = if left_builds {
        (&left, &right)
    } else {
        (&right, &left)
    };
    let (b_common, p_common) = if left_builds {
        (&l_common, &r_common)
    } else {
        (&r_common, &l_common)
    };
    let mut heads: HashMap<u64, u32> =
        HashMap::with_capacity_and_hasher(build.rows(), Default::default());
    let mut next = vec![NO_VALUE; build.rows()];
    for r in (0..build.rows()).rev() {
        let h = hash_keys(build.row(r), b_common);
        if let Some(old) = heads.insert(h, r as u32) {
            next[r] = old;
        }
    }

    let single = (b_common.len() == build.key_cols.len())
        .then(|| single_matches(build, probe, &heads, &next, b_common, p_common))
        .flatten();
    if let Some((picks, matched)) = single {
        return extend_probe(left, right, left_builds, &picks, &matched);
    }

    let width = out_cols.len();
    let slots = left.vals.len() + right.vals.len();
    let mut out = Part::new(
        out_cols,
        Vec::with_capacity(probe.rows() * width),
        vec![Vec::with_capacity(probe.rows()); slots],
    );
    let mut emit = |l: Option<usize>, r: Option<usize>| {
        for i in 0..width {
            let cell = match (l, r) {
                (Some(l), _) if l_out[i] != usize::MAX => left.row(l)[l_out[i]],
                (_, Some(r)) if r_out[i] != usize::MAX => right.row(r)[r_out[i]],
                _ => NULL_KEY,
            };
            out.keys.push(cell);
        }
        for (s, vals) in left.vals.iter().enumerate() {
            out.vals[s].push(l.map_or(NO_VALUE, |l| vals[l]));
        }
        for (s, vals) in right.vals.iter().enumerate() {
            out.vals[left.vals.len() + s].push(r.map_or(NO_VALUE, |r| vals[r]));
        }
    };
    let mut matched = vec![false; build.rows()];
    for p in 0..probe.rows() {
        let prow = probe.row(p);
        let mut cand = heads
            .get(&hash_keys(prow, p_common))
            .copied()
            .unwrap_or(NO_VALUE);
        let mut any = false;
        while cand != NO_VALUE {
            let b = cand as usize;
            let brow = build.row(b);
            if b_common
                .iter()
                .zip(p_common)
                .all(|(&bi, &pi)| brow[bi] == prow[pi])
            {
                any = true;
                matched[b] = true;
                if left_builds {
                    emit(Some(b), Some(p))
                } else {
                    emit(Some(p), Some(b))
                }
            }
            cand = next[b];
        }
        if !any {
            if left_builds {
                emit(None, Some(p))
            } else {
                emit(Some(p), None)
            }
        }
    }
    for (b, _) in matched.iter().enumerate().filter(|(_, m)| !**m) {
        if left_builds {
            emit(Some(b), None)
        } else {
            emit(None, Some(b))
        }
    }
    out
}

/// The usual join: the built side's key columns are a subset of the probe side's (a
/// run-level or epoch-level value joined to step rows) and each probe row matches at
/// most one built row. Returns each probe row's match (`NO_VALUE` for none) and which
/// built rows matched, or `None` when some probe row matches several.
fn single_matches(
    build: &Part,
    probe: &Part,
    heads: &HashMap<u64, u32>,
    next: &[u32],
    b_common: &[usize],
    p_common: &[usize],
) -> Option<(Vec<u32>, Vec<bool>)> {
    let mut picks = Vec::with_capacity(probe.rows());
    let mut matched = vec![false; build.rows()];
    for p in 0..probe.rows() {
        let prow = probe.row(p);
        let mut cand = heads
            .get(&hash_keys(prow, p_common))
            .copied()
            .unwrap_or(NO_VALUE);
        let mut found = NO_VALUE;
        while cand != NO_VALUE {
            let brow = build.row(cand as usize);
            if b_common
                .iter()
                .zip(p_common)
                .all(|(&bi, &pi)| brow[bi] == prow[pi])
            {
                if found != NO_VALUE {
                    return None;
                }
                found = cand;
                matched[cand as usize] = true;
            }
            cand = next[cand as usize];
        }
        picks.push(found);
    }
    Some((picks, matched))
}

/// The output of a [`single_matches`] join: the probe rows, in order, with their keys
/// as they are (moved, not copied cell by cell), then the unmatched built rows.
fn extend_probe(
    left: Part,
    right: Part,
    left_builds: bool,
    picks: &[u32],
    matched: &[bool],
) -> Part {
    let (build, probe) = if left_builds {
        (left, right)
    } else {
        (right, left)
    };
    let unmatched: Vec<usize> = (0..build.rows()).filter(|&b| !matched[b]).collect();
    let Part {
        key_cols,
        mut keys,
        vals: probe_vals,
    } = probe;
    // Unmatched built rows: their keys where the probe has the column, missing elsewhere.
    for &b in &unmatched {
        let brow = build.row(b);
        for col in &key_cols {
            let cell = build
                .key_cols
                .iter()
                .position(|c| c == col)
                .map_or(NULL_KEY, |i| brow[i]);
            keys.push(cell);
        }
    }
    let probe_vals: Vec<Vec<u32>> = probe_vals
        .into_iter()
        .map(|mut v| {
            v.resize(v.len() + unmatched.len(), NO_VALUE);
            v
        })
        .collect();
    let build_vals: Vec<Vec<u32>> = build
        .vals
        .iter()
        .map(|v| {
            picks
                .iter()
                .map(|&p| {
                    if p == NO_VALUE {
                        NO_VALUE
                    } else {
                        v[p as usize]
                    }
                })
                .chain(unmatched.iter().map(|&b| v[b]))
                .collect()
        })
        .collect();
    let vals = if left_builds {
        build_vals.into_iter().chain(probe_vals).collect()
    } else {
        probe_vals.into_iter().chain(build_vals).collect()
    };
    Part::new(key_cols, keys, vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(cols: &[usize], rows: &[&[Key]]) -> Part {
        let keys = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Part::new(cols.to_vec(), keys, vec![(0..rows.len() as u32).collect()])
    }

    #[test]
    fn run_level_values_attach_to_every_loop_row() {
        // lr per run (cols run, source) joined with loss per (run, source, epoch).
        let lr = part(&[0, 1], &[&[0, 0], &[1, 0]]);
        let loss = part(&[0, 1, 2], &[&[0, 0, 0], &[0, 0, 1], &[1, 0, 0]]);
        let out = outer_join(lr, loss);
        assert_eq!(out.key_cols, vec![0, 1, 2]);
        assert_eq!(out.rows(), 3);
        assert_eq!(out.vals[0], vec![0, 0, 1]);
        assert_eq!(out.vals[1], vec![0, 1, 2]);
    }

    #[test]
    fn unmatched_rows_survive_on_both_sides() {
        let a = part(&[0, 1, 2], &[&[0, 0, 0], &[0, 0, 1]]);
        let b = part(&[0, 1, 2], &[&[0, 0, 1], &[0, 0, 2], &[0, 0, 3]]);
        let out = outer_join(a, b);
        assert_eq!(out.rows(), 4);
        let pairs: Vec<(u32, u32)> = out.vals[0]
            .iter()
            .copied()
            .zip(out.vals[1].iter().copied())
            .collect();
        assert!(pairs.contains(&(0, NO_VALUE)));
        assert!(pairs.contains(&(1, 0)));
        assert!(pairs.contains(&(NO_VALUE, 1)));
        assert!(pairs.contains(&(NO_VALUE, 2)));
    }

    #[test]
    fn forward_and_replay_rows_never_join() {
        let fwd = part(&[0, 1], &[&[0, 0]]);
        let rep = part(&[0, 1], &[&[0, 1]]);
        let out = outer_join(fwd, rep);
        assert_eq!(out.rows(), 2);
    }

    #[test]
    fn subset_joins_keep_probe_order_and_unmatched_rows() {
        // acc per (run, source, epoch) joined to loss per (run, source, epoch, step),
        // with an epoch that has acc but no loss and a loss row with no acc.
        let acc = part(&[0, 1, 2], &[&[0, 0, 0], &[0, 0, 1], &[0, 0, 9]]);
        let loss = part(
            &[0, 1, 2, 4],
            &[&[0, 0, 0, 0], &[0, 0, 0, 1], &[0, 0, 1, 0], &[0, 0, 2, 0]],
        );
        let out = outer_join(loss, acc);
        assert_eq!(out.key_cols, vec![0, 1, 2, 4]);
        assert_eq!(out.vals[0], vec![0, 1, 2, 3, NO_VALUE]);
        assert_eq!(out.vals[1], vec![0, 0, 1, NO_VALUE, 2]);
        assert_eq!(&out.keys[16..], &[0, 0, 9, NULL_KEY]);
    }

    #[test]
    fn repeated_values_multiply_like_pandas() {
        let a = part(&[0, 1], &[&[0, 0], &[0, 0]]);
        let b = part(&[0, 1, 2], &[&[0, 0, 0], &[0, 0, 1], &[0, 0, 2]]);
        assert_eq!(outer_join(a, b).rows(), 6);
    }
}

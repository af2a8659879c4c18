//! Which outer iterations a replay executes, and from which checkpoint.
//!
//! Every checkpoint holds the state after an outer iteration (`end`; iteration -1 is the
//! loop's entry) or right after one of its nested loops (`nested`). For the requested
//! iterations:
//! - [`Action::Own`] (a statement in the outer loop, outside nested loops): restore the
//!   state before the iteration, run its own code, and instead of running each nested
//!   loop restore the state that loop left. Needs the iteration's nested checkpoints.
//! - [`Action::Full`] (a statement in a nested loop, or an `Own` without its nested
//!   checkpoints): restore the state before the iteration and run all of it.
//! - [`Action::Silent`]: an iteration that runs only to rebuild the state a requested one
//!   starts from, because no checkpoint holds it; it records nothing.
//!
//! Iterations not in the plan do not run at all. After the last one, the loop stops; the
//! end state is restored at the loop's exit, so code after the loop sees what the
//! recorded run saw.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::ckpt::{Key, Manifest, Point};

/// What a replay does with one outer iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Silent,
    Own,
    Full,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Silent => "silent",
            Action::Own => "own",
            Action::Full => "full",
        }
    }
}

/// One executed outer iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub iteration: i64,
    pub action: Action,
    /// The checkpoint restored before the iteration runs, if any.
    pub restore: Option<Key>,
}

/// What one outer loop asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub occurrence: u32,
    /// How many iterations the recorded loop had.
    pub iterations: i64,
    /// Iterations whose own code must run (statements at the outer level).
    pub own: BTreeSet<i64>,
    /// Iterations whose nested loops must run too.
    pub full: BTreeSet<i64>,
    /// The state the loop carries across iterations beyond its enrolled objects, as the
    /// analysis of the replayed script names it (`analyze::CarriedVar`): a checkpoint that
    /// did not capture all of it cannot start an iteration.
    pub carried: Vec<String>,
}

/// The plan for one outer loop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Executed iterations in order; the loop stops after the last.
    pub steps: Vec<Step>,
    /// Restored when the loop ends (the recorded run's end state).
    pub exit_restore: Option<Key>,
    /// Some silent iteration starts from the loop's entry without a checkpoint.
    pub from_scratch: bool,
    /// Every checkpoint the plan reads, nested ones of `Own` iterations included.
    pub uses: Vec<Key>,
    /// End checkpoints left unused because they miss carried state: (iteration, why).
    pub set_aside: Vec<(i64, String)>,
}

impl Plan {
    pub fn silent(&self) -> impl Iterator<Item = i64> + '_ {
        self.steps
            .iter()
            .filter(|s| s.action == Action::Silent)
            .map(|s| s.iteration)
    }
}

/// Plans one outer loop from the checkpoints at hand (`manifests`: any run's, only
/// those of `req.occurrence` count).
pub fn plan(req: &Request, manifests: &[Manifest]) -> Plan {
    let ours = manifests.iter().filter(|m| m.occurrence == req.occurrence);
    let mut ends: BTreeSet<i64> = BTreeSet::new();
    let mut nested_counts: BTreeMap<i64, u32> = BTreeMap::new();
    let mut nested: HashSet<(i64, u32)> = HashSet::new();
    let mut set_aside = Vec::new();
    for m in ours {
        match m.point {
            Point::End => {
                if let Some(why) = m.missing_state(&req.carried) {
                    set_aside.push((m.iteration, why));
                    continue;
                }
                ends.insert(m.iteration);
                nested_counts.insert(m.iteration, m.index);
            }
            Point::Nested => {
                nested.insert((m.iteration, m.index));
            }
        }
    }
    let own_ok = |e: i64| {
        nested_counts
            .get(&e)
            .is_some_and(|&n| (0..n).all(|k| nested.contains(&(e, k))))
    };
    let mut needed: BTreeMap<i64, Action> = BTreeMap::new();
    for &e in req.own.iter().filter(|&&e| e >= 0 && e < req.iterations) {
        needed.insert(e, if own_ok(e) { Action::Own } else { Action::Full });
    }
    for &e in req.full.iter().filter(|&&e| e >= 0 && e < req.iterations) {
        needed.insert(e, Action::Full);
    }

    let mut out = Plan {
        set_aside,
        ..Plan::default()
    };
    let mut builder = Builder {
        ends: &ends,
        occurrence: req.occurrence,
        live: None,
        pending: None,
        steps: Vec::new(),
        from_scratch: false,
        restore_next: None,
    };
    for (&e, &action) in &needed {
        builder.reach(e - 1);
        let restore = builder.pending.take();
        builder.steps.push(Step {
            iteration: e,
            action,
            restore,
        });
        builder.live = Some(e);
        if action == Action::Own {
            let n = nested_counts.get(&e).copied().unwrap_or(0);
            out.uses
                .extend((0..n).map(|k| Key::nested(req.occurrence, e, k)));
            if !req.carried.is_empty() {
                // Skipped nested loops leave carried values (a prefetched batch) as they
                // were: the next iteration starts from the end checkpoint instead.
                builder.live = None;
                builder.restore_next = Some(e);
            }
        }
    }
    let last = req.iterations - 1;
    if last >= 0 && builder.restore_next == Some(last) {
        // The last iteration ran without its nested loops: code after the loop reads the
        // carried values the run ended with.
        out.exit_restore = Some(Key::end(req.occurrence, last));
    } else if last >= 0 && builder.live != Some(last) {
        if ends.contains(&last) {
            out.exit_restore = Some(Key::end(req.occurrence, last));
        } else {
            // No end checkpoint: finish the loop silently so the end state is right.
            builder.reach(last);
        }
    }
    out.from_scratch = builder.from_scratch;
    out.steps = builder.steps;
    out.uses.extend(out.steps.iter().filter_map(|s| s.restore));
    out.uses.extend(out.exit_restore);
    out
}

struct Builder<'a> {
    ends: &'a BTreeSet<i64>,
    occurrence: u32,
    /// The iteration whose end state the live objects hold; `None`: the loop's entry
    /// state in a fresh process (nothing restored or executed yet).
    live: Option<i64>,
    /// A restore that the next step performs.
    pending: Option<Key>,
    steps: Vec<Step>,
    from_scratch: bool,
    /// After an `Own` step whose nested loops were skipped: the iteration whose end
    /// checkpoint the next step restores (the live values are not its end state).
    restore_next: Option<i64>,
}

impl Builder<'_> {
    /// Makes the live state the end state of `target` (-1: the loop's entry).
    fn reach(&mut self, target: i64) {
        if let Some(e) = self.restore_next.take() {
            if e == target {
                self.pending = Some(Key::end(self.occurrence, e));
                self.live = Some(e);
                return;
            }
        }
        if self.live == Some(target) {
            return;
        }
        if self.ends.contains(&target) {
            self.pending = Some(Key::end(self.occurrence, target));
            self.live = Some(target);
            return;
        }
        // The best start below `target`: the live state, a checkpoint, or the entry.
        let ckpt = self.ends.range(..target).next_back().copied();
        let live = self.live.filter(|&l| l < target);
        let start = match (live, ckpt) {
            (Some(l), Some(c)) if c > l => {
                self.pending = Some(Key::end(self.occurrence, c));
                c
            }
            (Some(l), _) => l,
            (None, Some(c)) => {
                self.pending = Some(Key::end(self.occurrence, c));
                c
            }
            (None, None) => {
                self.from_scratch = true;
                -1
            }
        };
        for j in start + 1..=target {
            let restore = self.pending.take();
            self.steps.push(Step {
                iteration: j,
                action: Action::Silent,
                restore,
            });
        }
        self.live = Some(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ckpt::ChunkRef;

    fn manifest(iteration: i64, point: Point, index: u32) -> Manifest {
        let c = ChunkRef {
            hash: String::new(),
            len: 0,
        };
        Manifest {
            run_id: "r".into(),
            loop_name: "epoch".into(),
            occurrence: 0,
            iteration,
            point,
            index,
            skeleton: c,
            leaves: vec![],
            objects: vec![],
            raw_bytes: 0,
            created: 0.0,
            carried: Some(vec![]),
        }
    }

    fn every_epoch(n: i64) -> Vec<Manifest> {
        let mut out = vec![manifest(-1, Point::End, 0)];
        for e in 0..n {
            out.push(manifest(e, Point::Nested, 0));
            out.push(manifest(e, Point::End, 1));
        }
        out
    }

    fn req(n: i64, own: &[i64], full: &[i64]) -> Request {
        Request {
            occurrence: 0,
            iterations: n,
            own: own.iter().copied().collect(),
            full: full.iter().copied().collect(),
            carried: vec![],
        }
    }

    #[test]
    fn outer_statements_run_only_requested_iterations_own_code() {
        let p = plan(&req(5, &[1, 3], &[]), &every_epoch(5));
        assert_eq!(
            p.steps,
            vec![
                Step {
                    iteration: 1,
                    action: Action::Own,
                    restore: Some(Key::end(0, 0))
                },
                Step {
                    iteration: 3,
                    action: Action::Own,
                    restore: Some(Key::end(0, 2))
                },
            ]
        );
        assert_eq!(p.exit_restore, Some(Key::end(0, 4)));
        assert!(p.uses.contains(&Key::nested(0, 3, 0)));
        assert!(!p.from_scratch);
    }

    #[test]
    fn consecutive_iterations_need_no_second_restore() {
        let p = plan(&req(3, &[], &[0, 1, 2]), &every_epoch(3));
        let restores: Vec<_> = p.steps.iter().map(|s| s.restore).collect();
        assert_eq!(restores, vec![Some(Key::end(0, -1)), None, None]);
        assert_eq!(p.exit_restore, None);
    }

    #[test]
    fn without_checkpoints_replay_recomputes_from_the_start() {
        let p = plan(&req(4, &[2], &[]), &[]);
        let actions: Vec<_> = p.steps.iter().map(|s| (s.iteration, s.action)).collect();
        assert_eq!(
            actions,
            vec![
                (0, Action::Silent),
                (1, Action::Silent),
                (2, Action::Full),
                (3, Action::Silent)
            ]
        );
        assert!(p.from_scratch);
        // Nothing requested: the loop runs silently to its end.
        let p = plan(&req(2, &[], &[]), &[]);
        assert_eq!(p.steps.len(), 2);
    }

    #[test]
    fn sparse_checkpoints_start_from_the_nearest_one() {
        let ms = vec![
            manifest(-1, Point::End, 0),
            manifest(1, Point::End, 0),
            manifest(4, Point::End, 0),
        ];
        let p = plan(&req(5, &[3], &[]), &ms);
        let actions: Vec<_> = p.steps.iter().map(|s| (s.iteration, s.action)).collect();
        // No nested checkpoints recorded for 3: its nested loops must run.
        assert_eq!(actions, vec![(2, Action::Silent), (3, Action::Full)]);
        assert_eq!(p.steps[0].restore, Some(Key::end(0, 1)));
        assert_eq!(p.exit_restore, Some(Key::end(0, 4)));
    }

    fn with_carried(mut ms: Vec<Manifest>, captured: &[i64]) -> Vec<Manifest> {
        for m in &mut ms {
            let how = if captured.contains(&m.iteration) {
                "value"
            } else {
                "failed"
            };
            m.carried = Some(vec![crate::ckpt::CarriedInfo {
                path: "X".into(),
                how: how.into(),
                note: (how == "failed").then(|| "a generator cannot be pickled".into()),
            }]);
        }
        ms
    }

    #[test]
    fn checkpoints_missing_carried_state_are_set_aside() {
        let mut r = req(5, &[3], &[]);
        r.carried = vec!["X".into()];
        // X was saved with every checkpoint but epoch 2's: epoch 3 starts from epoch 1.
        let ms = with_carried(every_epoch(5), &[-1, 0, 1, 3, 4]);
        let p = plan(&r, &ms);
        let actions: Vec<_> = p
            .steps
            .iter()
            .map(|s| (s.iteration, s.action, s.restore))
            .collect();
        assert_eq!(
            actions,
            vec![
                (2, Action::Silent, Some(Key::end(0, 1))),
                (3, Action::Own, None)
            ]
        );
        assert_eq!(p.set_aside.len(), 1);
        assert!(
            p.set_aside[0].1.contains("a generator"),
            "{:?}",
            p.set_aside
        );
        // Checkpoints of a FlorDB that saved no carried state: from the loop's entry.
        let mut old = every_epoch(5);
        for m in &mut old {
            m.carried = None;
        }
        let p = plan(&r, &old);
        assert_eq!(
            p.steps[0],
            Step {
                iteration: 0,
                action: Action::Silent,
                restore: Some(Key::end(0, -1))
            }
        );
        assert!(!p.from_scratch);
    }

    #[test]
    fn after_an_iteration_without_its_nested_loops_carried_state_comes_from_its_end() {
        let mut r = req(4, &[1, 2, 3], &[]);
        r.carried = vec!["X".into()];
        let ms = with_carried(every_epoch(4), &[-1, 0, 1, 2, 3]);
        let p = plan(&r, &ms);
        let restores: Vec<_> = p.steps.iter().map(|s| s.restore).collect();
        assert_eq!(
            restores,
            vec![
                Some(Key::end(0, 0)),
                Some(Key::end(0, 1)),
                Some(Key::end(0, 2))
            ]
        );
        assert_eq!(p.exit_restore, Some(Key::end(0, 3)));
    }

    #[test]
    fn run_level_only_skips_the_loop() {
        let p = plan(&req(5, &[], &[]), &every_epoch(5));
        assert!(p.steps.is_empty());
        assert_eq!(p.exit_restore, Some(Key::end(0, 4)));
    }
}

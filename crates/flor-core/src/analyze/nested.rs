//! Which statements at an outer loop's level read values built in its nested loops.
//!
//! Replay runs a level-1 statement in an "own" iteration: every nested `flor.loop` is skipped and
//! the checkpoint taken right after it is restored. That brings back the enrolled objects (and the
//! RNG states), nothing else: a plain variable the nested loop would have set (`total += loss`)
//! keeps an old value. Such a statement must run its nested loops instead (a `full` iteration).
//!
//! The rule works on names (no aliasing), per outer loop:
//!
//! 1. In the nested loops (their headers and bodies, also inside helper functions, and any
//!    level-1 statement that calls a helper running a `flor.loop`), a name is *stale* when it is
//!    bound or may be changed in place, by the rules of `effects.rs` (`x = `, `x.a = `,
//!    `x.append(v)`, a helper of the script changing its argument; not `data.to(device)`'s
//!    `device`). Changes in place are not counted where the restore already fixes them or
//!    nothing is data: objects enrolled in `flor.checkpointing(..)` / `MTK.checkpoints(..)` and
//!    whatever is reached through them (`opt.step()`, `w -= g` on an enrolled array), imported
//!    names (`np.random.rand()`), the arguments of FlorDB calls and of builtins that never change
//!    them (`len(x)`). Rebinding always counts: after `model = f(model)` the name no longer
//!    holds the enrolled object.
//! 2. At level 1, statements are followed in source order within one outer iteration. A statement
//!    that reads a stale name makes stale everything it binds or changes (enrolled objects too: the
//!    restore happened before it ran); one that reads none makes the names it rebinds fresh again,
//!    so an evaluation loop reusing `outputs` or `labels` stays on the fast path. A compound
//!    statement whose header reads a stale name makes its whole body stale. Branches join by
//!    union, plain loops and the outer loop itself repeat until nothing changes (values carry over
//!    from one iteration to the next). Helper functions are not followed in order: their level-1
//!    statements only ever add stale names. A helper's own locals (its parameters and what it
//!    binds) are its own: `data` bound in `train()`'s step loop does not make `test()`'s `data`
//!    stale; they go stale only through the helper's own statements.
//! 3. A level-1 log statement needs the nested loops when it reads a stale name where it stands,
//!    sits under a header that reads one, or calls a helper that runs a nested loop. In a helper,
//!    the statement, its headers and the statements calling the helper are checked against every
//!    name stale anywhere in the iteration.

use std::collections::{HashMap, HashSet};

use super::effects::{Effect, Facts, Names};
use super::sites::{LoopKind, Script};
use super::tree::NodeId;

/// The level-1 log statements that need their nested loops run in replay.
pub(crate) struct Nested {
    needs: HashSet<(NodeId, NodeId)>,
}

impl Nested {
    pub fn new(facts: &Facts) -> Self {
        let a = Analysis::new(facts);
        let mut needs = HashSet::new();
        for &outer in &a.outer {
            for stmt in a.needs_nested(outer) {
                needs.insert((outer, stmt));
            }
        }
        Nested { needs }
    }

    /// Whether the log statement `stmt`, at the level of outer loop `outer`, needs its nested loops.
    pub fn needs_nested(&self, outer: NodeId, stmt: NodeId) -> bool {
        self.needs.contains(&(outer, stmt))
    }
}

struct Analysis<'f, 'a, 't, 's> {
    s: &'a Script<'t, 's>,
    /// Outer `flor.loop`s: the ones replay plans.
    outer: Vec<NodeId>,
    /// Loop chain of every statement.
    chains: HashMap<NodeId, Vec<NodeId>>,
    /// Statements holding a log call.
    logs: HashSet<NodeId>,
    f: &'f Facts<'a, 't, 's>,
    /// Names of functions that run a `flor.loop`, themselves or through the functions they call.
    runners: Names<'s>,
    /// The local names of every function.
    locals: HashMap<NodeId, Names<'s>>,
}

/// What one pass over an outer loop's body found.
#[derive(Default)]
struct Record<'s> {
    /// Every name stale at some point.
    seen: Names<'s>,
    /// Log statements that need the nested loops.
    logs: HashSet<NodeId>,
}

impl<'f, 'a, 't, 's> Analysis<'f, 'a, 't, 's> {
    fn new(f: &'f Facts<'a, 't, 's>) -> Self {
        let s = f.s;
        let t = s.tree;
        let chains: HashMap<NodeId, Vec<NodeId>> = (0..t.len())
            .filter(|&n| t.is_statement(n))
            .map(|n| (n, s.chain(n)))
            .collect();
        let outer = s
            .loops
            .iter()
            .filter(|&(l, (kind, _))| {
                *kind == LoopKind::Loop && chains.get(l).is_some_and(Vec::is_empty)
            })
            .map(|(&l, _)| l)
            .collect();
        let logs = s
            .log_calls
            .iter()
            .filter_map(|&c| t.statement_of(c))
            .collect();
        let mut a = Analysis {
            s,
            outer,
            chains,
            logs,
            f,
            runners: HashSet::new(),
            locals: HashMap::new(),
        };
        a.locals = (0..t.len())
            .filter(|&n| t.node(n).kind == "function_definition")
            .map(|d| (d, a.f.locals_of(d)))
            .collect();
        a.find_runners();
        a
    }

    fn find_runners(&mut self) {
        let t = self.s.tree;
        let defs: Vec<NodeId> = (0..t.len())
            .filter(|&n| t.node(n).kind == "function_definition")
            .collect();
        loop {
            let before = self.runners.len();
            for &d in &defs {
                let Some(name) = t.field(d, "name").map(|n| t.text(n)) else {
                    continue;
                };
                let body: Vec<NodeId> = (d + 1..d + t.node(d).size).collect();
                let runs = body.iter().any(|n| {
                    self.s
                        .loops
                        .get(n)
                        .is_some_and(|(k, _)| *k == LoopKind::Loop)
                }) || self.calls_runner(&body);
                if runs {
                    self.runners.insert(name);
                }
            }
            if self.runners.len() == before {
                return;
            }
        }
    }

    fn calls_runner(&self, nodes: &[NodeId]) -> bool {
        let t = self.s.tree;
        nodes.iter().any(|&n| {
            t.node(n).kind == "call"
                && self
                    .s
                    .callee_name(n)
                    .is_some_and(|c| self.runners.contains(c))
        })
    }

    fn is_nested_loop(&self, stmt: NodeId) -> bool {
        self.s
            .loops
            .get(&stmt)
            .is_some_and(|(k, _)| *k == LoopKind::Loop)
    }

    fn nodes(&self, stmt: NodeId, bodies: bool) -> Vec<NodeId> {
        self.f.nodes(stmt, bodies)
    }

    fn reads(&self, stmt: NodeId) -> Names<'s> {
        self.f.reads(stmt)
    }

    /// The effects of `nodes`; `restored`: inside nested loops, where the checkpoint restores the
    /// enrolled objects after them. Changes in place of imported names (`np.random.rand()`) never
    /// count; `w -= g` changes an enrolled array in place (only mutable objects enrol).
    fn effects(&self, nodes: &[NodeId], restored: bool) -> Vec<Effect<'s>> {
        let mut out = self.f.effects(nodes);
        for e in &mut out {
            if e.augmented && self.f.is_enrolled(&e.path) {
                e.rebind = false;
            }
        }
        out.retain(|e| {
            e.rebind
                || !(self.f.imported.contains(e.root) || (restored && self.f.is_enrolled(&e.path)))
        });
        out
    }

    /// The level-1 log statements of `outer` that need its nested loops.
    fn needs_nested(&self, outer: NodeId) -> HashSet<NodeId> {
        let t = self.s.tree;
        let Some(body) = t.field(outer, "body") else {
            return HashSet::new();
        };
        let in_outer = |c: &Vec<NodeId>| c.first() == Some(&outer);
        let deeper = |c: &Vec<NodeId>| {
            c[1..].iter().any(|l| {
                self.s
                    .loops
                    .get(l)
                    .is_some_and(|(k, _)| *k == LoopKind::Loop)
            })
        };
        let mut start: Names = HashSet::new();
        let mut helpers = Vec::new();
        let mut local_stale: HashMap<NodeId, Names> = HashMap::new();
        for (&s, c) in &self.chains {
            if !in_outer(c) {
                continue;
            }
            let nodes = self.nodes(s, false);
            if deeper(c) || self.is_nested_loop(s) || self.calls_runner(&nodes) {
                // A helper's own locals (train()'s `data`) stay in the helper.
                for e in self.effects(&nodes, true) {
                    self.mark_stale(s, outer, e.root, &mut start, &mut local_stale);
                }
            } else if c.len() == 1 && !t.contains(outer, s) {
                helpers.push(s);
            }
        }
        helpers.sort_unstable();
        loop {
            let mut rec = Record::default();
            let mut stale = start.clone();
            self.block(body, &mut stale, false, &mut rec);
            let mut all: Names = rec.seen.iter().chain(&stale).copied().collect();
            self.spread(&helpers, outer, &mut all, &mut local_stale);
            let next: Names = start.iter().chain(&stale).chain(&all).copied().collect();
            if next.len() == start.len() {
                let helper_logs = helpers.iter().copied().filter(|s| {
                    self.logs.contains(s) && self.helper_needs(*s, outer, &all, &local_stale)
                });
                rec.logs.extend(helper_logs);
                return rec.logs;
            }
            start = next;
        }
    }

    /// The helper function holding `s` and its locals, unless `s` is in the function
    /// (or module) that holds the outer loop.
    fn helper_of(&self, s: NodeId, outer: NodeId) -> Option<(NodeId, &Names<'s>)> {
        let t = self.s.tree;
        let def = t
            .ancestors(s)
            .find(|&a| t.node(a).kind == "function_definition")?;
        if t.contains(def, outer) {
            return None;
        }
        self.locals.get(&def).map(|l| (def, l))
    }

    /// Makes `name`, as statement `s` sees it, stale: in its helper's locals when it is one
    /// of them, else in the iteration's names.
    fn mark_stale(
        &self,
        s: NodeId,
        outer: NodeId,
        name: &'s str,
        stale: &mut Names<'s>,
        local_stale: &mut HashMap<NodeId, Names<'s>>,
    ) {
        match self.helper_of(s, outer) {
            Some((def, locals)) if locals.contains(name) => {
                local_stale.entry(def).or_default().insert(name);
            }
            _ => {
                stale.insert(name);
            }
        }
    }

    /// Whether statement `s` reads a stale name: one of its helper's own locals made stale
    /// in that helper, or any other name stale in the iteration.
    fn reads_stale(
        &self,
        s: NodeId,
        outer: NodeId,
        stale: &Names<'s>,
        local_stale: &HashMap<NodeId, Names<'s>>,
    ) -> bool {
        let scope = self.helper_of(s, outer);
        self.reads(s).into_iter().any(|r| match scope {
            Some((def, locals)) if locals.contains(r) => {
                local_stale.get(&def).is_some_and(|l| l.contains(r))
            }
            _ => stale.contains(r),
        })
    }

    /// Level-1 statements of helpers, in no order: each that reads a stale name spreads it
    /// (to its helper's locals, or to the iteration's names).
    fn spread(
        &self,
        helpers: &[NodeId],
        outer: NodeId,
        stale: &mut Names<'s>,
        local_stale: &mut HashMap<NodeId, Names<'s>>,
    ) {
        loop {
            let size = |s: &Names, l: &HashMap<NodeId, Names>| {
                s.len() + l.values().map(HashSet::len).sum::<usize>()
            };
            let before = size(stale, local_stale);
            for &s in helpers {
                if !self.reads_stale(s, outer, stale, local_stale) {
                    continue;
                }
                for e in self.effects(&self.nodes(s, true), false) {
                    self.mark_stale(s, outer, e.root, stale, local_stale);
                }
            }
            if size(stale, local_stale) == before {
                return;
            }
        }
    }

    /// A log statement in a helper: it, its headers and its callers at level 1, against `stale`.
    fn helper_needs(
        &self,
        stmt: NodeId,
        outer: NodeId,
        stale: &Names<'s>,
        local_stale: &HashMap<NodeId, Names<'s>>,
    ) -> bool {
        let t = self.s.tree;
        let mut todo = vec![stmt];
        let mut done = HashSet::new();
        while let Some(s) = todo.pop() {
            if !done.insert(s) {
                continue;
            }
            let own = self.nodes(s, false);
            if self.reads_stale(s, outer, stale, local_stale) || self.calls_runner(&own) {
                return true;
            }
            let up = t.ancestors(s).find(|&a| {
                t.is_statement(a) || t.node(a).kind == "function_definition" || a == outer
            });
            match up {
                Some(a) if a == outer => {}
                Some(def) if t.node(def).kind == "function_definition" => {
                    let name = t.field(def, "name").map_or("", |n| t.text(n));
                    for &call in self.s.calls_of(name) {
                        let caller = t.statement_of(call);
                        let level_1 = caller.and_then(|c| self.chains.get(&c));
                        if level_1.is_some_and(|c| c.as_slice() == [outer]) {
                            todo.extend(caller);
                        }
                    }
                }
                Some(a) => todo.push(a),
                None => {}
            }
        }
        false
    }

    fn block(&self, block: NodeId, stale: &mut Names<'s>, ctrl: bool, rec: &mut Record<'s>) {
        let t = self.s.tree;
        for &s in &t.node(block).children {
            self.statement(s, stale, ctrl, rec);
            rec.seen.extend(stale.iter().copied());
        }
    }

    /// Follows one level-1 statement of the outer loop's own body (see the rule above).
    fn statement(&self, s: NodeId, stale: &mut Names<'s>, ctrl: bool, rec: &mut Record<'s>) {
        let t = self.s.tree;
        let kind = t.node(s).kind;
        if matches!(
            kind,
            "function_definition" | "class_definition" | "decorated_definition"
        ) {
            return;
        }
        let own = self.nodes(s, false);
        let reads = self.reads(s);
        let nested = self.is_nested_loop(s) || self.calls_runner(&own);
        if self.logs.contains(&s) && (ctrl || nested || !reads.is_disjoint(stale)) {
            rec.logs.insert(s);
        }
        if nested {
            let all = self.effects(&self.nodes(s, true), true);
            stale.extend(all.iter().map(|e| e.root));
            return;
        }
        let tainted = !reads.is_disjoint(stale);
        if tainted {
            let all = self.effects(&self.nodes(s, true), false);
            stale.extend(all.iter().map(|e| e.root));
        } else {
            for e in self.effects(&own, false).iter().filter(|e| e.rebind) {
                stale.remove(e.root);
            }
        }
        let ctrl = ctrl || tainted;
        let blocks: Vec<NodeId> = self
            .nodes(s, true)
            .into_iter()
            .filter(|&n| {
                t.node(n).kind == "block"
                    && own.binary_search(&t.node(n).parent.unwrap_or(s)).is_ok()
            })
            .collect();
        match kind {
            // A body that always runs once.
            "with_statement" => {
                for &b in &blocks {
                    self.block(b, stale, ctrl, rec);
                }
            }
            // Values carry from one pass of the body to the next, and it may not run at all.
            "for_statement" | "while_statement" => {
                let mut start = stale.clone();
                loop {
                    let mut end = start.clone();
                    for &b in &blocks {
                        self.block(b, &mut end, ctrl, rec);
                    }
                    let before = start.len();
                    start.extend(end);
                    if start.len() == before {
                        break;
                    }
                }
                *stale = start;
            }
            // One branch or none runs.
            _ => {
                let mut out = stale.clone();
                for &b in &blocks {
                    let mut branch = stale.clone();
                    self.block(b, &mut branch, ctrl, rec);
                    out.extend(branch);
                }
                *stale = out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::read_script;

    /// `(name, needs_nested)` of every level-1 site.
    fn flags(src: &str) -> Vec<(String, bool)> {
        read_script(src)
            .unwrap()
            .sites
            .into_iter()
            .filter(|s| s.level == 1)
            .map(|s| (s.name.as_str().to_owned(), s.needs_nested))
            .collect()
    }

    fn needing(src: &str) -> Vec<String> {
        flags(src)
            .into_iter()
            .filter(|(_, n)| *n)
            .map(|(name, _)| name)
            .collect()
    }

    const TORCH: &str = "\
import torch
import flordb as flor
from torch import nn
net = nn.Linear(4, 2)
opt = torch.optim.SGD(net.parameters(), lr=0.1)
sched = torch.optim.lr_scheduler.StepLR(opt, 1)
losses = []
with flor.checkpointing(model=net, optimizer=opt):
    for epoch in flor.loop('epoch', range(3)):
        total, n = 0.0, 0
        net.train()
        for x, y in flor.loop('step', loader):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            total += loss.item()
            n += 1
            losses.append(loss.item())
        flor.log('avg_loss', total / n)
        flor.log('w', net.weight.sum().item())
        flor.log('lr', opt.param_groups[0]['lr'])
        flor.log('last', losses[-1])
        net.eval()
        correct = 0
        for x, y in test_loader:
            out = net(x)
            correct += (out.argmax(1) == y).sum().item()
        flor.log('val_acc', correct / len(test_loader))
        mean = total / n
        sched.step(mean)
        flor.log('sched_lr', sched.get_last_lr()[0])
        if mean > 1:
            flor.log('high', 1)
        flor.log('noise', torch.rand(1).item())
";

    #[test]
    fn outer_statements_reading_nested_values_need_the_nested_loop() {
        assert_eq!(
            flags(TORCH),
            [
                ("avg_loss".to_owned(), true),
                ("w".to_owned(), false),
                ("lr".to_owned(), false),
                ("last".to_owned(), true),
                ("val_acc".to_owned(), false),
                ("sched_lr".to_owned(), true),
                ("high".to_owned(), true),
                ("noise".to_owned(), false),
            ]
        );
    }

    #[test]
    fn enrolled_arrays_changed_in_place_stay_fresh_but_rebinding_does_not() {
        let src = "\
import flordb as flor
import numpy as np
w = np.zeros(4)
with flor.checkpointing(w=w):
    for epoch in flor.loop('epoch', range(3)):
        for step in flor.loop('step', range(4)):
            grad = np.random.rand(4)
            w -= 0.1 * grad
        flor.log('w', float(w.sum()))
        flor.log('g', float(grad.sum()))
";
        assert_eq!(needing(src), ["g"]);
        let rebinding = src.replace("w -= 0.1 * grad", "w = w - 0.1 * grad");
        assert_eq!(needing(&rebinding), ["w", "g"]);
    }

    #[test]
    fn helpers_that_run_a_nested_loop_count_as_one() {
        let src = "\
import flordb as flor
def train_epoch(model, data):
    total = 0.0
    for b in flor.loop('step', data):
        total += model(b)
    return total
def evaluate(model):
    flor.log('val', model(test))
    flor.log('avg_in_helper', avg)
with flor.checkpointing(model=net):
    for epoch in flor.loop('epoch', range(3)):
        avg = train_epoch(net, data)
        flor.log('avg', avg)
        flor.log('direct', train_epoch(net, data))
        evaluate(net)
        flor.log('w', net.w)
";
        assert_eq!(needing(src), ["avg_in_helper", "avg", "direct"]);
    }

    #[test]
    fn a_helpers_locals_are_its_own() {
        // pytorch/examples' mnist: the step loop in train(), an evaluation in test(), both
        // with their own `data` and `output`.
        let src = "\
import flordb as flor
def train(model, device, loader, optimizer):
    for data, target in flor.loop('step', loader):
        data, target = data.to(device), target.to(device)
        output = model(data)
        loss = crit(output, target)
        optimizer.step()
def test(model, device, loader):
    correct = 0
    for data, target in loader:
        data = data.to(device)
        output = model(data)
        correct += (output.argmax(1) == target).sum().item()
    flor.log('test_acc', correct)
    return correct
with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop('epoch', range(3)):
        train(model, device, train_loader, optimizer)
        acc = test(model, device, test_loader)
        flor.log('acc', acc)
        scheduler.step()
";
        assert_eq!(needing(src), Vec::<String>::new());
        // Returning what the step loop built is still stale.
        let returning = src.replace(
            "        optimizer.step()\n",
            "        optimizer.step()\n    return loss\n",
        )
        .replace(
            "        train(model, device, train_loader, optimizer)\n",
            "        last = train(model, device, train_loader, optimizer)\n        flor.log('last', last)\n",
        );
        assert_eq!(needing(&returning), ["last"]);
    }

    #[test]
    fn a_name_rebound_before_its_use_is_fresh_again() {
        let src = "\
import flordb as flor
for epoch in flor.loop('epoch', range(3)):
    for b in flor.loop('step', data):
        out = f(b)
    out = g(epoch)
    flor.log('out', out)
    if cond(epoch):
        out = f(b)
    flor.log('maybe', out)
";
        assert_eq!(needing(src), ["maybe"]);
    }

    #[test]
    fn seed_loops_are_followed_too() {
        let src = "\
import flor
from flor import MTK as Flor
Flor.checkpoints(net, optimizer)
for epoch in Flor.loop(range(3)):
    total = 0
    for data in Flor.loop(loader):
        optimizer.step()
        total += 1
    flor.log('avg', total)
    flor.log('w', net.w)
";
        assert_eq!(
            flags(src),
            [("avg".to_owned(), true), ("w".to_owned(), false)]
        );
    }
}

//! The state an outer `flor.loop` carries from one iteration to the next outside its
//! enrolled objects: a prefetched batch (`X, Y = get_batch()` at the end of an iteration,
//! used at the start of the next), a best-so-far metric, a patience counter, an EMA copy of
//! the weights, a learning rate decayed by hand, an iterator.
//!
//! Replay restores a checkpoint and runs iteration `k` from it. That is exact only if the
//! checkpoint holds everything iteration `k` reads that earlier iterations wrote. The
//! enrolled objects and the RNG states are always in it; this module names the rest, so
//! that the recorder captures it with each checkpoint and replay restores it (or plans
//! from the loop's start where it could not be captured).
//!
//! A path is carried by outer loop `L` when `L`'s body (nested loops and the script's
//! helper functions it calls included, see `effects.rs`) rebinds it or changes it in place,
//! and its root name is
//! - read in the body on some path from the start of an iteration before the body binds it
//!   (upward-exposed: `X` read by `model(X)` before `X = get_batch()` rebinds it; a name
//!   bound on only one branch of an `if` before the read still counts), or
//! - read after the loop (`flor.log("best", best)` once training is over), or anywhere in a
//!   plain loop around `L`.
//!
//! Enrolled objects and what is reached through them, imported modules, the script's own
//! functions and classes, and FlorDB are never carried. A path is a name or an attribute
//! chain (`self.best_acc`); a change deeper than a chain (`stats["loss"].append(x)`) carries
//! the chain above it (`stats`).

use std::collections::HashSet;

use super::effects::{is_builtin_name, Facts, Names};
use super::tree::NodeId;

/// A value an outer loop carries across its iterations, which its checkpoints must hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CarriedVar {
    /// A name or an attribute chain: `X`, `best_val`, `self.best_acc`.
    pub path: String,
    /// Whether the loop binds it to new objects (`X = ...`, `self.best = ...`): replay
    /// rebinds it. Otherwise the loop only changes the object it holds in place
    /// (`history.append(x)`, `ema.update(net)`): replay restores that object in place.
    pub rebound: bool,
}

/// The carried state of outer loop `outer` (a `for` statement).
pub(crate) fn carried(f: &Facts, outer: NodeId) -> Vec<CarriedVar> {
    let t = f.s.tree;
    let Some(body) = t.field(outer, "body") else {
        return Vec::new();
    };
    let mut flow = Exposed {
        f,
        exposed: HashSet::new(),
    };
    let mut defined: Names = f.rebinds(outer);
    flow.block(body, &mut defined);
    let mut needed = flow.exposed;
    needed.extend(reads_after(f, outer));

    let mut written = f.effects(&f.nodes(body, true));
    if let Some(left) = t.field(outer, "left") {
        written.extend(f.effects(&f.nodes(left, true)));
        // The header's own target: `for epoch in flor.loop(...)` binds `epoch`.
        for n in left..left + t.node(left).size {
            if t.node(n).kind == "identifier" {
                let name = t.text(n);
                written.push(super::effects::Effect {
                    root: name,
                    path: name.to_owned(),
                    rebind: true,
                    augmented: false,
                    assigned: true,
                });
            }
        }
    }
    let rebound: Names = written
        .iter()
        .filter(|e| e.rebind && !(e.augmented && f.is_enrolled(&e.path)))
        .map(|e| e.root)
        .collect();
    let mut out: Vec<CarriedVar> = Vec::new();
    for e in &written {
        if !needed.contains(e.root) || never_carried(f, e.root) || f.is_enrolled(&e.path) {
            continue;
        }
        let (path, whole) = if rebound.contains(e.root) {
            (e.root.to_owned(), true)
        } else {
            let chain = chain_prefix(&e.path);
            let assigned = e.assigned && chain == e.path;
            (chain.to_owned(), assigned)
        };
        if path == "self" && !whole {
            // A method called on the object that holds the loop: what it changes is below.
            continue;
        }
        if f.is_enrolled(&path) {
            continue;
        }
        match out.iter_mut().find(|c| c.path == path) {
            Some(c) => c.rebound |= whole,
            None => out.push(CarriedVar {
                path,
                rebound: whole,
            }),
        }
    }
    // `x` carried whole makes `x.a` redundant.
    let kept: Vec<String> = out.iter().map(|c| c.path.clone()).collect();
    out.retain(|c| {
        !kept.iter().any(|k| {
            k != &c.path && c.path.starts_with(k.as_str()) && c.path[k.len()..].starts_with('.')
        })
    });
    out.sort();
    out
}

fn never_carried(f: &Facts, root: &str) -> bool {
    f.imported.contains(root)
        || f.is_defined(root)
        || is_builtin_name(root) && root != "self"
        || f.s.is_flor_name(root)
}

/// The leading `name.attr.attr` of a path such as `self.layers[0].weight`.
fn chain_prefix(path: &str) -> &str {
    let end = path
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .map_or(path.len(), |(i, _)| i);
    path[..end].trim_end_matches('.')
}

/// Names read after the loop in its scope, and anywhere in a plain loop around it.
fn reads_after<'s>(f: &Facts<'_, '_, 's>, outer: NodeId) -> Names<'s> {
    let t = f.s.tree;
    let scope = t
        .ancestors(outer)
        .find(|&a| t.node(a).kind == "function_definition")
        .unwrap_or(0);
    let around = t
        .ancestors(outer)
        .take_while(|&a| a != scope)
        .filter(|&a| matches!(t.node(a).kind, "for_statement" | "while_statement"))
        .last();
    let end = outer + t.node(outer).size;
    let mut nodes = Vec::new();
    let mut n = scope + 1;
    let scope_end = scope + t.node(scope).size;
    while n < scope_end {
        let kind = t.node(n).kind;
        if matches!(kind, "function_definition" | "class_definition") {
            n += t.node(n).size;
            continue;
        }
        let inside = t.contains(outer, n);
        let in_around = around.is_some_and(|a| t.contains(a, n));
        if !inside && (n >= end || in_around) {
            nodes.push(n);
        }
        n += 1;
    }
    let mut out: Names = nodes
        .iter()
        .copied()
        .filter(|&n| t.is_variable(n) && !f.is_bound_here(n))
        .map(|n| t.text(n))
        .collect();
    out.extend(f.called_reads(&nodes));
    out
}

/// Names read on some path from the start of an iteration before they are bound.
struct Exposed<'f, 'a, 't, 's> {
    f: &'f Facts<'a, 't, 's>,
    exposed: Names<'s>,
}

impl<'s> Exposed<'_, '_, '_, 's> {
    fn block(&mut self, block: NodeId, defined: &mut Names<'s>) {
        let t = self.f.s.tree;
        for &s in &t.node(block).children {
            self.statement(s, defined);
        }
    }

    fn read(&mut self, stmt: NodeId, defined: &Names<'s>) {
        let own = self.f.nodes(stmt, false);
        let reads = self.f.reads(stmt);
        let called = self.f.called_reads(&own);
        for name in reads.into_iter().chain(called) {
            if !defined.contains(name) {
                self.exposed.insert(name);
            }
        }
    }

    fn statement(&mut self, s: NodeId, defined: &mut Names<'s>) {
        let t = self.f.s.tree;
        let children: Vec<NodeId> = t.node(s).children.clone();
        match t.node(s).kind {
            "if_statement" => {
                self.read(s, defined);
                let mut branches: Vec<Names> = Vec::new();
                if let Some(b) = t.field(s, "consequence") {
                    let mut d = defined.clone();
                    self.block(b, &mut d);
                    branches.push(d);
                }
                let mut has_else = false;
                for &c in &children {
                    let kind = t.node(c).kind;
                    if !matches!(kind, "elif_clause" | "else_clause") {
                        continue;
                    }
                    has_else |= kind == "else_clause";
                    let body = t.field(c, "consequence").or_else(|| t.field(c, "body"));
                    let mut d = defined.clone();
                    if let Some(b) = body {
                        self.block(b, &mut d);
                    }
                    branches.push(d);
                }
                if !has_else {
                    branches.push(defined.clone());
                }
                *defined = intersection(branches);
            }
            "for_statement" | "while_statement" => {
                self.read(s, defined);
                let mut d = defined.clone();
                d.extend(self.f.rebinds(s));
                if let Some(b) = t.field(s, "body") {
                    self.block(b, &mut d);
                }
                for &c in &children {
                    if t.node(c).kind == "else_clause" {
                        let mut d = defined.clone();
                        if let Some(b) = t.field(c, "body") {
                            self.block(b, &mut d);
                        }
                    }
                }
            }
            "try_statement" => {
                let mut after_body = defined.clone();
                if let Some(b) = t.field(s, "body") {
                    self.block(b, &mut after_body);
                }
                for &c in &children {
                    let kind = t.node(c).kind;
                    let body = children_block(t, c);
                    match kind {
                        "except_clause" | "except_group_clause" => {
                            let mut d = defined.clone();
                            self.read(c, &d);
                            d.extend(self.f.rebinds(c));
                            if let Some(b) = body {
                                self.block(b, &mut d);
                            }
                        }
                        "else_clause" => {
                            let mut d = after_body.clone();
                            if let Some(b) = body {
                                self.block(b, &mut d);
                            }
                        }
                        "finally_clause" => {
                            if let Some(b) = body {
                                self.block(b, defined);
                            }
                        }
                        _ => {}
                    }
                }
            }
            "with_statement" => {
                self.read(s, defined);
                defined.extend(self.f.rebinds(s));
                if let Some(b) = t.field(s, "body") {
                    self.block(b, defined);
                }
            }
            "match_statement" => {
                self.read(s, defined);
                for n in s + 1..s + t.node(s).size {
                    if t.node(n).kind == "block"
                        && t.node(n)
                            .parent
                            .is_some_and(|p| t.node(p).kind == "case_clause")
                    {
                        let mut d = defined.clone();
                        self.block(n, &mut d);
                    }
                }
            }
            "function_definition" | "class_definition" | "decorated_definition" => {
                // What its body reads is read where it is called (the function summaries).
                defined.extend(self.f.rebinds(s));
            }
            "delete_statement" => {
                self.read(s, defined);
                for n in s..s + t.node(s).size {
                    if t.node(n).kind == "identifier" {
                        defined.remove(t.text(n));
                    }
                }
            }
            _ => {
                self.read(s, defined);
                defined.extend(self.f.rebinds(s));
            }
        }
    }
}

fn children_block(t: &super::tree::Tree, clause: NodeId) -> Option<NodeId> {
    t.node(clause)
        .children
        .iter()
        .copied()
        .find(|&c| t.node(c).kind == "block")
}

fn intersection<'s>(sets: Vec<Names<'s>>) -> Names<'s> {
    let mut iter = sets.into_iter();
    let Some(first) = iter.next() else {
        return HashSet::new();
    };
    iter.fold(first, |acc, s| acc.intersection(&s).copied().collect())
}

#[cfg(test)]
mod tests {
    use crate::analyze::read_script;

    /// `path` (with `*` when rebound) carried by the first outer loop.
    fn carried(src: &str) -> Vec<String> {
        let info = read_script(src).unwrap();
        let outer = info.loops.iter().find(|l| l.level == 1).unwrap();
        outer
            .carried
            .iter()
            .map(|c| format!("{}{}", c.path, if c.rebound { "*" } else { "" }))
            .collect()
    }

    #[test]
    fn a_prefetched_batch_and_counters_are_carried() {
        let src = "\
import itertools, time
import torch
import flordb as flor
X, Y = get_batch('train')
iter_num = 0
best_val_loss = 1e9
t0 = time.time()
scaler = torch.amp.GradScaler(enabled=False)
raw_model = model
with flor.checkpointing(model=model, optimizer=optimizer):
    for _ in flor.loop('iter', itertools.count()):
        lr = get_lr(iter_num)
        for group in optimizer.param_groups:
            group['lr'] = lr
        if iter_num % 10 == 0:
            losses = estimate_loss()
            if losses['val'] < best_val_loss:
                best_val_loss = losses['val']
        for micro in range(4):
            logits, loss = model(X, Y)
            X, Y = get_batch('train')
            scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        t1 = time.time()
        dt = t1 - t0
        t0 = t1
        flor.log('loss', loss.item())
        iter_num += 1
        if iter_num > 100:
            break
";
        // `loss` too: read after the micro-step loop, which might not run (then the
        // previous iteration's value is the one logged).
        assert_eq!(
            carried(src),
            [
                "X*",
                "Y*",
                "best_val_loss*",
                "iter_num*",
                "loss*",
                "scaler",
                "t0*"
            ]
        );
    }

    #[test]
    fn values_rebound_before_their_use_are_not_carried() {
        let src = "\
import flordb as flor
with flor.checkpointing(model=net, optimizer=opt):
    for epoch in flor.loop('epoch', range(3)):
        total = 0.0
        for x, y in flor.loop('step', loader):
            out = net(x)
            loss = crit(out, y)
            total += loss.item()
        avg = total / len(loader)
        flor.log('avg', avg)
";
        assert_eq!(carried(src), Vec::<String>::new());
        // Read after the loop: the end checkpoint must hold it.
        let after = format!("{src}flor.log('last_avg', avg)\nprint(epoch)\n");
        assert_eq!(carried(&after), ["avg*", "epoch*"]);
    }

    #[test]
    fn state_changed_in_place_and_attributes_are_carried_but_enrolled_objects_are_not() {
        let src = "\
import copy
import flordb as flor
history = []
ema = copy.deepcopy(net)
class Trainer:
    def fit(self):
        with flor.checkpointing(model=self.model, opt=self.opt):
            for epoch in flor.loop('epoch', range(self.epochs)):
                self.model.train()
                for p, q in zip(ema.parameters(), self.model.parameters()):
                    p.data.mul_(0.9).add_(q.data)
                history.append(self.evaluate())
                if history[-1] > self.best:
                    self.best = history[-1]
                    self.patience = 3
                else:
                    self.patience -= 1
                self.opt.step()
                self.stats['n'] += 1
";
        // `ema` through a method called on it (its weights change through `p`).
        assert_eq!(
            carried(src),
            [
                "ema",
                "history",
                "self.best*",
                "self.patience*",
                "self.stats"
            ]
        );
    }

    #[test]
    fn a_value_bound_on_one_branch_only_is_still_exposed() {
        let src = "\
import flordb as flor
for epoch in flor.loop('epoch', range(5)):
    if epoch == 0:
        lr = 0.1
    flor.log('lr', lr)
    lr = lr * 0.9
";
        assert_eq!(carried(src), ["lr*"]);
    }

    #[test]
    fn helpers_of_the_script_are_followed() {
        let src = "\
import flordb as flor
def train(model, loader, device, opt, state):
    for x, y in flor.loop('step', loader):
        x = x.to(device)
        opt.step()
    state['seen'] += 1
def test(model, device):
    return model(device)
def main():
    state = {'seen': 0}
    device = 'cpu'
    with flor.checkpointing(model=model, optimizer=opt):
        for epoch in flor.loop('epoch', range(1, 4)):
            train(model, loader, device, opt, state)
            flor.log('acc', test(model, device))
            scheduler.step()
";
        assert_eq!(carried(src), ["scheduler", "state"]);
    }
}

//! Translating today's names into an old version's names.
//!
//! Every matched pair of variable identifiers is a vote `new name -> old name`; a name takes its
//! majority. Votes are kept by scope pair (the innermost function around each side, or the module)
//! and the nearest scope that has votes decides: first the pairs from the statement's function to
//! the function it lands in, then those landing in that function, then those from the statement's
//! function, then all. So a helper that calls its model `m`, or an old helper that called it `net`,
//! does not borrow the name the rest of the file uses. A free variable without votes keeps its
//! name when the old version uses that name too (or it is a builtin), and otherwise has no
//! counterpart, which makes the statement impossible to place honestly. Attribute names
//! (`self.net` becoming `self.model`) are voted on too but never block a placement: an attribute
//! without votes keeps its name.

use std::collections::{HashMap, HashSet};

use super::gumtree::Mapping;
use super::tree::{NodeId, Tree};

type Votes<'s> = HashMap<&'s str, HashMap<&'s str, usize>>;

/// A scope: the innermost function definition, or `None` for the module.
type Scope = Option<NodeId>;

/// The majority translation of new names into old names.
pub(crate) struct Renames<'s> {
    /// Variable votes by (new scope, old scope).
    votes: HashMap<(Scope, Scope), Votes<'s>>,
    /// Votes for attribute names (`x.NAME`).
    attrs: Votes<'s>,
    /// Every variable name the old version uses.
    old_names: HashSet<&'s str>,
}

impl<'s> Renames<'s> {
    pub fn new(a: &Tree<'s>, b: &Tree<'s>, mapping: &Mapping) -> Self {
        let mut votes: HashMap<(Scope, Scope), Votes> = HashMap::new();
        let mut attrs: Votes = HashMap::new();
        for (s, d) in mapping.pairs() {
            let (from, to) = (a.text(s), b.text(d));
            if is_attribute_name(a, s) && is_attribute_name(b, d) {
                *attrs.entry(from).or_default().entry(to).or_default() += 1;
            } else if a.is_variable(s) && b.is_variable(d) {
                let scopes = (enclosing_function(a, s), enclosing_function(b, d));
                *votes
                    .entry(scopes)
                    .or_default()
                    .entry(from)
                    .or_default()
                    .entry(to)
                    .or_default() += 1;
            }
        }
        let old_names = (0..b.len())
            .filter(|&d| b.is_variable(d))
            .map(|d| b.text(d))
            .collect();
        Renames {
            votes,
            attrs,
            old_names,
        }
    }

    /// Whether the old version has a variable `name`, or it is a builtin.
    pub fn knows(&self, name: &str) -> bool {
        self.old_names.contains(name) || is_builtin(name)
    }

    /// The old name of an attribute, by majority; itself when nothing voted.
    pub fn translate_attribute(&self, name: &'s str) -> &'s str {
        self.attrs
            .get(name)
            .and_then(|v| majority(v, name))
            .unwrap_or(name)
    }

    /// The old name for variable `name`, read at node `at` of the new version and landing at
    /// node `to` of the old one, or `None` when it has no counterpart there.
    pub fn translate(
        &self,
        a: &Tree<'s>,
        at: NodeId,
        b: &Tree<'s>,
        to: NodeId,
        name: &'s str,
    ) -> Option<&'s str> {
        let (from_scope, to_scope) = (enclosing_function(a, at), enclosing_function(b, to));
        let tally = |keep: &dyn Fn(Scope, Scope) -> bool, name: &str| -> HashMap<&'s str, usize> {
            let mut out = HashMap::new();
            for (&(fs, ts), votes) in &self.votes {
                if keep(fs, ts) {
                    for (&old, &n) in votes.get(name).into_iter().flatten() {
                        *out.entry(old).or_insert(0) += n;
                    }
                }
            }
            out
        };
        // An old name stands for one new name: when another new name votes for it more
        // often (and takes it), this one has no counterpart there (`m` met `w` once in a
        // matched `weights -= m` / `w -= ...`, but `w` is what `weights` became).
        let claimed = |keep: &dyn Fn(Scope, Scope) -> bool, old: &str, mine: usize| {
            self.votes
                .iter()
                .filter(|(&(fs, ts), _)| keep(fs, ts))
                .flat_map(|(_, v)| v.keys())
                .filter(|&&other| other != name)
                .any(|&other| {
                    let theirs = tally(keep, other);
                    theirs.get(old).is_some_and(|&n| n > mine)
                        && majority(&theirs, other) == Some(old)
                })
        };
        let levels: [&dyn Fn(Scope, Scope) -> bool; 4] = [
            &|fs, ts| fs == from_scope && ts == to_scope,
            &|_, ts| ts == to_scope,
            &|fs, _| fs == from_scope,
            &|_, _| true,
        ];
        let unvoted = (self.old_names.contains(name) || is_builtin(name)).then_some(name);
        for keep in levels {
            let votes = tally(keep, name);
            if let Some(old) = majority(&votes, name) {
                if old != name && claimed(keep, old, votes[old]) {
                    return unvoted.filter(|n| *n != old);
                }
                return Some(old);
            }
        }
        unvoted
    }
}

/// Most votes wins; a tie keeps the name itself if it is a candidate, else the first name in
/// alphabetical order, so the answer never depends on hashing.
fn majority<'s>(votes: &HashMap<&'s str, usize>, name: &'s str) -> Option<&'s str> {
    let best = votes.values().copied().max()?;
    let mut winners: Vec<&str> = votes
        .iter()
        .filter(|(_, &n)| n == best)
        .map(|(&k, _)| k)
        .collect();
    winners.sort_unstable();
    if winners.contains(&name) {
        return Some(name);
    }
    winners.first().copied()
}

/// Whether an identifier is the name part of `x.name`.
pub(crate) fn is_attribute_name(t: &Tree, id: NodeId) -> bool {
    let n = t.node(id);
    n.kind == "identifier"
        && n.field == Some("attribute")
        && n.parent.is_some_and(|p| t.node(p).kind == "attribute")
}

/// The innermost function definition around a node.
pub(crate) fn enclosing_function(t: &Tree, id: NodeId) -> Option<NodeId> {
    t.ancestors(id)
        .find(|&a| t.node(a).kind == "function_definition")
}

/// The variable identifiers of a statement that it does not bind itself (comprehension targets and
/// lambda parameters are bound), leaving out the subtrees in `skip`.
pub(crate) fn free_variables(t: &Tree, stmt: NodeId, skip: &[NodeId]) -> Vec<NodeId> {
    let end = stmt + t.node(stmt).size;
    let bound: HashSet<&str> = (stmt..end)
        .filter(|&n| matches!(t.node(n).kind, "for_in_clause" | "lambda"))
        .flat_map(|n| {
            let binder = match t.node(n).kind {
                "for_in_clause" => t.field(n, "left"),
                _ => t.field(n, "parameters"),
            };
            binder.into_iter().flat_map(move |b| b..b + t.node(b).size)
        })
        .filter(|&n| t.node(n).kind == "identifier")
        .map(|n| t.text(n))
        .collect();
    (stmt..end)
        .filter(|&n| t.is_variable(n))
        .filter(|&n| !skip.iter().any(|&s| t.contains(s, n)))
        .filter(|&n| !bound.contains(t.text(n)))
        .collect()
}

pub(crate) fn is_builtin(name: &str) -> bool {
    const BUILTINS: &[&str] = &[
        "__file__",
        "__import__",
        "__name__",
        "abs",
        "all",
        "any",
        "bool",
        "bytearray",
        "bytes",
        "callable",
        "delattr",
        "dict",
        "dir",
        "divmod",
        "enumerate",
        "eval",
        "exec",
        "filter",
        "float",
        "format",
        "frozenset",
        "getattr",
        "globals",
        "hasattr",
        "hash",
        "id",
        "input",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "locals",
        "map",
        "max",
        "memoryview",
        "min",
        "next",
        "object",
        "open",
        "pow",
        "print",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "setattr",
        "slice",
        "sorted",
        "str",
        "sum",
        "super",
        "tuple",
        "type",
        "vars",
        "zip",
    ];
    BUILTINS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comprehension_targets_are_bound() {
        let t = Tree::parse("flor.log('n', sum(p.numel() for p in model.parameters()))\n").unwrap();
        let stmt = t.node(0).children[0];
        let call = t.node(stmt).children[0];
        let function = t.field(call, "function").unwrap();
        let free: Vec<&str> = free_variables(&t, stmt, &[function])
            .into_iter()
            .map(|n| t.text(n))
            .collect();
        assert_eq!(free, ["sum", "model"]);
    }
}

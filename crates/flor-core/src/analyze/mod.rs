//! Static analysis of Python training scripts: where the `flor.log` calls are, and how to carry
//! today's new ones into old versions of the script (hindsight logging across versions).
//!
//! [`read_script`] lists a script's log sites with their loop levels. [`propagate`] takes today's
//! script, an old version and the statements to carry over, and answers one [`Outcome`] per
//! statement (placed, already present, or cannot place with a [`Reason`]) plus the old source with
//! every placed statement spliced in as text. Nothing else in the old file changes: comments,
//! formatting and the line numbers of code above each insertion survive.
//!
//! ```
//! use flor_core::analyze::{propagate, Outcome};
//!
//! let old = "import flor\nfor e in flor.loop('epoch', range(3)):\n    train(net)\n";
//! let new = "import flor\nfor e in flor.loop('epoch', range(3)):\n    train(model)\n    flor.log('norm', model.norm())\n";
//! let result = propagate(new, old, &["norm"]).unwrap();
//! assert!(matches!(&result.outcomes[0], Outcome::Placed { line: 4, .. }));
//! assert!(result.source.ends_with("    flor.log('norm', net.norm())\n"));
//! ```

mod carried;
mod carry;
mod clock;
mod effects;
mod gumtree;
mod nested;
mod place;
mod rename;
mod sites;
mod tree;

use std::fmt;

pub use carried::CarriedVar;
pub use sites::{LogSite, LoopKind, LoopSite, ScriptInfo, SiteName};

use carry::Definitions;
use gumtree::match_trees;
use place::{splice, Context, Insertion};
use rename::Renames;
use sites::Script;
use tree::{NodeId, Tree};

/// Errors about today's script or the request: nothing can be propagated until they are fixed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// The script does not parse as Python.
    #[error("syntax error at line {line}: fix the script before analysing it")]
    Syntax { line: usize },
    /// A requested name is logged nowhere in today's script.
    #[error("no flor.log call is named {name:?} in the new version (known names: {})", .known.join(", "))]
    UnknownName { name: String, known: Vec<String> },
    /// A requested `@LINE` holds no log call.
    #[error("line {line} of the new version is not a flor.log(...) call: name a line that logs")]
    NotALogLine { line: usize },
    /// A statement selector is neither a name nor `@LINE`.
    #[error("bad statement selector {0:?}: give a log name or @LINE")]
    BadSelector(String),
}

/// Why a statement cannot go into an old version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The old version does not parse.
    OldSyntax { line: usize },
    /// The statement runs inside a loop that the old version does not have.
    MissingLoop { name: String },
    /// Nothing around the statement has a counterpart in the old version.
    NoContext { kind: String, line: usize },
    /// The only places that match sit in other loops than the statement does.
    LevelMismatch {
        expected: Vec<String>,
        found: Vec<String>,
    },
    /// A variable the statement reads does not exist in the old version.
    UnboundVariable { name: String },
    /// The old version does not import FlorDB's `log`.
    NoFlorImport,
    /// The place in the old version shares its line with other code, so no line can be inserted.
    SharedLine { line: usize },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loops = |l: &[String]| {
            if l.is_empty() {
                "no loop".to_owned()
            } else {
                format!("loop {}", l.join(" > "))
            }
        };
        match self {
            Reason::OldSyntax { line } => {
                write!(f, "this version does not parse (syntax error at line {line})")
            }
            Reason::MissingLoop { name } => {
                write!(f, "the enclosing loop {name:?} does not exist in this version")
            }
            Reason::NoContext { kind, line } => write!(
                f,
                "no counterpart for its context in this version (the enclosing {kind} at line {line} is new)"
            ),
            Reason::LevelMismatch { expected, found } => write!(
                f,
                "it belongs in {} but its neighbours in this version are in {}",
                loops(expected),
                loops(found)
            ),
            Reason::UnboundVariable { name } => {
                write!(f, "free variable {name:?} has no counterpart in this version")
            }
            Reason::NoFlorImport => write!(f, "this version does not import flordb's log"),
            Reason::SharedLine { line } => write!(
                f,
                "its place in this version shares line {line} with other code"
            ),
        }
    }
}

/// What became of one statement in one old version. Lines are 1-based lines of the spliced source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Spliced in; `line` is its first line in the spliced source, `text` the inserted lines,
    /// `carried` what it needed from today's script and was spliced in with it (`def
    /// grad_norm`, `import math`; see `carry.rs`).
    Placed {
        name: String,
        line: usize,
        text: String,
        carried: Vec<String>,
    },
    /// The old version already logs this name with the same arguments, at `line`.
    AlreadyPresent { name: String, line: usize },
    /// Not spliced, for `reason`.
    CannotPlace { name: String, reason: Reason },
}

impl Outcome {
    /// The log name (or the name expression's text for a dynamic name).
    pub fn name(&self) -> &str {
        match self {
            Outcome::Placed { name, .. }
            | Outcome::AlreadyPresent { name, .. }
            | Outcome::CannotPlace { name, .. } => name,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Placed {
                name,
                line,
                carried,
                ..
            } => {
                write!(f, "{name}: placed at line {line}")?;
                if !carried.is_empty() {
                    write!(f, "; carried from today's script: {}", carried.join(", "))?;
                }
                Ok(())
            }
            Outcome::AlreadyPresent { name, line } => {
                write!(f, "{name}: already present at line {line}")
            }
            Outcome::CannotPlace { name, reason } => write!(f, "{name}: cannot place: {reason}"),
        }
    }
}

/// The result of propagating statements into one old version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// One outcome per selected statement, in the order asked (a name logged at several places
    /// gives one outcome per place, in source order).
    pub outcomes: Vec<Outcome>,
    /// The old source with every placed statement spliced in (the old source itself if none was).
    pub source: String,
}

impl Propagation {
    /// A unified diff from `old_src` to the spliced source, both labelled `path`.
    pub fn diff(&self, old_src: &str, path: &str) -> String {
        similar::TextDiff::from_lines(old_src, &self.source)
            .unified_diff()
            .context_radius(3)
            .header(path, path)
            .to_string()
    }
}

/// Lists the log sites and loops of a script.
///
/// Fails only when the script does not parse; a log call whose name is not a literal is listed
/// with a [`SiteName::Dynamic`] name rather than stopping the analysis.
pub fn read_script(source: &str) -> Result<ScriptInfo, AnalyzeError> {
    let tree = Tree::parse(source).map_err(|e| AnalyzeError::Syntax { line: e.line })?;
    Ok(Script::new(&tree).info())
}

/// The modules a script imports by absolute name (`import helpers`, `from utils.data
/// import load`), as dotted names in source order; FlorDB's own left out. Which of them
/// are the project's own is for the caller to decide (a file beside the script).
pub fn imported_modules(source: &str) -> Vec<String> {
    let Ok(tree) = Tree::parse(source) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for n in 0..tree.len() {
        let names: Vec<&str> = match tree.node(n).kind {
            "import_statement" => tree
                .node(n)
                .children
                .iter()
                .map(|&c| match tree.node(c).kind {
                    "aliased_import" => tree.field(c, "name").map_or("", |x| tree.text(x)),
                    _ => tree.text(c),
                })
                .collect(),
            "import_from_statement" => tree
                .field(n, "module_name")
                .filter(|&m| tree.node(m).kind == "dotted_name")
                .map(|m| vec![tree.text(m)])
                .unwrap_or_default(),
            _ => continue,
        };
        for name in names {
            let top = name.split('.').next().unwrap_or_default();
            if !name.is_empty()
                && top != "flordb"
                && top != "flor"
                && !out.iter().any(|o| o == name)
            {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// Carries statements of today's script (`new_src`) into an old version (`old_src`).
///
/// Each selector in `stmts` is a log name (every call logging that name is carried) or `@LINE`
/// (the statement starting on that line of the new version). Fails when today's script does not
/// parse or a selector matches nothing in it; anything wrong with the old version becomes a
/// [`Outcome::CannotPlace`] instead, so one bad version never stops the others.
pub fn propagate(
    new_src: &str,
    old_src: &str,
    stmts: &[&str],
) -> Result<Propagation, AnalyzeError> {
    let new_tree = Tree::parse(new_src).map_err(|e| AnalyzeError::Syntax { line: e.line })?;
    let new = Script::new(&new_tree);
    let selected = select(&new, stmts)?;
    let old_tree = match Tree::parse(old_src) {
        Ok(t) => t,
        Err(e) => {
            let outcomes = selected
                .iter()
                .map(|(name, _, _)| Outcome::CannotPlace {
                    name: name.clone(),
                    reason: Reason::OldSyntax { line: e.line },
                })
                .collect();
            return Ok(Propagation {
                outcomes,
                source: old_src.to_owned(),
            });
        }
    };
    let old = Script::new(&old_tree);
    let mut excluded = vec![false; new_tree.len()];
    for &(_, stmt, _) in &selected {
        excluded[stmt..stmt + new_tree.node(stmt).size].fill(true);
    }
    let mapping = match_trees(&new_tree, &old_tree, &excluded);
    let renames = Renames::new(&new_tree, &old_tree, &mapping);
    let cx = Context {
        new: &new,
        old: &old,
        mapping: &mapping,
        renames: &renames,
        log_spelling: old.log_spelling(),
    };

    let definitions = Definitions::new(&new);
    let known = |name: &str| renames.knows(name);
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(selected.len());
    let mut insertions: Vec<(usize, Insertion)> = Vec::new();
    let mut carried: Vec<Vec<NodeId>> = vec![Vec::new(); selected.len()];
    let mut carried_methods: Vec<Vec<(NodeId, NodeId)>> = vec![Vec::new(); selected.len()];
    for (i, (name, stmt, call)) in selected.iter().enumerate() {
        let (stmt, call) = (*stmt, *call);
        if let Some(line) = already_present(&cx, name, stmt, call) {
            outcomes.push(Some(Outcome::AlreadyPresent {
                name: name.to_owned(),
                line,
            }));
            continue;
        }
        let placed = cx
            .place(stmt, call, &excluded)
            .and_then(|(ins, mut unbound)| {
                let methods = carry::missing_methods(&new_tree, &old_tree, stmt)
                    .map_err(|name| Reason::UnboundVariable { name })?;
                for &(_, def) in &methods {
                    unbound.extend(definitions.free_names(def));
                }
                definitions
                    .needed(unbound, &known)
                    .map(|defs| (ins, defs, methods))
                    .map_err(|name| Reason::UnboundVariable { name })
            });
        match placed {
            Ok((ins, defs, methods)) => {
                insertions.push((i, ins));
                carried[i] = defs;
                carried_methods[i] = methods;
                outcomes.push(None);
            }
            Err(reason) => outcomes.push(Some(Outcome::CannotPlace {
                name: name.to_owned(),
                reason,
            })),
        }
    }
    let mut all_carried: Vec<NodeId> = carried.iter().flatten().copied().collect();
    all_carried.sort_unstable();
    all_carried.dedup();
    let mut just: Vec<Insertion> = insertions.iter().map(|(_, ins)| ins.clone()).collect();
    if !all_carried.is_empty() {
        let text: Vec<&str> = all_carried.iter().map(|&d| new_tree.text(d)).collect();
        just.push(Insertion {
            offset: carry::insertion_offset(&old_tree),
            order: 0,
            text: format!("{}\n\n", text.join("\n\n")),
        });
    }
    // Methods go at the end of their class in the old version.
    let mut by_class: std::collections::BTreeMap<NodeId, Vec<NodeId>> = Default::default();
    for &(body, def) in carried_methods.iter().flatten() {
        let defs = by_class.entry(body).or_default();
        if !defs.contains(&def) {
            defs.push(def);
        }
    }
    for (body, mut defs) in by_class {
        defs.sort_unstable();
        let first = old_tree
            .node(body)
            .children
            .first()
            .copied()
            .unwrap_or(body);
        let to = old_tree.indent_of(first).unwrap_or("    ");
        let text: Vec<String> = defs
            .iter()
            .map(|&d| place::reindent(new_tree.text(d), new_tree.indent_of(d).unwrap_or(""), to))
            .collect();
        just.push(Insertion {
            offset: place::line_after(old_src, old_tree.node(body).end),
            order: 0,
            text: format!("\n{}", text.join("\n\n")),
        });
    }
    let (source, lines) = splice(old_src, &just);
    let placed_count = insertions.len();
    // An old statement moves down by the lines inserted at or before its own line.
    for outcome in outcomes.iter_mut().flatten() {
        if let Outcome::AlreadyPresent { line, .. } = outcome {
            let start = line_offset(old_src, *line);
            let shift: usize = just
                .iter()
                .filter(|ins| ins.offset <= start)
                .map(|ins| ins.text.lines().count())
                .sum();
            *line += shift;
        }
    }
    for ((i, ins), line) in insertions
        .into_iter()
        .zip(lines.into_iter().take(placed_count))
    {
        outcomes[i] = Some(Outcome::Placed {
            name: selected[i].0.clone(),
            line,
            text: ins.text,
            carried: carried[i]
                .iter()
                .map(|&d| definitions.label(d))
                .chain(
                    carried_methods[i]
                        .iter()
                        .map(|&(_, d)| carry::method_label(&new_tree, d)),
                )
                .collect(),
        });
    }
    Ok(Propagation {
        outcomes: outcomes.into_iter().flatten().collect(),
        source,
    })
}

/// Byte offset of the start of 1-based line `line`.
fn line_offset(src: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    src.match_indices('\n')
        .nth(line - 2)
        .map_or(src.len(), |(i, _)| i + 1)
}

/// Resolves selectors to `(name, statement, log call)` triples of the new version.
fn select(new: &Script, stmts: &[&str]) -> Result<Vec<(String, NodeId, NodeId)>, AnalyzeError> {
    let t = new.tree;
    let site = |call: NodeId| {
        let stmt = t.statement_of(call).unwrap_or(call);
        (new.first_arg_name(call).as_str().to_owned(), stmt, call)
    };
    let mut out: Vec<(String, NodeId, NodeId)> = Vec::new();
    for &sel in stmts {
        let sel = sel.trim();
        if let Some(line) = sel.strip_prefix('@') {
            let line: usize = line
                .parse()
                .map_err(|_| AnalyzeError::BadSelector(sel.to_owned()))?;
            let found = new
                .log_calls
                .iter()
                .map(|&c| site(c))
                .find(|(_, stmt, _)| t.line(*stmt) == line)
                .ok_or(AnalyzeError::NotALogLine { line })?;
            out.push(found);
            continue;
        }
        if sel.is_empty() {
            return Err(AnalyzeError::BadSelector(sel.to_owned()));
        }
        let found: Vec<_> = new
            .log_calls
            .iter()
            .filter(|&&c| new.first_arg_name(c).literal() == Some(sel))
            .map(|&c| site(c))
            .collect();
        if found.is_empty() {
            let mut known: Vec<String> = new
                .log_calls
                .iter()
                .filter_map(|&c| new.first_arg_name(c).literal().map(str::to_owned))
                .collect();
            known.sort();
            known.dedup();
            return Err(AnalyzeError::UnknownName {
                name: sel.to_owned(),
                known,
            });
        }
        out.extend(found);
    }
    // Two selectors for one statement carry it once.
    let mut seen = Vec::new();
    out.retain(|&(_, stmt, _)| {
        let fresh = !seen.contains(&stmt);
        seen.push(stmt);
        fresh
    });
    Ok(out)
}

/// The line of an old statement that logs the same name with the same arguments, after renaming.
fn already_present(cx: &Context, name: &str, stmt: NodeId, call: NodeId) -> Option<usize> {
    let old = cx.old;
    old.log_calls.iter().find_map(|&c| {
        let lit = old.first_arg_name(c);
        if lit.literal().unwrap_or(lit.as_str()) != name {
            return None;
        }
        let s = old.tree.statement_of(c)?;
        let same = cx.signature(true, s, c, s) == cx.signature(false, stmt, call, s);
        same.then(|| old.tree.line(s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_expressions_do_not_exhaust_the_stack() {
        let chain = |v: &str| format!("{}1", format!("{v} + ").repeat(3_000));
        let old = format!("import flor\nx = {}\n", chain("a"));
        let new = format!("import flor\nx = {}\nflor.log('x', x)\n", chain("b"));
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || propagate(&new, &old, &["x"]))
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert!(matches!(
            result.outcomes[0],
            Outcome::Placed { line: 3, .. }
        ));
    }

    #[test]
    fn errors_name_the_fix() {
        let new = "import flor\nflor.log('a', 1)\n";
        let err = propagate(new, new, &["b"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no flor.log call is named \"b\" in the new version (known names: a)"
        );
        let err = propagate(new, new, &["@1"]).unwrap_err();
        assert!(matches!(err, AnalyzeError::NotALogLine { line: 1 }));
        assert!(matches!(
            propagate("x = (\n", new, &["a"]),
            Err(AnalyzeError::Syntax { .. })
        ));
    }

    #[test]
    fn one_bad_version_is_an_outcome_not_an_error() {
        let new = "import flor\nflor.log('a', 1)\n";
        let result = propagate(new, "def (:\n", &["a"]).unwrap();
        assert_eq!(
            result.outcomes[0].to_string(),
            "a: cannot place: this version does not parse (syntax error at line 1)"
        );
        assert_eq!(result.source, "def (:\n");
    }
}

/// One statement a selector picked in today's script: its log name, first line and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub name: String,
    pub line: usize,
    pub text: String,
}

/// The statements of `source` that `stmts` (log names or `@LINE`) select, in the order
/// asked; fails as [`propagate`] does on a syntax error or a selector matching nothing.
pub fn statements(source: &str, stmts: &[&str]) -> Result<Vec<Statement>, AnalyzeError> {
    let tree = Tree::parse(source).map_err(|e| AnalyzeError::Syntax { line: e.line })?;
    let script = Script::new(&tree);
    Ok(select(&script, stmts)?
        .into_iter()
        .map(|(name, stmt, _)| Statement {
            name,
            line: tree.line(stmt),
            text: tree.text(stmt).to_owned(),
        })
        .collect())
}

#[cfg(test)]
mod import_tests {
    use super::imported_modules;

    #[test]
    fn imported_modules_in_order() {
        let src = "import os, numpy as np\nfrom helpers import train\nimport flordb as flor\nfrom .rel import x\nfrom utils.data import load\n";
        assert_eq!(
            imported_modules(src),
            ["os", "numpy", "helpers", "utils.data"]
        );
    }
}

//! What a statement needs from today's script that an old version does not have: a helper
//! function (`flor.log("gnorm", grad_norm(model))`), the module it imports (`import
//! math`), a constant. Their definitions are carried into the old version with the
//! statement, transitively (a helper calling another helper carries both), and placed at
//! module level after the old version's imports, in today's order.
//!
//! Only module-level definitions are carried: functions, classes, imports and constants
//! (`EPS = 1e-8`). A name that is free in both versions (a builtin, a module-level import
//! both have) needs nothing; a name that today's script binds some other way (inside the
//! training loop, or to an object: `scaler = GradScaler()`, which the old version never
//! trained with) cannot be carried, and stops the placement.

use std::collections::{HashMap, HashSet};

use super::effects::Facts;
use super::rename::free_variables;
use super::sites::Script;
use super::tree::{NodeId, Tree};

/// The module-level statements of today's script that bind each name.
pub(crate) struct Definitions<'a, 't, 's> {
    facts: Facts<'a, 't, 's>,
    by_name: HashMap<&'s str, NodeId>,
}

impl<'a, 't, 's> Definitions<'a, 't, 's> {
    pub fn new(script: &'a Script<'t, 's>) -> Self {
        let facts = Facts::new(script);
        let t = script.tree;
        let mut by_name = HashMap::new();
        for &stmt in &t.node(0).children {
            for name in binds(&facts, t, stmt) {
                by_name.insert(name, stmt);
            }
        }
        Definitions { facts, by_name }
    }

    /// The definitions `names` need, transitively, in source order; `known` says whether
    /// the old version already has a name. Fails with the first name that has no
    /// module-level definition to carry.
    pub fn needed<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NodeId>, String> {
        let t = self.facts.s.tree;
        let mut out: Vec<NodeId> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut todo: Vec<String> = names.into_iter().map(str::to_owned).collect();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) || known(&name) {
                continue;
            }
            let Some(&stmt) = self.by_name.get(name.as_str()) else {
                return Err(name);
            };
            if out.contains(&stmt) {
                continue;
            }
            out.push(stmt);
            let locals = binds_inside(&self.facts, t, stmt);
            for v in free_variables(t, stmt, &[]) {
                let free = t.text(v);
                if !locals.contains(free) && !self.facts.is_bound_here(v) {
                    todo.push(free.to_owned());
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The names a statement of today's script reads that it does not bind itself.
    pub fn free_names(&self, stmt: NodeId) -> Vec<&'s str> {
        let t = self.facts.s.tree;
        let locals = binds_inside(&self.facts, t, stmt);
        free_variables(t, stmt, &[])
            .into_iter()
            .filter(|&v| !self.facts.is_bound_here(v))
            .map(|v| t.text(v))
            .filter(|n| !locals.contains(n))
            .collect()
    }

    /// How a carried definition reads in the plan: `def grad_norm`, `import math`.
    pub fn label(&self, stmt: NodeId) -> String {
        let t = self.facts.s.tree;
        let kind = t.node(stmt).kind;
        let def = match kind {
            "decorated_definition" => t.field(stmt, "definition").unwrap_or(stmt),
            _ => stmt,
        };
        match t.node(def).kind {
            "function_definition" => format!("def {}", name_of(t, def)),
            "class_definition" => format!("class {}", name_of(t, def)),
            "import_statement" | "import_from_statement" => t
                .text(stmt)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
            _ => {
                let mut names: Vec<&str> = binds(&self.facts, t, stmt).into_iter().collect();
                names.sort_unstable();
                format!("{} = ...", names.join(", "))
            }
        }
    }
}

fn name_of<'s>(t: &Tree<'s>, def: NodeId) -> &'s str {
    t.field(def, "name").map_or("", |n| t.text(n))
}

/// Names a module-level statement binds.
fn binds<'s>(f: &Facts<'_, '_, 's>, t: &Tree<'s>, stmt: NodeId) -> HashSet<&'s str> {
    match t.node(stmt).kind {
        "function_definition" | "class_definition" | "decorated_definition" => f.rebinds(stmt),
        "import_statement" | "import_from_statement" => imported(t, stmt),
        "expression_statement" => {
            let constant = t.node(stmt).children.iter().all(|&c| {
                t.node(c).kind == "assignment"
                    && t.field(c, "right").is_some_and(|r| is_literal(t, r))
            });
            if constant {
                f.rebinds(stmt)
            } else {
                HashSet::new()
            }
        }
        _ => HashSet::new(),
    }
}

/// The names an import binds: `import a.b` binds `a`, `import a as b` and `from m import
/// a as b` bind `b`.
fn imported<'s>(t: &Tree<'s>, stmt: NodeId) -> HashSet<&'s str> {
    let mut out = HashSet::new();
    for &c in &t.node(stmt).children {
        let bound = match (t.node(c).kind, t.node(c).field) {
            ("aliased_import", _) => t.field(c, "alias"),
            ("dotted_name", f) if f != Some("module_name") => t.node(c).children.first().copied(),
            _ => None,
        };
        out.extend(bound.map(|b| t.text(b)));
    }
    out
}

/// A number, string, boolean, `None`, or a tuple or list of those.
fn is_literal(t: &Tree, node: NodeId) -> bool {
    let n = t.node(node);
    match n.kind {
        "integer" | "float" | "string" | "concatenated_string" | "true" | "false" | "none" => true,
        "unary_operator" | "tuple" | "list" | "parenthesized_expression" => {
            n.children.iter().all(|&c| is_literal(t, c))
        }
        _ => false,
    }
}

/// Names bound inside a definition (its parameters, its locals, its own name).
fn binds_inside<'s>(f: &Facts<'_, '_, 's>, t: &Tree<'s>, stmt: NodeId) -> HashSet<&'s str> {
    let mut out: HashSet<&'s str> = binds(f, t, stmt);
    for n in stmt..stmt + t.node(stmt).size {
        let node = t.node(n);
        let is_param = node.kind == "identifier"
            && node.parent.is_some_and(|p| {
                let pk = t.node(p).kind;
                pk == "parameters"
                    || (matches!(
                        pk,
                        "default_parameter" | "typed_parameter" | "typed_default_parameter"
                    ) && node.field == Some("name"))
                    || pk == "list_splat_pattern"
                    || pk == "dictionary_splat_pattern"
            });
        if is_param || (node.kind == "identifier" && f.is_bound_here(n)) {
            out.insert(t.text(n));
        }
        if matches!(node.kind, "import_statement" | "import_from_statement") {
            out.extend(imported(t, n));
        }
    }
    out
}

/// Where carried definitions go in the old version: after its last module-level import,
/// else before its first statement that is not the docstring.
pub(crate) fn insertion_offset(b: &Tree) -> usize {
    let children = &b.node(0).children;
    let last_import = children
        .iter()
        .copied()
        .rfind(|&c| matches!(b.node(c).kind, "import_statement" | "import_from_statement"));
    if let Some(i) = last_import {
        let end = b.node(i).end;
        return b.src[end..].find('\n').map_or(b.src.len(), |k| end + k + 1);
    }
    let first = children.iter().copied().find(|&c| {
        !(b.node(c).kind == "expression_statement"
            && b.node(c)
                .children
                .first()
                .is_some_and(|&s| b.node(s).kind == "string"))
    });
    first.map_or(b.src.len(), |c| b.line_start(b.node(c).start))
}

/// Methods that a statement calls on the object of its method (`self.grad_norm()`) which
/// today's class defines and the old version's class of that name does not, transitively:
/// `(the old class's body, the method in today's script)`. Fails with the method's name
/// when the old version has no class of that name to put it in.
pub(crate) fn missing_methods(
    new: &Tree,
    old: &Tree,
    stmt: NodeId,
) -> Result<Vec<(NodeId, NodeId)>, String> {
    let Some(method) = new
        .ancestors(stmt)
        .find(|&a| new.node(a).kind == "function_definition")
    else {
        return Ok(Vec::new());
    };
    let Some(class) = new
        .ancestors(method)
        .find(|&a| matches!(new.node(a).kind, "class_definition" | "function_definition"))
    else {
        return Ok(Vec::new());
    };
    if new.node(class).kind != "class_definition" {
        return Ok(Vec::new());
    }
    let receiver = new
        .field(method, "parameters")
        .and_then(|p| new.node(p).children.first().copied())
        .filter(|&p| new.node(p).kind == "identifier")
        .map(|p| new.text(p));
    let Some(receiver) = receiver else {
        return Ok(Vec::new());
    };
    let today = methods(new, class);
    let class_name = name_of(new, class);
    let old_class = (0..old.len())
        .find(|&n| old.node(n).kind == "class_definition" && name_of(old, n) == class_name);
    let before = old_class.map(|c| methods(old, c)).unwrap_or_default();
    let mut out: Vec<NodeId> = Vec::new();
    let mut todo = vec![stmt];
    while let Some(root) = todo.pop() {
        for n in root..root + new.node(root).size {
            if new.node(n).kind != "call" {
                continue;
            }
            let Some(function) = new.field(n, "function") else {
                continue;
            };
            let on_receiver = new.node(function).kind == "attribute"
                && new
                    .field(function, "object")
                    .is_some_and(|o| new.node(o).kind == "identifier" && new.text(o) == receiver);
            let Some(called) = new.field(function, "attribute").filter(|_| on_receiver) else {
                continue;
            };
            let called = new.text(called);
            let Some(&def) = today.get(called) else {
                continue;
            };
            if before.contains_key(called) || out.contains(&def) {
                continue;
            }
            if old_class.is_none() {
                return Err(format!("{receiver}.{called}"));
            }
            out.push(def);
            todo.push(def);
        }
    }
    out.sort_unstable();
    let body = old_class.and_then(|c| old.field(c, "body"));
    Ok(body
        .map(|b| out.iter().map(|&d| (b, d)).collect())
        .unwrap_or_default())
}

/// The methods of a class by name (decorated ones included).
fn methods<'s>(t: &Tree<'s>, class: NodeId) -> HashMap<&'s str, NodeId> {
    let Some(body) = t.field(class, "body") else {
        return HashMap::new();
    };
    t.node(body)
        .children
        .iter()
        .filter_map(|&c| {
            let def = match t.node(c).kind {
                "decorated_definition" => t.field(c, "definition")?,
                "function_definition" => c,
                _ => return None,
            };
            Some((name_of(t, def), c))
        })
        .collect()
}

/// How a carried method reads in the plan: `def Trainer.grad_norm`.
pub(crate) fn method_label(t: &Tree, def: NodeId) -> String {
    let inner = match t.node(def).kind {
        "decorated_definition" => t.field(def, "definition").unwrap_or(def),
        _ => def,
    };
    let class = t
        .ancestors(def)
        .find(|&a| t.node(a).kind == "class_definition")
        .map_or("", |c| name_of(t, c));
    format!("def {class}.{}", name_of(t, inner))
}

//! What statements read and what they do to the names they touch: rebinding a name, or
//! changing the object it holds in place. Shared by the nested-loop rule (`nested.rs`) and
//! the loop-carried state (`carried.rs`).
//!
//! The rules work on names and attribute paths, without aliasing:
//! - a binding (`x = `, `x += `, `for x in`, `with .. as x`, `x :=`, `del x`) rebinds `x`;
//! - `x.a = `, `x[k] = `, and the receiver of a method call (`x.append(v)`, `x.a.step()`)
//!   change `x.a`, `x` and `x.a` in place;
//! - a call of a function defined in the script changes what its body changes of its
//!   parameters and of module-level names (a summary per function, followed through the
//!   functions it calls); a method defined in the script does the same with its receiver as
//!   `self`;
//! - a call of a function the script did not define (an import, `next`) may change its
//!   arguments, except builtins that never do (`len`, `print`, ...); a module's functions
//!   (`F.mse_loss(out, y)`, `np.mean(x)`) do not, except those known to
//!   (`np.random.shuffle(x)`, `heapq.heappush(h, v)`) and torch's in-place ones ending in
//!   `_` (`clip_grad_norm_(model.parameters(), 1.0)`);
//! - a method of an object the script did not define changes its receiver, not its
//!   arguments (`data.to(device)` leaves `device` alone), except methods known to change
//!   them (`rng.shuffle(idx)`) and `out=` arguments;
//! - calling an object held in a variable (`model(x)`, `loss_fn(out, y)`) changes nothing
//!   (a module's running statistics are state of an enrolled object, restored anyway).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::rename::free_variables;
use super::sites::{Api, Script};
use super::tree::NodeId;

pub(crate) type Names<'s> = HashSet<&'s str>;

/// Builtins that never change their arguments (`next` and `iter` are left out: they advance one).
pub(crate) const PURE: &[&str] = &[
    "abs",
    "all",
    "any",
    "bool",
    "callable",
    "dict",
    "divmod",
    "enumerate",
    "float",
    "format",
    "frozenset",
    "getattr",
    "hasattr",
    "hash",
    "id",
    "int",
    "isinstance",
    "issubclass",
    "len",
    "list",
    "max",
    "min",
    "print",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
];

/// Methods of other people's objects, and functions of modules, that change their
/// arguments (besides a method's receiver). A module function whose name ends in `_` does
/// too (torch's convention: `clip_grad_norm_`, `xavier_uniform_`).
const ARGUMENT_CHANGING: &[&str] = &[
    "shuffle",
    "copyto",
    "put",
    "place",
    "putmask",
    "fill_diagonal",
    "heappush",
    "heappop",
    "heapify",
    "heappushpop",
    "heapreplace",
    "insort",
    "insort_left",
    "insort_right",
    "seed",
    "set_state",
    "setstate",
];

/// What one statement does to one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Effect<'s> {
    pub root: &'s str,
    /// The expression changed: `x.a` for `x.a.step()`; the name itself for a binding.
    pub path: String,
    /// A plain binding: afterwards the name holds a new value, whatever it held before.
    pub rebind: bool,
    /// An augmented assignment (`x += ...`): a rebinding for numbers, a change in place for
    /// arrays and lists.
    pub augmented: bool,
    /// The path itself was assigned (`self.best = v`): it holds a new object afterwards.
    pub assigned: bool,
}

impl<'s> Effect<'s> {
    fn changed(root: &'s str, path: String) -> Self {
        Effect {
            root,
            path,
            rebind: false,
            augmented: false,
            assigned: false,
        }
    }
}

/// What calling a function defined in the script does beyond its own locals.
#[derive(Debug, Default)]
struct Summary<'s> {
    /// Parameters by position (`self` first for a method).
    params: Vec<&'s str>,
    /// Parameters changed in place: (position, the path below it: `""`, `.best`, ...,
    /// whether that path was assigned).
    changed: Vec<(usize, String, bool)>,
    /// Module-level names the function rebinds (`global x`) or changes in place.
    globals: Vec<Effect<'s>>,
    /// Module-level names it reads.
    reads: Names<'s>,
}

/// The facts about a script that every rule needs, and the function summaries.
pub(crate) struct Facts<'a, 't, 's> {
    pub s: &'a Script<'t, 's>,
    /// Source text of the enrolled objects (`net`, `self.model`).
    pub enrolled: Vec<&'s str>,
    /// Names bound by imports.
    pub imported: Names<'s>,
    /// Function definitions by name (methods too).
    defs: HashMap<&'s str, Vec<NodeId>>,
    /// Names of classes defined in the script.
    classes: Names<'s>,
    summaries: RefCell<HashMap<NodeId, Rc<Summary<'s>>>>,
    in_progress: RefCell<HashSet<NodeId>>,
}

impl<'a, 't, 's> Facts<'a, 't, 's> {
    pub fn new(s: &'a Script<'t, 's>) -> Self {
        let t = s.tree;
        let mut facts = Facts {
            s,
            enrolled: Vec::new(),
            imported: HashSet::new(),
            defs: HashMap::new(),
            classes: HashSet::new(),
            summaries: RefCell::new(HashMap::new()),
            in_progress: RefCell::new(HashSet::new()),
        };
        for n in 0..t.len() {
            match t.node(n).kind {
                "call" if s.api_of(n) == Some(Api::Checkpointing) => {
                    for arg in facts.arguments(n) {
                        let keyword = t.node(arg).kind == "keyword_argument";
                        let name = t.field(arg, "name").map(|k| t.text(k));
                        let value = if keyword {
                            t.field(arg, "value")
                        } else {
                            Some(arg)
                        };
                        if name != Some("epsilon") {
                            facts.enrolled.extend(value.map(|v| t.text(v)));
                        }
                    }
                }
                "import_statement" | "import_from_statement" => {
                    for &c in &t.node(n).children {
                        let bound = match (t.node(c).kind, t.node(c).field) {
                            ("aliased_import", _) => t.field(c, "alias"),
                            ("dotted_name", f) if f != Some("module_name") => {
                                // `import a.b` binds `a`; `from m import a` binds `a`.
                                t.node(c).children.first().copied()
                            }
                            _ => None,
                        };
                        facts.imported.extend(bound.map(|b| t.text(b)));
                    }
                }
                "function_definition" => {
                    if let Some(name) = t.field(n, "name").map(|x| t.text(x)) {
                        facts.defs.entry(name).or_default().push(n);
                    }
                }
                "class_definition" => {
                    facts.classes.extend(t.field(n, "name").map(|x| t.text(x)));
                }
                _ => {}
            }
        }
        facts
    }

    pub fn arguments(&self, call: NodeId) -> Vec<NodeId> {
        let t = self.s.tree;
        t.field(call, "arguments")
            .map_or_else(Vec::new, |a| t.node(a).children.clone())
    }

    /// Whether `name` is a function or class the script defines.
    pub fn is_defined(&self, name: &str) -> bool {
        self.defs.contains_key(name) || self.classes.contains(name)
    }

    pub fn is_enrolled(&self, path: &str) -> bool {
        self.enrolled.iter().any(|e| {
            path.strip_prefix(e)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    /// The nodes of a statement, without function or class definitions, and without the blocks
    /// of a compound statement unless `bodies`.
    pub fn nodes(&self, stmt: NodeId, bodies: bool) -> Vec<NodeId> {
        let t = self.s.tree;
        let (mut n, end, mut out) = (stmt, stmt + t.node(stmt).size, Vec::new());
        while n < end {
            let kind = t.node(n).kind;
            let def = matches!(kind, "function_definition" | "class_definition");
            if n != stmt && (def || (!bodies && kind == "block")) {
                n += t.node(n).size;
                continue;
            }
            out.push(n);
            n += 1;
        }
        out
    }

    /// Names a statement reads, leaving out the blocks of a compound statement.
    pub fn reads(&self, stmt: NodeId) -> Names<'s> {
        let t = self.s.tree;
        let own = self.nodes(stmt, false);
        // The roots of what `nodes` left out.
        let skip: Vec<NodeId> = own
            .iter()
            .flat_map(|&n| t.node(n).children.iter().copied())
            .filter(|c| own.binary_search(c).is_err())
            .collect();
        free_variables(t, stmt, &skip)
            .into_iter()
            .filter(|&n| !self.is_bound_here(n))
            .map(|n| t.text(n))
            .collect()
    }

    /// Module-level names read by the functions of the script that `nodes` call.
    pub fn called_reads(&self, nodes: &[NodeId]) -> Names<'s> {
        let mut out = HashSet::new();
        for &n in nodes {
            for def in self.callees(n) {
                out.extend(self.summary(def).reads.iter().copied());
            }
        }
        out
    }

    /// Whether identifier `n` is the target of a plain binding (`n = `, `for n in`, `as n`,
    /// `n :=`): the statement writes it without reading it.
    pub fn is_bound_here(&self, n: NodeId) -> bool {
        let t = self.s.tree;
        let mut at = n;
        while let Some(p) = t.node(at).parent {
            let field = t.node(at).field;
            match (t.node(p).kind, field) {
                ("assignment" | "for_statement", Some("left"))
                | ("as_pattern", Some("alias"))
                | ("named_expression", Some("name")) => return true,
                (
                    "pattern_list"
                    | "tuple_pattern"
                    | "list_pattern"
                    | "list_splat_pattern"
                    | "parenthesized_expression"
                    | "as_pattern_target",
                    _,
                ) => at = p,
                _ => return false,
            }
        }
        false
    }

    /// Names a statement binds plainly (it holds a new value afterwards, whatever it held).
    pub fn rebinds(&self, stmt: NodeId) -> Names<'s> {
        let t = self.s.tree;
        self.nodes(stmt, false)
            .into_iter()
            .filter(|&n| t.node(n).kind == "identifier" && self.is_bound_here(n))
            .map(|n| t.text(n))
            .chain(self.definition_name(stmt))
            .collect()
    }

    fn definition_name(&self, stmt: NodeId) -> Option<&'s str> {
        let t = self.s.tree;
        let def = match t.node(stmt).kind {
            "decorated_definition" => t.field(stmt, "definition")?,
            "function_definition" | "class_definition" => stmt,
            _ => return None,
        };
        t.field(def, "name").map(|n| t.text(n))
    }

    /// The effects of `nodes` (see the module's rules).
    pub fn effects(&self, nodes: &[NodeId]) -> Vec<Effect<'s>> {
        let t = self.s.tree;
        let mut out = Vec::new();
        for &n in nodes {
            match t.node(n).kind {
                "assignment" | "augmented_assignment" => {
                    let augmented = t.node(n).kind == "augmented_assignment";
                    if let Some(left) = t.field(n, "left") {
                        self.target(left, augmented, &mut out);
                    }
                }
                "for_statement" => {
                    if let Some(left) = t.field(n, "left") {
                        self.target(left, false, &mut out);
                    }
                }
                "as_pattern" => {
                    if let Some(alias) = t.field(n, "alias") {
                        self.target(alias, false, &mut out);
                    }
                }
                "named_expression" => {
                    if let Some(name) = t.field(n, "name") {
                        self.target(name, false, &mut out);
                    }
                }
                "delete_statement" => {
                    for &c in &t.node(n).children {
                        self.target(c, false, &mut out);
                    }
                }
                "call" if self.s.api_of(n).is_none() => self.call(n, &mut out),
                _ => {}
            }
        }
        out
    }

    fn target(&self, node: NodeId, augmented: bool, out: &mut Vec<Effect<'s>>) {
        let t = self.s.tree;
        match t.node(node).kind {
            "identifier" => {
                let name = t.text(node);
                out.push(Effect {
                    root: name,
                    path: name.to_owned(),
                    rebind: true,
                    augmented,
                    assigned: true,
                });
            }
            "attribute" => out.extend(self.changed_attribute(node)),
            "subscript" => out.extend(t.field(node, "value").and_then(|v| self.changed(v))),
            _ => {
                for &c in &t.node(node).children {
                    self.target(c, augmented, out);
                }
            }
        }
    }

    /// `x.a.b = v` changes `x.a.b` (a plain attribute chain), else the object below it.
    fn changed_attribute(&self, node: NodeId) -> Option<Effect<'s>> {
        let t = self.s.tree;
        let object = t.field(node, "object")?;
        if let Some(root) = self.name_chain_root(node) {
            let mut e = Effect::changed(root, t.text(node).to_owned());
            e.assigned = true;
            return Some(e);
        }
        self.changed(object)
    }

    /// The root name of a plain chain `a.b.c`, or `None` when something else is in it.
    fn name_chain_root(&self, node: NodeId) -> Option<&'s str> {
        let t = self.s.tree;
        match t.node(node).kind {
            "identifier" => Some(t.text(node)),
            "attribute" => self.name_chain_root(t.field(node, "object")?),
            _ => None,
        }
    }

    /// The root name of an expression made of names, attributes and items (`a.b[0].c`).
    fn root_of(&self, expr: NodeId) -> Option<NodeId> {
        let t = self.s.tree;
        let mut root = expr;
        loop {
            root = match t.node(root).kind {
                "identifier" => return Some(root),
                "attribute" => t.field(root, "object")?,
                "subscript" => t.field(root, "value")?,
                _ => return None,
            };
        }
    }

    /// A change in place of the object `expr` names, when it is a name, attribute or item.
    pub fn changed(&self, expr: NodeId) -> Option<Effect<'s>> {
        let t = self.s.tree;
        let root = self.root_of(expr)?;
        Some(Effect::changed(t.text(root), t.text(expr).to_owned()))
    }

    fn call(&self, call: NodeId, out: &mut Vec<Effect<'s>>) {
        let t = self.s.tree;
        let Some(function) = t.field(call, "function") else {
            return;
        };
        let args = self.arguments(call);
        for &a in &args {
            let is_out = t.node(a).kind == "keyword_argument"
                && t.field(a, "name").is_some_and(|n| t.text(n) == "out");
            if is_out {
                out.extend(t.field(a, "value").and_then(|v| self.changed(v)));
            }
        }
        match t.node(function).kind {
            "identifier" => {
                let name = t.text(function);
                if PURE.contains(&name) || self.classes.contains(name) {
                    return;
                }
                if let Some(defs) = self.defs.get(name) {
                    for &def in defs {
                        self.apply_summary(def, None, &args, out);
                    }
                    return;
                }
                // An object held in a variable, called (`model(x)`, `loss_fn(out, y)`),
                // is taken to change neither itself nor its arguments.
                if self.imported.contains(name) || is_builtin_name(name) {
                    self.arguments_changed(&args, out);
                }
            }
            "attribute" => {
                let Some(object) = t.field(function, "object") else {
                    return;
                };
                let method = t.field(function, "attribute").map_or("", |m| t.text(m));
                let module_call = self
                    .root_of(object)
                    .is_some_and(|r| self.imported.contains(t.text(r)));
                if module_call {
                    if ARGUMENT_CHANGING.contains(&method) || method.ends_with('_') {
                        self.arguments_changed(&args, out);
                    }
                    return;
                }
                out.extend(self.changed(object));
                if let Some(defs) = self.defs.get(method) {
                    let methods: Vec<NodeId> = defs
                        .iter()
                        .copied()
                        .filter(|&d| self.is_method(d))
                        .collect();
                    for def in methods {
                        self.apply_summary(def, Some(object), &args, out);
                    }
                }
                if ARGUMENT_CHANGING.contains(&method) {
                    self.arguments_changed(&args, out);
                }
            }
            _ => {}
        }
    }

    fn arguments_changed(&self, args: &[NodeId], out: &mut Vec<Effect<'s>>) {
        let t = self.s.tree;
        for &arg in args {
            let value = match t.node(arg).kind {
                "keyword_argument" => t.field(arg, "value"),
                "list_splat" | "dictionary_splat" => t.node(arg).children.first().copied(),
                _ => Some(arg),
            };
            out.extend(value.and_then(|v| self.changed(v)));
        }
    }

    fn is_method(&self, def: NodeId) -> bool {
        let t = self.s.tree;
        t.ancestors(def)
            .find(|&a| matches!(t.node(a).kind, "function_definition" | "class_definition"))
            .is_some_and(|a| t.node(a).kind == "class_definition")
    }

    /// The functions of the script that a call node calls.
    fn callees(&self, call: NodeId) -> Vec<NodeId> {
        let t = self.s.tree;
        if t.node(call).kind != "call" {
            return Vec::new();
        }
        let Some(function) = t.field(call, "function") else {
            return Vec::new();
        };
        match t.node(function).kind {
            "identifier" => self.defs.get(t.text(function)).cloned().unwrap_or_default(),
            "attribute" => {
                let method = t.field(function, "attribute").map_or("", |m| t.text(m));
                self.defs
                    .get(method)
                    .map(|d| d.iter().copied().filter(|&d| self.is_method(d)).collect())
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// What calling `def` with `args` (and `receiver` as `self`) changes at the call site.
    fn apply_summary(
        &self,
        def: NodeId,
        receiver: Option<NodeId>,
        args: &[NodeId],
        out: &mut Vec<Effect<'s>>,
    ) {
        let t = self.s.tree;
        let summary = self.summary(def);
        out.extend(summary.globals.iter().cloned());
        let positional: Vec<NodeId> = receiver
            .into_iter()
            .chain(args.iter().copied().filter(|&a| {
                !matches!(
                    t.node(a).kind,
                    "keyword_argument" | "list_splat" | "dictionary_splat"
                )
            }))
            .collect();
        let splat = args
            .iter()
            .any(|&a| matches!(t.node(a).kind, "list_splat" | "dictionary_splat"));
        if splat {
            // Which argument lands where is only known at run time.
            self.arguments_changed(args, out);
        }
        for (index, below, assigned) in &summary.changed {
            let Some(param) = summary.params.get(*index) else {
                continue;
            };
            let arg = positional.get(*index).copied().or_else(|| {
                args.iter().copied().find_map(|a| {
                    let named = t.node(a).kind == "keyword_argument"
                        && t.field(a, "name").is_some_and(|n| t.text(n) == *param);
                    if named {
                        t.field(a, "value")
                    } else {
                        None
                    }
                })
            });
            let Some(arg) = arg else { continue };
            let Some(root) = self.root_of(arg) else {
                continue;
            };
            let path = if below.is_empty() || self.name_chain_root(arg).is_none() {
                t.text(arg).to_owned()
            } else {
                format!("{}{below}", t.text(arg))
            };
            let mut e = Effect::changed(t.text(root), path);
            e.assigned = *assigned && !below.is_empty();
            out.push(e);
        }
    }

    /// The summary of function `def` (computed once; a recursive call sees an empty one).
    fn summary(&self, def: NodeId) -> Rc<Summary<'s>> {
        if let Some(s) = self.summaries.borrow().get(&def) {
            return s.clone();
        }
        if !self.in_progress.borrow_mut().insert(def) {
            return Rc::new(Summary::default());
        }
        let summary = Rc::new(self.summarize(def));
        self.in_progress.borrow_mut().remove(&def);
        self.summaries.borrow_mut().insert(def, summary.clone());
        summary
    }

    /// The names local to function `def`: its parameters and what it binds (imports
    /// included), without those it declares `global` or `nonlocal`.
    pub fn locals_of(&self, def: NodeId) -> Names<'s> {
        let t = self.s.tree;
        let mut locals: Names = self.parameters(def).into_iter().collect();
        let Some(body) = t.field(def, "body") else {
            return locals;
        };
        let nodes = self.nodes(body, true);
        for &n in &nodes {
            match t.node(n).kind {
                "identifier" if self.is_bound_here(n) => {
                    locals.insert(t.text(n));
                }
                "import_statement" | "import_from_statement" => {
                    locals.extend(self.rebinds(n));
                }
                _ => {}
            }
        }
        let declared = self.declared(&nodes);
        locals.retain(|n| !declared.contains(n));
        locals
    }

    /// Names that `nodes` declare `global` or `nonlocal`.
    fn declared(&self, nodes: &[NodeId]) -> Names<'s> {
        let t = self.s.tree;
        nodes
            .iter()
            .filter(|&&n| matches!(t.node(n).kind, "global_statement" | "nonlocal_statement"))
            .flat_map(|&n| t.node(n).children.iter().map(|&c| t.text(c)))
            .collect()
    }

    fn parameters(&self, def: NodeId) -> Vec<&'s str> {
        let t = self.s.tree;
        let mut params: Vec<&'s str> = Vec::new();
        if let Some(ps) = t.field(def, "parameters") {
            for &p in &t.node(ps).children {
                let name = match t.node(p).kind {
                    "identifier" => Some(p),
                    "default_parameter" | "typed_parameter" | "typed_default_parameter" => {
                        t.field(p, "name").or_else(|| {
                            t.node(p)
                                .children
                                .iter()
                                .copied()
                                .find(|&c| t.node(c).kind == "identifier")
                        })
                    }
                    _ => None,
                };
                params.extend(name.map(|n| t.text(n)));
            }
        }
        params
    }

    fn summarize(&self, def: NodeId) -> Summary<'s> {
        let t = self.s.tree;
        let params = self.parameters(def);
        let Some(body) = t.field(def, "body") else {
            return Summary {
                params,
                ..Summary::default()
            };
        };
        let nodes = self.nodes(body, true);
        let declared = self.declared(&nodes);
        let locals = self.locals_of(def);
        let mut summary = Summary {
            params: params.clone(),
            ..Summary::default()
        };
        for e in self.effects(&nodes) {
            if let Some(index) = params.iter().position(|p| *p == e.root) {
                if !e.rebind && !locals_rebound(&nodes, t, e.root, self) {
                    let below = e.path[e.root.len()..].to_owned();
                    summary.changed.push((index, below, e.assigned));
                }
            } else if !locals.contains(e.root) && (!e.rebind || declared.contains(e.root)) {
                summary.globals.push(e);
            }
        }
        let skip: Vec<NodeId> = Vec::new();
        for n in free_variables(t, body, &skip) {
            let name = t.text(n);
            if !locals.contains(name) && !self.is_bound_here(n) && !is_builtin_name(name) {
                summary.reads.insert(name);
            }
        }
        for &n in &nodes {
            for callee in self.callees(n) {
                if callee != def {
                    summary
                        .reads
                        .extend(self.summary(callee).reads.iter().copied());
                }
            }
        }
        summary.changed.sort();
        summary.changed.dedup();
        summary
    }
}

/// Whether a parameter is rebound somewhere in the function: its changes may then be to a
/// new object (approximated: any rebinding drops the parameter's changes).
fn locals_rebound(nodes: &[NodeId], t: &super::tree::Tree, name: &str, f: &Facts) -> bool {
    nodes
        .iter()
        .any(|&n| t.node(n).kind == "identifier" && t.text(n) == name && f.is_bound_here(n))
}

/// Builtins and Python's own names: calling one is not calling an object of the script.
pub(crate) fn is_builtin_name(name: &str) -> bool {
    PURE.contains(&name)
        || super::rename::is_builtin(name)
        || matches!(name, "self" | "cls" | "True" | "False" | "None")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::tree::Tree;

    fn effects_of(src: &str, line: usize) -> Vec<(String, bool)> {
        let tree = Tree::parse(src).unwrap();
        let script = Script::new(&tree);
        let facts = Facts::new(&script);
        let stmt = (0..tree.len())
            .find(|&n| tree.is_statement(n) && tree.line(n) == line)
            .unwrap();
        let mut out: Vec<(String, bool)> = facts
            .effects(&facts.nodes(stmt, true))
            .into_iter()
            .map(|e| (e.path, e.rebind))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn methods_change_their_receiver_not_their_arguments() {
        let src = "import numpy as np\ndata = data.to(device)\nrng.shuffle(idx)\nnp.random.shuffle(order)\nself.ema.update(net)\nloss = np.mean(x)\n";
        assert_eq!(
            effects_of(src, 2),
            [("data".into(), false), ("data".into(), true)]
        );
        assert_eq!(
            effects_of(src, 3),
            [("idx".into(), false), ("rng".into(), false)]
        );
        assert_eq!(effects_of(src, 4), [("order".into(), false)]);
        assert_eq!(effects_of(src, 5), [("self.ema".into(), false)]);
        assert_eq!(effects_of(src, 6), [("loss".into(), true)]);
    }

    #[test]
    fn functions_of_the_script_change_what_their_bodies_change() {
        let src = "\
def train(args, model, device, loader, opt, history):
    model.train()
    for x, y in enumerate(loader):
        x = x.to(device)
        opt.step()
    history.append(1)
    global steps
    steps += 1
    best.value = 3
train(args, net, device, train_loader, optimizer, hist)
class T:
    def fit(self, n):
        self.best = n
        self.log.append(n)
trainer.fit(5)
";
        assert_eq!(
            effects_of(src, 10),
            [
                ("best.value".into(), false),
                ("hist".into(), false),
                ("net".into(), false),
                ("optimizer".into(), false),
                ("steps".into(), true),
            ]
        );
        assert_eq!(
            effects_of(src, 15),
            [
                ("trainer".into(), false),
                ("trainer.best".into(), false),
                ("trainer.log".into(), false),
            ]
        );
    }
}

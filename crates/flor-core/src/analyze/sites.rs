//! Reading a script: which names stand for FlorDB, where each `log` call is, and in which loops.
//!
//! The import decides the spelling: `import flordb as flor`, `import flordb`, `import flor`, and
//! `from flordb import log, loop` are all recognised (a script with no FlorDB import at all is read
//! as if it said `import flor`, the seed's spelling). A site's loops are the enclosing `flor.loop`
//! `for` statements and `flor.iteration` `with` blocks; a site inside a function inherits the loops
//! around the call of that function, so a helper called from the epoch loop logs at the epoch level.
//!
//! The seed's unnamed loops (`from flor import MTK as Flor; Flor.loop(it)`, `flor.MTK.loop(it)`,
//! `flor.loop(it)`) are named by how many unnamed loops enclose them, as `MTK.loop` names them
//! when the script runs: `epoch`, then `step`, then `loop_2`, `loop_3`...

use std::collections::{HashMap, HashSet};

use super::carried::{carried, CarriedVar};
use super::clock::clock_logs;
use super::effects::Facts;
use super::nested::Nested;
use super::tree::{NodeId, Tree};

/// The name a log call gives its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteName {
    /// A string literal (or an f-string without placeholders).
    Literal(String),
    /// Anything else, kept as its source text: the name is only known when the script runs.
    Dynamic(String),
}

impl SiteName {
    /// The literal name, if there is one.
    pub fn literal(&self) -> Option<&str> {
        match self {
            SiteName::Literal(s) => Some(s),
            SiteName::Dynamic(_) => None,
        }
    }

    /// The literal name, or the expression's source text.
    pub fn as_str(&self) -> &str {
        match self {
            SiteName::Literal(s) | SiteName::Dynamic(s) => s,
        }
    }
}

/// Which FlorDB construct opens a loop level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopKind {
    /// `for ... in flor.loop(name, iterable)`.
    Loop,
    /// `with flor.iteration(name, idx, value)`.
    Iteration,
}

/// One `flor.log(...)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSite {
    pub name: SiteName,
    /// 1-based line of the statement that holds the call.
    pub line: usize,
    /// 0 at run level, 1 inside the outer loop, 2 inside a nested loop, ...
    pub level: usize,
    /// Names of the enclosing loops, outermost first (`level` of them).
    pub loops: Vec<String>,
    /// At level 1: whether the statement reads something its outer iteration builds in a nested
    /// loop, so replaying it needs those nested loops run (see `nested.rs` for the rule).
    pub needs_nested: bool,
    /// Its value depends on the clock or the machine (`time.time() - t0`): a replay does not
    /// log it as recorded, so replay does not check it against the record (`clock.rs`).
    pub clock: bool,
}

/// One `flor.loop` or `flor.iteration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopSite {
    pub name: SiteName,
    pub kind: LoopKind,
    /// 1-based line of the `for` or `with` statement.
    pub line: usize,
    /// 1-based last line of the statement, its body included.
    pub end_line: usize,
    /// 1 for an outer loop, 2 for a loop nested in it, ...
    pub level: usize,
    /// For an outer `flor.loop`: the state it carries from one iteration to the next
    /// beyond its enrolled objects (see `carried.rs`), which its checkpoints capture.
    pub carried: Vec<CarriedVar>,
}

/// What [`read_script`](super::read_script) finds in a script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptInfo {
    /// Every log call, in source order, dynamic names included.
    pub sites: Vec<LogSite>,
    /// Every loop, in source order.
    pub loops: Vec<LoopSite>,
}

impl ScriptInfo {
    /// Sites whose name is not a literal: they cannot be asked for by name, only by `@LINE`.
    pub fn dynamic_sites(&self) -> impl Iterator<Item = &LogSite> {
        self.sites
            .iter()
            .filter(|s| matches!(s.name, SiteName::Dynamic(_)))
    }

    /// The sites logging `name`.
    pub fn sites_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a LogSite> + 'a {
        self.sites
            .iter()
            .filter(move |s| s.name.literal() == Some(name))
    }

    /// The name of the first loop at each depth, outermost first.
    pub fn loop_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for l in &self.loops {
            if l.level == names.len() + 1 {
                names.push(l.name.as_str().to_owned());
            }
        }
        names
    }
}

/// The FlorDB calls a script can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Log,
    Loop,
    Iteration,
    /// `flor.checkpointing(model=net, ...)` or the seed's `MTK.checkpoints(net, ...)`.
    Checkpointing,
}

/// How a loop is named: by its name argument, or (the seed's `MTK.loop(it)`) by its depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoopName {
    Given(SiteName),
    Depth,
}

/// The name `MTK.loop` gives an unnamed loop with `depth` unnamed loops around it
/// (python/flor/_mtk.py `MTK.loop_name`).
fn depth_name(depth: usize) -> String {
    match depth {
        0 => "epoch".to_owned(),
        1 => "step".to_owned(),
        d => format!("loop_{d}"),
    }
}

/// A script's tree plus what it says about FlorDB: imports, loops, functions and their callers.
pub(crate) struct Script<'t, 's> {
    pub tree: &'t Tree<'s>,
    /// Names bound to the module (`flor`, `flordb`).
    modules: HashSet<&'s str>,
    /// The same names in the order the imports bind them.
    module_order: Vec<&'s str>,
    /// Whether the script imports FlorDB at all.
    imports_flor: bool,
    /// Names bound directly to an API function (`from flordb import log`).
    functions: HashMap<&'s str, Api>,
    /// Names bound to the seed's `MTK` class (`from flor import MTK as Flor`).
    mtk: HashSet<&'s str>,
    /// Loop statements (`for` and `with` nodes) and their names.
    pub loops: HashMap<NodeId, (LoopKind, LoopName)>,
    /// Call sites by callee name (`f(...)` and `obj.f(...)`).
    calls: HashMap<&'s str, Vec<NodeId>>,
    /// Every `flor.log` call node, in source order.
    pub log_calls: Vec<NodeId>,
}

impl<'t, 's> Script<'t, 's> {
    pub fn new(tree: &'t Tree<'s>) -> Self {
        let mut script = Script {
            tree,
            modules: HashSet::new(),
            module_order: Vec::new(),
            imports_flor: false,
            functions: HashMap::new(),
            mtk: HashSet::new(),
            loops: HashMap::new(),
            calls: HashMap::new(),
            log_calls: Vec::new(),
        };
        script.read_imports();
        for id in 0..tree.len() {
            let node = tree.node(id);
            match node.kind {
                "call" => match script.api_of(id) {
                    Some(Api::Log) => script.log_calls.push(id),
                    Some(_) => {}
                    None => {
                        if let Some(name) = script.callee_name(id) {
                            script.calls.entry(name).or_default().push(id);
                        }
                    }
                },
                "for_statement" => {
                    let right = tree.field(id, "right");
                    if let Some(call) = right.and_then(|r| script.find_api(r, Api::Loop)) {
                        let name = script.loop_name_arg(call);
                        script.loops.insert(id, (LoopKind::Loop, name));
                    }
                }
                "with_statement" => {
                    let clause = node
                        .children
                        .iter()
                        .copied()
                        .find(|&c| tree.node(c).kind == "with_clause");
                    if let Some(call) = clause.and_then(|c| script.find_api(c, Api::Iteration)) {
                        let name = LoopName::Given(script.first_arg_name(call));
                        script.loops.insert(id, (LoopKind::Iteration, name));
                    }
                }
                _ => {}
            }
        }
        script
    }

    fn read_imports(&mut self) {
        let tree = self.tree;
        let is_flor = |m: &str| m == "flordb" || m == "flor";
        let mut any = false;
        for id in 0..tree.len() {
            let node = tree.node(id);
            match node.kind {
                "import_statement" => {
                    for &c in &node.children {
                        let (module, alias) = split_alias(tree, c);
                        if is_flor(module) {
                            any = true;
                            let name = alias.unwrap_or(module);
                            if self.modules.insert(name) {
                                self.module_order.push(name);
                            }
                        }
                    }
                }
                "import_from_statement" => {
                    let module = tree.field(id, "module_name").map(|m| tree.text(m));
                    if !module.is_some_and(is_flor) {
                        continue;
                    }
                    any = true;
                    for &c in &node.children {
                        if tree.node(c).field != Some("name") {
                            continue;
                        }
                        let (name, alias) = split_alias(tree, c);
                        let api = match name {
                            "MTK" => {
                                self.mtk.insert(alias.unwrap_or(name));
                                continue;
                            }
                            "log" => Api::Log,
                            "loop" => Api::Loop,
                            "iteration" => Api::Iteration,
                            "checkpointing" => Api::Checkpointing,
                            _ => continue,
                        };
                        self.functions.insert(alias.unwrap_or(name), api);
                    }
                }
                _ => {}
            }
        }
        self.imports_flor = any;
        if !any {
            self.modules.insert("flor");
        }
    }

    /// How this script spells a call to `log`: `flor.log`, `flordb.log`, `log`, ..., or `None`
    /// when it does not import FlorDB's `log`.
    pub fn log_spelling(&self) -> Option<String> {
        if !self.imports_flor {
            return None;
        }
        if let Some(m) = self.module_order.first() {
            return Some(format!("{m}.log"));
        }
        let mut logs: Vec<&str> = self
            .functions
            .iter()
            .filter(|(_, &api)| api == Api::Log)
            .map(|(&name, _)| name)
            .collect();
        logs.sort_unstable();
        logs.first().map(|&n| n.to_owned())
    }

    /// Which FlorDB function a `call` node calls, if any.
    pub fn api_of(&self, call: NodeId) -> Option<Api> {
        let tree = self.tree;
        let function = tree.field(call, "function")?;
        let name = match tree.node(function).kind {
            "identifier" => return self.functions.get(tree.text(function)).copied(),
            "attribute" => {
                let object = tree.field(function, "object")?;
                let name = tree.text(tree.field(function, "attribute")?);
                if self.is_mtk(object) {
                    return match name {
                        "loop" => Some(Api::Loop),
                        "checkpoints" => Some(Api::Checkpointing),
                        _ => None,
                    };
                }
                if !self.is_module(object) {
                    return None;
                }
                name
            }
            _ => return None,
        };
        match name {
            "log" => Some(Api::Log),
            "loop" => Some(Api::Loop),
            "iteration" => Some(Api::Iteration),
            "checkpointing" => Some(Api::Checkpointing),
            _ => None,
        }
    }

    /// Whether `name` is bound to FlorDB or one of its functions.
    pub fn is_flor_name(&self, name: &str) -> bool {
        self.modules.contains(name) || self.functions.contains_key(name) || self.mtk.contains(name)
    }

    fn is_module(&self, node: NodeId) -> bool {
        let tree = self.tree;
        tree.node(node).kind == "identifier" && self.modules.contains(tree.text(node))
    }

    /// Whether `node` is the seed's `MTK` class: a name imported for it, or `flor.MTK`.
    fn is_mtk(&self, node: NodeId) -> bool {
        let tree = self.tree;
        match tree.node(node).kind {
            "identifier" => self.mtk.contains(tree.text(node)),
            "attribute" => {
                tree.field(node, "attribute")
                    .is_some_and(|a| tree.text(a) == "MTK")
                    && tree
                        .field(node, "object")
                        .is_some_and(|o| self.is_module(o))
            }
            _ => false,
        }
    }

    /// How a `loop` call names its loop. `MTK.loop(it)` and `flor.loop(it)` (one argument that
    /// is not a string: python/flor/__init__.py hands it to `MTK.loop`) are named by depth.
    fn loop_name_arg(&self, call: NodeId) -> LoopName {
        let tree = self.tree;
        let by_mtk = tree
            .field(call, "function")
            .and_then(|f| tree.field(f, "object"))
            .is_some_and(|o| self.is_mtk(o));
        let args = tree
            .field(call, "arguments")
            .map_or(&[][..], |a| &tree.node(a).children[..]);
        let unnamed = matches!(args, [only] if !matches!(
            tree.node(*only).kind,
            "keyword_argument" | "string" | "concatenated_string"
        ));
        if by_mtk || unnamed {
            LoopName::Depth
        } else {
            LoopName::Given(self.first_arg_name(call))
        }
    }

    /// The first call to `api` in the subtree of `root`, so `enumerate(flor.loop(...))` counts.
    fn find_api(&self, root: NodeId, api: Api) -> Option<NodeId> {
        (root..root + self.tree.node(root).size)
            .find(|&id| self.tree.node(id).kind == "call" && self.api_of(id) == Some(api))
    }

    pub fn callee_name(&self, call: NodeId) -> Option<&'s str> {
        let tree = self.tree;
        let function = tree.field(call, "function")?;
        match tree.node(function).kind {
            "identifier" => Some(tree.text(function)),
            "attribute" => tree.field(function, "attribute").map(|a| tree.text(a)),
            _ => None,
        }
    }

    /// The name argument of a FlorDB call: the first positional argument or `name=`.
    pub fn name_arg(&self, call: NodeId) -> Option<NodeId> {
        let tree = self.tree;
        let args = tree.field(call, "arguments")?;
        let children = &tree.node(args).children;
        let keyword = children.iter().copied().find(|&a| {
            tree.node(a).kind == "keyword_argument"
                && tree
                    .field(a, "name")
                    .is_some_and(|n| tree.text(n) == "name")
        });
        match keyword {
            Some(k) => tree.field(k, "value"),
            None => children
                .iter()
                .copied()
                .find(|&a| tree.node(a).kind != "keyword_argument"),
        }
    }

    pub fn first_arg_name(&self, call: NodeId) -> SiteName {
        match self.name_arg(call) {
            Some(arg) => literal_string(self.tree, arg)
                .map(SiteName::Literal)
                .unwrap_or_else(|| SiteName::Dynamic(self.tree.text(arg).to_owned())),
            None => SiteName::Dynamic(String::new()),
        }
    }

    /// The calls, other than FlorDB's, of functions or methods named `name`.
    pub fn calls_of(&self, name: &str) -> &[NodeId] {
        self.calls.get(name).map_or(&[], Vec::as_slice)
    }

    /// The loops around `node`, outermost first, following calls out of helper functions.
    pub fn chain(&self, node: NodeId) -> Vec<NodeId> {
        self.chain_guarded(node, &mut Vec::new())
    }

    fn chain_guarded(&self, node: NodeId, visiting: &mut Vec<NodeId>) -> Vec<NodeId> {
        let tree = self.tree;
        let mut local = Vec::new();
        let mut prev = node;
        let mut outer = Vec::new();
        for a in tree.ancestors(node) {
            let n = tree.node(a);
            if self.loops.contains_key(&a) && tree.node(prev).field == Some("body") {
                local.push(a);
            }
            if n.kind == "function_definition" {
                outer = self.callers_chain(a, visiting);
                break;
            }
            prev = a;
        }
        local.reverse();
        outer.extend(local);
        outer
    }

    /// The deepest loop chain among the places that call function `def`.
    fn callers_chain(&self, def: NodeId, visiting: &mut Vec<NodeId>) -> Vec<NodeId> {
        if visiting.contains(&def) {
            return Vec::new();
        }
        let tree = self.tree;
        let Some(name) = tree.field(def, "name").map(|n| tree.text(n)) else {
            return Vec::new();
        };
        visiting.push(def);
        let mut best: Vec<NodeId> = Vec::new();
        for &call in self.calls.get(name).into_iter().flatten() {
            if tree.contains(def, call) {
                continue;
            }
            let chain = self.chain_guarded(call, visiting);
            if chain.len() > best.len() {
                best = chain;
            }
        }
        visiting.pop();
        best
    }

    /// Names of the loops in a chain (a whole chain from the outermost loop: unnamed loops are
    /// named by the unnamed loops before them).
    pub fn chain_names(&self, chain: &[NodeId]) -> Vec<String> {
        let mut depth = 0;
        chain
            .iter()
            .filter_map(|l| self.loops.get(l))
            .map(|(_, name)| match name {
                LoopName::Given(n) => n.as_str().to_owned(),
                LoopName::Depth => {
                    depth += 1;
                    depth_name(depth - 1)
                }
            })
            .collect()
    }

    /// The name of loop `l` where it runs (the deepest chain of callers, for a loop in a helper).
    pub fn loop_name(&self, l: NodeId) -> String {
        let mut chain = self.chain(l);
        chain.push(l);
        self.chain_names(&chain).pop().unwrap_or_default()
    }

    pub fn info(&self) -> ScriptInfo {
        let tree = self.tree;
        let facts = Facts::new(self);
        let nested = Nested::new(&facts);
        let clock = clock_logs(&facts);
        let sites = self
            .log_calls
            .iter()
            .map(|&call| {
                let stmt = tree.statement_of(call).unwrap_or(call);
                let chain = self.chain(stmt);
                let loops = self.chain_names(&chain);
                LogSite {
                    name: self.first_arg_name(call),
                    line: tree.line(stmt),
                    level: loops.len(),
                    loops,
                    needs_nested: chain.len() == 1 && nested.needs_nested(chain[0], stmt),
                    clock: clock.contains(&call),
                }
            })
            .collect();
        let mut loops: Vec<(NodeId, LoopSite)> = self
            .loops
            .iter()
            .map(|(&id, (kind, name))| {
                let name = match name {
                    LoopName::Given(n) => n.clone(),
                    LoopName::Depth => SiteName::Literal(self.loop_name(id)),
                };
                let level = self.chain(id).len() + 1;
                let end = tree.node(id).end.saturating_sub(1).max(tree.node(id).start);
                let site = LoopSite {
                    name,
                    kind: *kind,
                    line: tree.line(id),
                    end_line: tree.src[..end].matches('\n').count() + 1,
                    level,
                    carried: if level == 1 && *kind == LoopKind::Loop {
                        carried(&facts, id)
                    } else {
                        Vec::new()
                    },
                };
                (id, site)
            })
            .collect();
        loops.sort_by_key(|(id, _)| *id);
        ScriptInfo {
            sites,
            loops: loops.into_iter().map(|(_, l)| l).collect(),
        }
    }
}

/// `a.b as c` gives `("a.b", Some("c"))`; `a.b` gives `("a.b", None)`.
fn split_alias<'s>(tree: &Tree<'s>, node: NodeId) -> (&'s str, Option<&'s str>) {
    if tree.node(node).kind == "aliased_import" {
        let name = tree.field(node, "name").map_or("", |n| tree.text(n));
        let alias = tree.field(node, "alias").map(|a| tree.text(a));
        (name, alias)
    } else {
        (tree.text(node), None)
    }
}

/// The value of a string literal without placeholders, if `node` is one.
pub(crate) fn literal_string(tree: &Tree, node: NodeId) -> Option<String> {
    let n = tree.node(node);
    match n.kind {
        "string" => {
            let mut out = String::new();
            for &c in &n.children {
                match tree.node(c).kind {
                    "string_start" | "string_end" => {}
                    "string_content" | "escape_sequence" => out.push_str(tree.text(c)),
                    _ => return None,
                }
            }
            Some(out)
        }
        "concatenated_string" => n
            .children
            .iter()
            .map(|&c| literal_string(tree, c))
            .collect::<Option<Vec<_>>>()
            .map(|parts| parts.concat()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(src: &str) -> ScriptInfo {
        let tree = Tree::parse(src).unwrap();
        Script::new(&tree).info()
    }

    #[test]
    fn levels_and_loop_names() {
        let i = info(
            "import flordb as flor\n\
             for e in flor.loop('epoch', range(2)):\n\
             \x20   for b in flor.loop('step', enumerate(loader)):\n\
             \x20       flor.log('loss', 1)\n\
             \x20   flor.log('acc', 2)\n\
             flor.log('final', 3)\n",
        );
        let got: Vec<(&str, usize, usize)> = i
            .sites
            .iter()
            .map(|s| (s.name.as_str(), s.line, s.level))
            .collect();
        assert_eq!(got, [("loss", 4, 2), ("acc", 5, 1), ("final", 6, 0)]);
        assert_eq!(i.loop_names(), ["epoch", "step"]);
    }

    #[test]
    fn import_spellings() {
        for (import, call) in [
            ("import flordb", "flordb.log"),
            ("import flordb as fl", "fl.log"),
            ("import flor", "flor.log"),
            ("from flordb import log", "log"),
            ("from flordb import log as record", "record"),
        ] {
            let i = info(&format!("{import}\n{call}('x', 1)\nother.log('y', 2)\n"));
            let names: Vec<&str> = i.sites.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["x"], "{import}");
        }
    }

    #[test]
    fn dynamic_names_are_reported_not_fatal() {
        let i = info(
            "import flordb as flor\nfor k in ks:\n    flor.log(f'loss_{k}', 1)\nflor.log(name='ok', value=2)\nflor.log(f'plain', 3)\n",
        );
        let names: Vec<&SiteName> = i.sites.iter().map(|s| &s.name).collect();
        assert_eq!(
            names,
            [
                &SiteName::Dynamic("f'loss_{k}'".into()),
                &SiteName::Literal("ok".into()),
                &SiteName::Literal("plain".into())
            ]
        );
        assert_eq!(i.dynamic_sites().count(), 1);
    }

    #[test]
    fn helpers_iterations_and_no_grad() {
        let i = info(
            "import flordb as flor\n\
             def evaluate(m):\n\
             \x20   with torch.no_grad():\n\
             \x20       flor.log('val', m())\n\
             def train(m):\n\
             \x20   for b in flor.loop('step', data):\n\
             \x20       flor.log('loss', m(b))\n\
             for e in flor.loop('epoch', range(3)):\n\
             \x20   train(net)\n\
             \x20   evaluate(net)\n\
             with flor.iteration('doc', 0, 'a.pdf'):\n\
             \x20   flor.log('pages', 3)\n",
        );
        let got: Vec<(&str, Vec<String>)> = i
            .sites
            .iter()
            .map(|s| (s.name.as_str(), s.loops.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("val", vec!["epoch".to_owned()]),
                ("loss", vec!["epoch".to_owned(), "step".to_owned()]),
                ("pages", vec!["doc".to_owned()]),
            ]
        );
    }

    #[test]
    fn seed_loops_are_named_by_depth_as_mtk_names_them() {
        for (import, outer, inner) in [
            ("from flor import MTK as Flor", "Flor.loop", "Flor.loop"),
            ("from flor import MTK", "MTK.loop", "MTK.loop"),
            ("import flor", "flor.MTK.loop", "flor.loop"),
        ] {
            let i = info(&format!(
                "import flor\n{import}\n\
                 for e in {outer}(range(2)):\n\
                 \x20   for i, b in {inner}(enumerate(data)):\n\
                 \x20       for t in {inner}(b):\n\
                 \x20           flor.log('tok', t)\n\
                 \x20       flor.log('loss', 1)\n\
                 \x20   flor.log('acc', 2)\n"
            ));
            let got: Vec<(&str, Vec<String>)> = i
                .sites
                .iter()
                .map(|s| (s.name.as_str(), s.loops.clone()))
                .collect();
            let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            assert_eq!(
                got,
                [
                    ("tok", names(&["epoch", "step", "loop_2"])),
                    ("loss", names(&["epoch", "step"])),
                    ("acc", names(&["epoch"])),
                ],
                "{import}"
            );
            assert_eq!(i.loop_names(), ["epoch", "step", "loop_2"], "{import}");
        }
    }

    #[test]
    fn named_loops_do_not_count_towards_seed_depths() {
        // MTK counts only its own loops: an unnamed loop inside a named one is its `epoch`.
        let i = info(
            "import flor\n\
             def train(data):\n\
             \x20   for b in flor.loop(data):\n\
             \x20       flor.log('loss', b)\n\
             for d in flor.loop('dataset', sets):\n\
             \x20   train(d)\n",
        );
        assert_eq!(i.sites[0].loops, ["dataset".to_owned(), "epoch".to_owned()]);
        let loops: Vec<(&str, usize)> =
            i.loops.iter().map(|l| (l.name.as_str(), l.level)).collect();
        assert_eq!(loops, [("epoch", 2), ("dataset", 1)]);
    }

    #[test]
    fn recursion_does_not_loop_forever() {
        let i = info("import flor\ndef f(n):\n    flor.log('n', n)\n    f(n - 1)\nf(3)\n");
        assert_eq!(i.sites[0].level, 0);
    }
}

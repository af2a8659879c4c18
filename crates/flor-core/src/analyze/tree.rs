//! A parsed Python script as a flat, pre-ordered arena of syntax nodes.
//!
//! tree-sitter gives a concrete syntax tree with punctuation, keywords and comments. Matching wants
//! less: only the named nodes, each with a label (its grammar kind), a value (the text of a leaf, or
//! the operator and keyword tokens of an inner node) and two hashes (exact, and shape-only, which
//! ignores values so that a renamed variable still has the shape of the original). Comments are
//! dropped from the tree, never from the source: splicing works on byte offsets into the original text.
//!
//! Nodes are stored in pre-order, so the descendants of node `i` are exactly `i + 1 .. i + size`.

use std::hash::{DefaultHasher, Hash, Hasher};

/// Index of a node in its [`Tree`].
pub(crate) type NodeId = usize;

/// One named syntax node.
#[derive(Debug)]
pub(crate) struct Node {
    /// Grammar kind, for example `identifier` or `for_statement`.
    pub kind: &'static str,
    /// Name of the grammar field this node fills in its parent (`function`, `attribute`, ...).
    pub field: Option<&'static str>,
    /// Leaf text, or the anonymous tokens of an inner node joined by spaces.
    pub value: Box<str>,
    pub parent: Option<NodeId>,
    pub children: Vec<NodeId>,
    /// Number of nodes in this subtree, itself included.
    pub size: usize,
    /// 1 for a leaf.
    pub height: usize,
    /// Hash of kind, value and children: equal hashes mean isomorphic subtrees.
    pub hash: u64,
    /// Hash of kind and children only: equal shapes mean the same code up to names and literals.
    pub shape: u64,
    pub start: usize,
    pub end: usize,
    /// 0-based row of the first byte.
    pub row: usize,
}

/// A whole script: its source text and its nodes; node 0 is the `module`.
#[derive(Debug)]
pub(crate) struct Tree<'s> {
    pub src: &'s str,
    pub nodes: Vec<Node>,
}

/// Where the grammar could not make sense of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line.
    pub line: usize,
}

impl<'s> Tree<'s> {
    /// Parses `src` as Python; fails at the first syntax error.
    pub fn parse(src: &'s str) -> Result<Self, SyntaxError> {
        let mut parser = tree_sitter::Parser::new();
        // The grammar is compiled in; a version mismatch would be a build error of this crate,
        // so a failure here is reported as a failure to parse the first line.
        parser
            .set_language(&tree_sitter_python::LANGUAGE.into())
            .map_err(|_| SyntaxError { line: 1 })?;
        let ts = parser.parse(src, None).ok_or(SyntaxError { line: 1 })?;
        let root = ts.root_node();
        if root.has_error() {
            return Err(SyntaxError {
                line: first_error_row(root) + 1,
            });
        }
        let mut tree = Tree {
            src,
            nodes: Vec::with_capacity(src.len() / 4),
        };
        tree.add(root);
        Ok(tree)
    }

    /// Copies the named nodes in pre-order with one cursor and no recursion (a long chain of
    /// `a + b + ...` nests deeper than a thread's stack would allow), then fills sizes, heights
    /// and hashes from the leaves up: children always come after their parent.
    fn add(&mut self, root: tree_sitter::Node) {
        let mut tokens: Vec<Vec<&'static str>> = Vec::new();
        let mut cursor = root.walk();
        // The arena node that each cursor depth belongs to.
        let mut owners: Vec<NodeId> = Vec::new();
        loop {
            let ts = cursor.node();
            let parent = owners.last().copied();
            let mut descend = false;
            if ts.is_extra() {
                // Comments live in the source, not in the tree.
            } else if ts.is_named() || parent.is_none() {
                let id = self.nodes.len();
                self.nodes.push(Node {
                    kind: ts.kind(),
                    field: cursor.field_name(),
                    value: Box::from(""),
                    parent,
                    children: Vec::new(),
                    size: 1,
                    height: 1,
                    hash: 0,
                    shape: 0,
                    start: ts.start_byte(),
                    end: ts.end_byte(),
                    row: ts.start_position().row,
                });
                tokens.push(Vec::new());
                if let Some(p) = parent {
                    self.nodes[p].children.push(id);
                }
                if cursor.goto_first_child() {
                    owners.push(id);
                    descend = true;
                }
            } else if let Some(p) = parent {
                tokens[p].push(ts.kind());
            }
            if descend {
                continue;
            }
            // Next sibling, or climb until there is one.
            loop {
                if cursor.goto_next_sibling() {
                    break;
                }
                if !cursor.goto_parent() {
                    self.finish(tokens);
                    return;
                }
                owners.pop();
            }
        }
    }

    fn finish(&mut self, tokens: Vec<Vec<&'static str>>) {
        for id in (0..self.nodes.len()).rev() {
            let node = &self.nodes[id];
            let value: Box<str> = if node.children.is_empty() {
                Box::from(self.src.get(node.start..node.end).unwrap_or(""))
            } else {
                tokens[id].join(" ").into_boxed_str()
            };
            let mut hash = DefaultHasher::new();
            let mut shape = DefaultHasher::new();
            node.kind.hash(&mut hash);
            node.kind.hash(&mut shape);
            value.hash(&mut hash);
            let (mut size, mut height) = (1, 1);
            for &c in &node.children {
                let child = &self.nodes[c];
                child.hash.hash(&mut hash);
                child.shape.hash(&mut shape);
                size += child.size;
                height = height.max(child.height + 1);
            }
            let node = &mut self.nodes[id];
            node.value = value;
            node.size = size;
            node.height = height;
            node.hash = hash.finish();
            node.shape = shape.finish();
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Source text of a node.
    pub fn text(&self, id: NodeId) -> &'s str {
        let n = &self.nodes[id];
        self.src.get(n.start..n.end).unwrap_or("")
    }

    /// 1-based line of a node's first byte.
    pub fn line(&self, id: NodeId) -> usize {
        self.nodes[id].row + 1
    }

    /// Whether `id` lies in the subtree of `root` (itself included).
    pub fn contains(&self, root: NodeId, id: NodeId) -> bool {
        root <= id && id < root + self.nodes[root].size
    }

    /// The ancestors of `id`, nearest first, itself excluded.
    pub fn ancestors(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::successors(self.nodes[id].parent, move |&p| self.nodes[p].parent)
    }

    /// Whether a node is a statement: a direct child of a block or of the module.
    pub fn is_statement(&self, id: NodeId) -> bool {
        self.nodes[id]
            .parent
            .is_some_and(|p| is_block(self.nodes[p].kind))
    }

    /// The statement that contains `id` (itself if it is one).
    pub fn statement_of(&self, id: NodeId) -> Option<NodeId> {
        std::iter::once(id)
            .chain(self.ancestors(id))
            .find(|&a| self.is_statement(a))
    }

    /// The child of `node` in the grammar field `field`.
    pub fn field(&self, node: NodeId, field: &str) -> Option<NodeId> {
        self.nodes[node]
            .children
            .iter()
            .copied()
            .find(|&c| self.nodes[c].field == Some(field))
    }

    /// Whether an identifier stands for a variable, not for an attribute or keyword-argument name.
    pub fn is_variable(&self, id: NodeId) -> bool {
        let n = &self.nodes[id];
        if n.kind != "identifier" {
            return false;
        }
        let Some(p) = n.parent else { return false };
        let parent = self.nodes[p].kind;
        !matches!(
            (parent, n.field),
            ("attribute", Some("attribute")) | ("keyword_argument", Some("name"))
        )
    }

    /// Byte offset of the start of the line holding `offset`.
    pub fn line_start(&self, offset: usize) -> usize {
        self.src[..offset].rfind('\n').map_or(0, |i| i + 1)
    }

    /// The whitespace before a node on its line, or `None` when code precedes it there.
    pub fn indent_of(&self, id: NodeId) -> Option<&'s str> {
        let start = self.nodes[id].start;
        let prefix = &self.src[self.line_start(start)..start];
        prefix
            .chars()
            .all(|c| c == ' ' || c == '\t')
            .then_some(prefix)
    }
}

/// Whether a node kind holds a sequence of statements.
pub(crate) fn is_block(kind: &str) -> bool {
    matches!(kind, "block" | "module")
}

fn first_error_row(root: tree_sitter::Node) -> usize {
    let mut node = root;
    'down: loop {
        if node.is_error() || node.is_missing() {
            return node.start_position().row;
        }
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.has_error() {
                node = child;
                continue 'down;
            }
        }
        return node.start_position().row;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_code_keeps_its_shape() {
        let a = Tree::parse("loss = criterion(out, y)  # c\n").unwrap();
        let b = Tree::parse("loss = crit(out, y)\n").unwrap();
        assert_ne!(a.node(1).hash, b.node(1).hash);
        assert_eq!(a.node(1).shape, b.node(1).shape);
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn pre_order_descendants_are_contiguous() {
        let t = Tree::parse("for x in y:\n    f(x)\n    g = 1\n").unwrap();
        for (i, n) in t.nodes.iter().enumerate() {
            for &c in &n.children {
                assert!(t.contains(i, c));
                assert_eq!(t.node(c).parent, Some(i));
            }
        }
        assert_eq!(t.node(0).size, t.len());
    }

    #[test]
    fn syntax_errors_name_their_line() {
        let err = Tree::parse("x = 1\ny = (\nz = 2\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let src = format!("x = {}1\n", "a + ".repeat(20_000));
        let t = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || Tree::parse(&src).map(|t| (t.len(), t.node(0).height)))
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert!(t.0 > 40_000 && t.1 > 20_000, "{t:?}");
    }

    #[test]
    fn attribute_names_are_not_variables() {
        let t = Tree::parse("f(a.b, c=d)\n").unwrap();
        let vars: Vec<&str> = (0..t.len())
            .filter(|&i| t.is_variable(i))
            .map(|i| t.text(i))
            .collect();
        assert_eq!(vars, ["f", "a", "d"]);
    }
}

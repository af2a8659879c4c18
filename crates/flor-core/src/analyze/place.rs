//! Where a statement goes in the old version, what it says there, and the splice.
//!
//! The anchor is the counterpart of the statement's nearest matched preceding sibling (insert after
//! it), else the counterpart of its enclosing block (insert at the start), else the counterpart of
//! its nearest matched following sibling (insert before it). An anchor only counts when it sits in
//! the same loops as the statement does today, so a statement never silently changes loop level.
//! The text is today's statement with its free variables renamed and its `flor.log` spelled the way
//! the old version imports FlorDB, re-indented to the anchor's indentation. The splice inserts whole
//! lines and leaves every other byte of the old file as it was.

use super::gumtree::Mapping;
use super::rename::{free_variables, is_attribute_name, Renames};
use super::sites::Script;
use super::tree::{is_block, NodeId, Tree};
use super::Reason;

/// A statement ready to splice: `text` (whole lines, no final newline) goes in at byte `offset`.
#[derive(Debug, Clone)]
pub(crate) struct Insertion {
    pub offset: usize,
    /// Position of the statement in the new version, to keep statements sharing an offset in order.
    pub order: NodeId,
    pub text: String,
}

/// What the new and old versions and their matching know, shared by every statement.
pub(crate) struct Context<'a, 's> {
    pub new: &'a Script<'a, 's>,
    pub old: &'a Script<'a, 's>,
    pub mapping: &'a Mapping,
    pub renames: &'a Renames<'s>,
    /// How the old version spells `flor.log`, if it imports FlorDB at all.
    pub log_spelling: Option<String>,
}

enum Anchor {
    After(NodeId),
    Start(NodeId),
    Before(NodeId),
}

impl<'s> Context<'_, 's> {
    fn a(&self) -> &Tree<'s> {
        self.new.tree
    }

    fn b(&self) -> &Tree<'s> {
        self.old.tree
    }

    /// Places the statement `stmt` (holding the log call `call`) of the new version. Also
    /// returns the free names that have no counterpart in the old version (definitions to
    /// carry from today's script, see `carry.rs`).
    pub fn place(
        &self,
        stmt: NodeId,
        call: NodeId,
        excluded: &[bool],
    ) -> Result<(Insertion, Vec<&'s str>), Reason> {
        let (a, b) = (self.a(), self.b());
        let loops = self.new.chain(stmt);
        for (&l, name) in loops.iter().zip(self.new.chain_names(&loops)) {
            let mapped = self
                .mapping
                .dst_of(l)
                .is_some_and(|d| self.old.loops.contains_key(&d));
            if !mapped && !self.old.chain_names_all().contains(&name) {
                return Err(Reason::MissingLoop { name });
            }
        }
        let mut mismatch = None;
        let mut chosen = None;
        for anchor in self.anchors(stmt, excluded) {
            let site = match anchor {
                Anchor::After(d) | Anchor::Before(d) => d,
                Anchor::Start(block) => b.node(block).children.first().copied().unwrap_or(block),
            };
            let found = self.old.chain(site);
            if self.same_loops(&loops, &found) {
                chosen = Some((anchor, site));
                break;
            }
            mismatch.get_or_insert(found);
        }
        let Some((anchor, site)) = chosen else {
            return Err(match mismatch {
                Some(found) => Reason::LevelMismatch {
                    expected: self.new.chain_names(&loops),
                    found: self.old.chain_names(&found),
                },
                None => self.no_context(stmt),
            });
        };
        let indent = b
            .indent_of(site)
            .ok_or(Reason::SharedLine { line: b.line(site) })?;
        let offset = match anchor {
            Anchor::After(d) => line_after(b.src, b.node(d).end),
            Anchor::Before(d) => b.line_start(b.node(d).start),
            Anchor::Start(block) => self.block_start(block, site),
        };
        let (text, unbound) = self.rewrite(stmt, call, site)?;
        let text = reindent(&text, a.indent_of(stmt).unwrap_or(""), indent);
        let ins = Insertion {
            offset,
            order: stmt,
            text,
        };
        Ok((ins, unbound))
    }

    /// Candidate anchors, best first.
    fn anchors(&self, stmt: NodeId, excluded: &[bool]) -> Vec<Anchor> {
        let (a, b) = (self.a(), self.b());
        let Some(parent) = a.node(stmt).parent else {
            return Vec::new();
        };
        let siblings = &a.node(parent).children;
        let counterpart = |s: NodeId| {
            (!excluded[s])
                .then(|| self.mapping.dst_of(s))
                .flatten()
                .filter(|&d| b.is_statement(d))
        };
        let mut out: Vec<Anchor> = siblings
            .iter()
            .rev()
            .filter(|&&s| s < stmt)
            .filter_map(|&s| counterpart(s))
            .map(Anchor::After)
            .collect();
        if let Some(block) = self
            .mapping
            .dst_of(parent)
            .filter(|&d| is_block(b.node(d).kind))
        {
            out.push(Anchor::Start(block));
        }
        out.extend(
            siblings
                .iter()
                .filter(|&&s| s > stmt)
                .filter_map(|&s| counterpart(s))
                .map(Anchor::Before),
        );
        out
    }

    /// Whether two loop chains are the same loops: same depth, and each pair of loops either has
    /// the same name or was matched.
    fn same_loops(&self, new: &[NodeId], old: &[NodeId]) -> bool {
        let (new_names, old_names) = (self.new.chain_names(new), self.old.chain_names(old));
        new.len() == old.len()
            && (0..new.len()).all(|i| {
                self.mapping.dst_of(new[i]) == Some(old[i]) || new_names[i] == old_names[i]
            })
    }

    fn no_context(&self, stmt: NodeId) -> Reason {
        let a = self.a();
        // Name the innermost enclosing statement: it is what the old version lacks.
        let outer = a.ancestors(stmt).find(|&n| a.is_statement(n));
        match outer {
            Some(n) => Reason::NoContext {
                kind: a
                    .node(n)
                    .kind
                    .trim_end_matches("_statement")
                    .replace('_', " "),
                line: a.line(n),
            },
            None => Reason::NoContext {
                kind: "module".to_owned(),
                line: 1,
            },
        }
    }

    /// Where the first line of a block's body goes: right after its header line, above any
    /// comment that introduces the first statement; at the first statement for the module.
    fn block_start(&self, block: NodeId, first: NodeId) -> usize {
        let b = self.b();
        let node = b.node(block);
        let Some(parent) = node.parent.filter(|_| node.kind == "block") else {
            return b.line_start(b.node(first).start);
        };
        let header_end = b
            .node(parent)
            .children
            .iter()
            .copied()
            .take_while(|&c| c != block)
            .last()
            .map_or(b.node(parent).start, |c| b.node(c).end);
        line_after(b.src, header_end).min(b.line_start(b.node(first).start))
    }

    /// Today's statement text in the old version's names.
    fn rewrite(
        &self,
        stmt: NodeId,
        call: NodeId,
        site: NodeId,
    ) -> Result<(String, Vec<&'s str>), Reason> {
        let (a, b) = (self.a(), self.b());
        let function = a.field(call, "function").unwrap_or(call);
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        let mut unbound = Vec::new();
        for v in free_variables(a, stmt, &[function]) {
            let name = a.text(v);
            match self.renames.translate(a, v, b, site, name) {
                Some(old) if old == name => {}
                Some(old) => edits.push((a.node(v).start, a.node(v).end, old.to_owned())),
                None => unbound.push(name),
            }
        }
        let (start, end) = (a.node(stmt).start, a.node(stmt).end);
        for n in stmt..stmt + a.node(stmt).size {
            if is_attribute_name(a, n) && !a.contains(function, n) {
                let old = self.renames.translate_attribute(a.text(n));
                if old != a.text(n) {
                    edits.push((a.node(n).start, a.node(n).end, old.to_owned()));
                }
            }
        }
        let spelling = self.log_spelling.as_deref().ok_or(Reason::NoFlorImport)?;
        if a.text(function) != spelling {
            edits.push((
                a.node(function).start,
                a.node(function).end,
                spelling.to_owned(),
            ));
        }
        edits.sort_by_key(|e| e.0);
        let mut out = String::with_capacity(end - start);
        let mut at = start;
        for (s, e, text) in edits {
            out.push_str(&a.src[at..s]);
            out.push_str(&text);
            at = e;
        }
        out.push_str(&a.src[at..end]);
        Ok((out, unbound))
    }

    /// The leaf tokens of a log statement, for deciding whether two statements are the same: the
    /// call's function becomes one token, quotes are unified and, on the new side, names translated.
    /// `site` is the old statement compared with.
    pub fn signature(
        &self,
        old_side: bool,
        stmt: NodeId,
        call: NodeId,
        site: NodeId,
    ) -> Vec<String> {
        let t = if old_side { self.b() } else { self.a() };
        let function = t.field(call, "function").unwrap_or(call);
        let mut out = Vec::new();
        let mut n = stmt;
        let end = stmt + t.node(stmt).size;
        while n < end {
            if n == function {
                out.push("<log>".to_owned());
                n += t.node(n).size;
                continue;
            }
            let node = t.node(n);
            if node.children.is_empty() {
                let text = t.text(n);
                let token = match node.kind {
                    "string_start" | "string_end" => text.replace('\'', "\""),
                    "identifier" if !old_side && t.is_variable(n) => self
                        .renames
                        .translate(t, n, self.b(), site, text)
                        .unwrap_or(text)
                        .to_owned(),
                    "identifier" if !old_side && is_attribute_name(t, n) => {
                        self.renames.translate_attribute(text).to_owned()
                    }
                    _ => text.to_owned(),
                };
                out.push(token);
            }
            n += 1;
        }
        out
    }
}

impl Script<'_, '_> {
    /// Every loop name in the script, owned.
    fn chain_names_all(&self) -> Vec<String> {
        self.loops.keys().map(|&l| self.loop_name(l)).collect()
    }
}

/// The byte after the end of the line holding `offset` (the end of the file if it has no newline).
pub(crate) fn line_after(src: &str, offset: usize) -> usize {
    src[offset..]
        .find('\n')
        .map_or(src.len(), |i| offset + i + 1)
}

/// Moves a statement from indentation `from` to `to`, line by line.
pub(crate) fn reindent(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len() + to.len());
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(to);
            out.push_str(line.strip_prefix(from).unwrap_or(line));
        } else {
            out.push_str(to);
            out.push_str(line);
        }
    }
    out
}

/// Inserts whole lines into `src`; returns the new source and the 1-based first line of each
/// insertion, in the order given.
pub(crate) fn splice(src: &str, insertions: &[Insertion]) -> (String, Vec<usize>) {
    let eol = if src.contains("\r\n") { "\r\n" } else { "\n" };
    let mut order: Vec<usize> = (0..insertions.len()).collect();
    order.sort_by_key(|&i| (insertions[i].offset, insertions[i].order));
    let mut out = String::with_capacity(src.len() + 256);
    let mut lines = vec![0; insertions.len()];
    let mut at = 0;
    for i in order {
        let ins = &insertions[i];
        out.push_str(&src[at..ins.offset]);
        at = ins.offset;
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(eol);
        }
        lines[i] = out.matches('\n').count() + 1;
        for line in ins.text.lines() {
            out.push_str(line);
            out.push_str(eol);
        }
    }
    out.push_str(&src[at..]);
    (out, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_keeps_every_other_byte() {
        let src = "a = 1\r\nb = 2";
        let ins = [
            Insertion {
                offset: src.len(),
                order: 2,
                text: "c = 3".into(),
            },
            Insertion {
                offset: 7,
                order: 1,
                text: "x = 0".into(),
            },
        ];
        let (out, lines) = splice(src, &ins);
        assert_eq!(out, "a = 1\r\nx = 0\r\nb = 2\r\nc = 3\r\n");
        assert_eq!(lines, [4, 2]);
    }

    #[test]
    fn reindent_moves_continuation_lines() {
        let got = reindent("f(a,\n      b)", "    ", "\t");
        assert_eq!(got, "\tf(a,\n\t  b)");
    }
}

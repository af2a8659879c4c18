//! GumTree matching (Falleri et al., ASE 2014) between two [`Tree`]s, tuned for statements.
//!
//! Phases, each only adding pairs of nodes with the same kind:
//! 1. *top-down*: the highest isomorphic subtrees (equal exact hashes, height at least
//!    [`MIN_HEIGHT`]); a subtree with several isomorphic partners is settled by how well the parents
//!    match, then by relative position;
//! 2. *bottom-up*: an unmatched inner node is paired with the unmatched node of the same kind that
//!    holds the most counterparts of its descendants, if their dice exceeds [`MIN_DICE`];
//! 3. *recovery*, under every matched pair: unmatched children are paired in order by exact hash;
//!    statements then by shared tokens (`scaler.step(optimizer)` is the new `optimizer.step()`);
//!    then children in order by shape (the same code up to names: this finds renamed variables,
//!    but a leaf only pairs with a differently named leaf when neither name occurs on the other
//!    side); then by a kind that occurs once on each side;
//! 4. *rescue*: statements still unmatched pair with an unmatched old statement sharing most of
//!    their tokens, wherever it is, because code moved into a new function has no matched
//!    container to be recovered under.
//!
//! Source nodes marked `excluded` (the statements being propagated) never take part: the new
//! statement can therefore never be mistaken for a look-alike in the old version.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::tree::{is_block, NodeId, Tree};

/// Subtrees lower than this are left to the bottom-up and recovery phases.
pub(crate) const MIN_HEIGHT: usize = 2;
/// Containers match when more than this share of their descendants match.
pub(crate) const MIN_DICE: f64 = 0.5;
/// Statements paired only by kind must share this share of their leaf tokens.
const MIN_TOKEN_DICE: f64 = 0.5;

/// A one-to-one mapping between the nodes of a source and a destination tree.
#[derive(Debug)]
pub(crate) struct Mapping {
    src: Vec<Option<NodeId>>,
    dst: Vec<Option<NodeId>>,
}

impl Mapping {
    /// The destination counterpart of a source node.
    pub fn dst_of(&self, src: NodeId) -> Option<NodeId> {
        self.src[src]
    }

    /// Every matched pair, in source pre-order.
    pub fn pairs(&self) -> impl Iterator<Item = (NodeId, NodeId)> + '_ {
        self.src
            .iter()
            .enumerate()
            .filter_map(|(s, d)| d.map(|d| (s, d)))
    }
}

/// Matches `src` (the new version) against `dst` (the old one).
pub(crate) fn match_trees(src: &Tree, dst: &Tree, excluded: &[bool]) -> Mapping {
    let mut m = Matcher {
        a: src,
        b: dst,
        excluded,
        depth: 0,
        tokens: RefCell::default(),
        map: Mapping {
            src: vec![None; src.len()],
            dst: vec![None; dst.len()],
        },
    };
    m.top_down();
    m.bottom_up();
    // A last pass of recovery under every pair, now that all containers are known: bottom-up only
    // recovers under the pairs it makes itself.
    for s in 0..src.len() {
        if let Some(d) = m.map.src[s] {
            m.recover(s, d);
        }
    }
    m.rescue_statements();
    m.map
}

struct Matcher<'a, 's> {
    a: &'a Tree<'s>,
    b: &'a Tree<'s>,
    excluded: &'a [bool],
    map: Mapping,
    /// How deep `recover` is nested; past [`MAX_RECOVERY_DEPTH`] it leaves the rest to the final
    /// pre-order pass, so deeply nested expressions cannot exhaust the stack.
    depth: usize,
    /// The own tokens of statements asked about by [`Matcher::leaves_agree`], by side and node.
    tokens: RefCell<HashMap<(bool, NodeId), Tokens<'s>>>,
}

const MAX_RECOVERY_DEPTH: usize = 128;

/// Token counts of a statement's own code.
type Tokens<'s> = HashMap<&'s str, usize>;

impl Matcher<'_, '_> {
    fn free(&self, s: NodeId, d: NodeId) -> bool {
        !self.excluded[s] && self.map.src[s].is_none() && self.map.dst[d].is_none()
    }

    fn pair(&mut self, s: NodeId, d: NodeId) {
        if self.free(s, d) {
            self.map.src[s] = Some(d);
            self.map.dst[d] = Some(s);
        }
    }

    /// Pairs two subtrees node by node; valid when they have the same shape, because then their
    /// pre-orders line up.
    fn pair_subtrees(&mut self, s: NodeId, d: NodeId) {
        for k in 0..self.a.node(s).size {
            if self.a.node(s + k).kind == self.b.node(d + k).kind {
                self.pair(s + k, d + k);
            }
        }
    }

    /// Dice of two subtrees: the share of their descendants that are matched to each other.
    fn dice(&self, s: NodeId, d: NodeId) -> f64 {
        let (ns, nd) = (self.a.node(s).size - 1, self.b.node(d).size - 1);
        if ns + nd == 0 {
            return 0.0;
        }
        let common = (s + 1..s + 1 + ns)
            .filter(|&x| self.map.src[x].is_some_and(|y| self.b.contains(d, y) && y != d))
            .count();
        2.0 * common as f64 / (ns + nd) as f64
    }

    /// How far apart two nodes sit, as shares of their files.
    fn distance(&self, s: NodeId, d: NodeId) -> f64 {
        let ps = s as f64 / self.a.len() as f64;
        let pd = d as f64 / self.b.len() as f64;
        (ps - pd).abs()
    }

    fn top_down(&mut self) {
        let mut qa = HeightQueue::default();
        let mut qb = HeightQueue::default();
        qa.push(self.a, 0, self.excluded);
        qb.push(self.b, 0, &[]);
        let mut ambiguous: Vec<(NodeId, NodeId)> = Vec::new();
        while let (Some(ha), Some(hb)) = (qa.max(), qb.max()) {
            if ha.min(hb) < MIN_HEIGHT {
                break;
            }
            if ha > hb {
                for s in qa.pop(ha) {
                    qa.open(self.a, s, self.excluded);
                }
                continue;
            }
            if hb > ha {
                for d in qb.pop(hb) {
                    qb.open(self.b, d, &[]);
                }
                continue;
            }
            let (la, lb) = (qa.pop(ha), qb.pop(hb));
            let mut groups: HashMap<u64, (Vec<NodeId>, Vec<NodeId>)> = HashMap::new();
            for &s in &la {
                groups.entry(self.a.node(s).hash).or_default().0.push(s);
            }
            for &d in &lb {
                groups.entry(self.b.node(d).hash).or_default().1.push(d);
            }
            for &s in &la {
                let (xs, ys) = &groups[&self.a.node(s).hash];
                match (xs.len(), ys.len()) {
                    (_, 0) => qa.open(self.a, s, self.excluded),
                    (1, 1) => self.pair_subtrees(s, ys[0]),
                    _ => ambiguous.extend(ys.iter().map(|&d| (s, d))),
                }
            }
            for &d in &lb {
                if groups[&self.b.node(d).hash].0.is_empty() {
                    qb.open(self.b, d, &[]);
                }
            }
        }
        let parent_dice =
            |m: &Self, s: NodeId, d: NodeId| match (m.a.node(s).parent, m.b.node(d).parent) {
                (Some(ps), Some(pd)) => m.dice(ps, pd),
                _ => 0.0,
            };
        let mut scored: Vec<(f64, f64, NodeId, NodeId)> = ambiguous
            .into_iter()
            .map(|(s, d)| (parent_dice(self, s, d), self.distance(s, d), s, d))
            .collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.total_cmp(&y.1)));
        for (_, _, s, d) in scored {
            if self.free(s, d) {
                self.pair_subtrees(s, d);
            }
        }
    }

    fn bottom_up(&mut self) {
        for s in post_order(self.a) {
            if self.excluded[s] || self.map.src[s].is_some() || self.a.node(s).children.is_empty() {
                continue;
            }
            if s == 0 {
                if self.map.dst[0].is_none() {
                    self.pair(0, 0);
                    self.recover(0, 0);
                }
                continue;
            }
            let kind = self.a.node(s).kind;
            let mut best: Option<(f64, f64, NodeId)> = None;
            let mut seen = Vec::new();
            for x in s + 1..s + self.a.node(s).size {
                let Some(y) = self.map.src[x] else { continue };
                for c in self.b.ancestors(y) {
                    if seen.contains(&c) {
                        break;
                    }
                    seen.push(c);
                    if self.b.node(c).kind != kind || self.map.dst[c].is_some() {
                        continue;
                    }
                    let dice = self.dice(s, c);
                    let dist = self.distance(s, c);
                    if dice > MIN_DICE
                        && best.is_none_or(|(bd, bx, _)| dice > bd || (dice == bd && dist < bx))
                    {
                        best = Some((dice, dist, c));
                    }
                }
            }
            if let Some((_, _, d)) = best {
                self.pair(s, d);
                self.recover(s, d);
            }
        }
    }

    /// Pairs the unmatched children of a matched pair, then recurses into new pairs.
    fn recover(&mut self, s: NodeId, d: NodeId) {
        if self.depth >= MAX_RECOVERY_DEPTH {
            return;
        }
        self.depth += 1;
        self.recover_children(s, d);
        self.depth -= 1;
    }

    fn recover_children(&mut self, s: NodeId, d: NodeId) {
        let (a, b) = (self.a, self.b);
        let statements = is_block(a.node(s).kind);
        let (xs, ys) = self.free_children(s, d);
        for (x, y) in lcs(&xs, &ys, |&x, &y| a.node(x).hash == b.node(y).hash) {
            self.pair_subtrees(x, y);
        }
        if statements {
            self.pair_alike_statements(s, d);
        }
        let (xs, ys) = self.free_children(s, d);
        let same_shape = |&x: &NodeId, &y: &NodeId| {
            a.node(x).shape == b.node(y).shape && (a.node(x).height > 1 || self.leaves_agree(x, y))
        };
        for (x, y) in lcs(&xs, &ys, same_shape) {
            self.pair_shaped(x, y);
        }
        let (xs, ys) = self.free_children(s, d);
        for &x in &xs {
            let kind = a.node(x).kind;
            let mut same_a = xs.iter().filter(|&&x2| a.node(x2).kind == kind);
            let mut same_b = ys.iter().filter(|&&y| b.node(y).kind == kind);
            if same_a.nth(1).is_some() {
                continue;
            }
            let (Some(&y), None) = (same_b.next(), same_b.next()) else {
                continue;
            };
            if statements && token_dice(a, x, b, y) < MIN_TOKEN_DICE {
                continue;
            }
            if a.node(x).height == 1 && !self.leaves_agree(x, y) {
                continue;
            }
            self.pair(x, y);
            self.recover(x, y);
        }
    }

    fn free_children(&self, s: NodeId, d: NodeId) -> (Vec<NodeId>, Vec<NodeId>) {
        let xs = self.a.node(s).children.iter().copied();
        let ys = self.b.node(d).children.iter().copied();
        (
            xs.filter(|&c| !self.excluded[c] && self.map.src[c].is_none())
                .collect(),
            ys.filter(|&c| self.map.dst[c].is_none()).collect(),
        )
    }

    /// Pairs two subtrees of the same shape node by node, skipping leaf pairs that disagree.
    fn pair_shaped(&mut self, s: NodeId, d: NodeId) {
        for k in 0..self.a.node(s).size {
            let (x, y) = (s + k, d + k);
            if self.a.node(x).kind == self.b.node(y).kind
                && (self.a.node(x).height > 1 || self.leaves_agree(x, y))
            {
                self.pair(x, y);
            }
        }
    }

    /// Whether two leaves may be paired: same text, or a rename, which means neither text occurs
    /// in the other side's statement. In `scaler.step(optimizer)` against `optimizer.step()`,
    /// `scaler` is new, not a rename of `optimizer`.
    fn leaves_agree(&self, x: NodeId, y: NodeId) -> bool {
        let (a, b) = (self.a, self.b);
        if a.node(x).value == b.node(y).value {
            return true;
        }
        let in_statement = |old: bool, n: NodeId, text: &str| {
            let t = if old { b } else { a };
            let stmt = t.statement_of(n).unwrap_or(n);
            let mut cache = self.tokens.borrow_mut();
            cache
                .entry((old, stmt))
                .or_insert_with(|| own_tokens(t, stmt))
                .contains_key(text)
        };
        !in_statement(false, x, b.text(y)) && !in_statement(true, y, a.text(x))
    }

    /// Pairs unmatched statements of the new version with unmatched statements of the old one
    /// that share most of their tokens, wherever they are: code moved into a new function has no
    /// matched container to be recovered under.
    fn rescue_statements(&mut self) {
        let (a, b) = (self.a, self.b);
        let mut ys: HashMap<&str, Vec<NodeId>> = HashMap::new();
        for y in 0..b.len() {
            if b.is_statement(y) && self.map.dst[y].is_none() {
                ys.entry(b.node(y).kind).or_default().push(y);
            }
        }
        for x in 0..a.len() {
            if self.excluded[x] || self.map.src[x].is_some() || !a.is_statement(x) {
                continue;
            }
            let Some(candidates) = ys.get(a.node(x).kind) else {
                continue;
            };
            let mut best: Option<(f64, f64, NodeId)> = None;
            for &y in candidates {
                if self.map.dst[y].is_some() {
                    continue;
                }
                let dice = token_dice(a, x, b, y);
                let dist = self.distance(x, y);
                if dice >= MIN_TOKEN_DICE
                    && best.is_none_or(|(bd, bx, _)| dice > bd || (dice == bd && dist < bx))
                {
                    best = Some((dice, dist, y));
                }
            }
            if let Some((_, _, y)) = best {
                self.pair(x, y);
                self.recover(x, y);
            }
        }
    }

    /// Pairs the statements of two matched blocks that are still unmatched and share most of
    /// their tokens, best pairs first: `scaler.step(optimizer)` is the new `optimizer.step()`.
    fn pair_alike_statements(&mut self, s: NodeId, d: NodeId) {
        let (a, b) = (self.a, self.b);
        let xs: Vec<NodeId> = a
            .node(s)
            .children
            .iter()
            .copied()
            .filter(|&c| !self.excluded[c] && self.map.src[c].is_none())
            .collect();
        let ys: Vec<NodeId> = b
            .node(d)
            .children
            .iter()
            .copied()
            .filter(|&c| self.map.dst[c].is_none())
            .collect();
        let mut scored = Vec::new();
        for &x in &xs {
            for &y in &ys {
                if a.node(x).kind != b.node(y).kind {
                    continue;
                }
                let dice = token_dice(a, x, b, y);
                if dice >= MIN_TOKEN_DICE {
                    scored.push((dice, self.distance(x, y), x, y));
                }
            }
        }
        scored.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.total_cmp(&q.1)));
        for (_, _, x, y) in scored {
            if self.free(x, y) {
                self.pair(x, y);
                self.recover(x, y);
            }
        }
    }
}

/// The leaf tokens of a statement, leaving out nested blocks: its own code.
fn own_tokens<'s>(t: &Tree<'s>, root: NodeId) -> Tokens<'s> {
    let mut out = HashMap::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        let node = t.node(n);
        if n != root && node.kind == "block" {
            continue;
        }
        if node.children.is_empty() {
            *out.entry(t.text(n)).or_insert(0) += 1;
        }
        stack.extend(node.children.iter().copied());
    }
    out
}

/// Dice of the leaf tokens of two statements: how alike their own code is.
fn token_dice(a: &Tree, x: NodeId, b: &Tree, y: NodeId) -> f64 {
    let (ta, tb) = (own_tokens(a, x), own_tokens(b, y));
    let total: usize = ta.values().sum::<usize>() + tb.values().sum::<usize>();
    if total == 0 {
        return 1.0;
    }
    let common: usize = ta
        .iter()
        .map(|(k, &n)| n.min(tb.get(k).copied().unwrap_or(0)))
        .sum();
    2.0 * common as f64 / total as f64
}

/// Longest common subsequence of two short lists, as index pairs in order.
fn lcs<T>(xs: &[T], ys: &[T], eq: impl Fn(&T, &T) -> bool) -> Vec<(T, T)>
where
    T: Copy,
{
    if xs.is_empty() || ys.is_empty() {
        return Vec::new();
    }
    let (n, m) = (xs.len(), ys.len());
    let mut table = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[at(i, j)] = if eq(&xs[i], &ys[j]) {
                table[at(i + 1, j + 1)] + 1
            } else {
                table[at(i + 1, j)].max(table[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n && j < m {
        if eq(&xs[i], &ys[j]) && table[at(i, j)] == table[at(i + 1, j + 1)] + 1 {
            out.push((xs[i], ys[j]));
            i += 1;
            j += 1;
        } else if table[at(i + 1, j)] >= table[at(i, j + 1)] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn post_order(t: &Tree) -> Vec<NodeId> {
    let mut out = Vec::with_capacity(t.len());
    let mut stack = vec![(0, false)];
    while let Some((n, done)) = stack.pop() {
        if done {
            out.push(n);
            continue;
        }
        stack.push((n, true));
        stack.extend(t.node(n).children.iter().rev().map(|&c| (c, false)));
    }
    out
}

/// Nodes waiting to be compared, by height.
#[derive(Default)]
struct HeightQueue(BTreeMap<usize, Vec<NodeId>>);

impl HeightQueue {
    fn push(&mut self, t: &Tree, n: NodeId, excluded: &[bool]) {
        if !excluded.get(n).copied().unwrap_or(false) {
            self.0.entry(t.node(n).height).or_default().push(n);
        }
    }

    fn open(&mut self, t: &Tree, n: NodeId, excluded: &[bool]) {
        for &c in &t.node(n).children {
            self.push(t, c, excluded);
        }
    }

    fn max(&self) -> Option<usize> {
        self.0.keys().next_back().copied()
    }

    fn pop(&mut self, h: usize) -> Vec<NodeId> {
        self.0.remove(&h).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(new: &str, old: &str) -> Vec<(String, String)> {
        let (a, b) = (Tree::parse(new).unwrap(), Tree::parse(old).unwrap());
        let m = match_trees(&a, &b, &vec![false; a.len()]);
        m.pairs()
            .filter(|&(s, _)| a.node(s).kind == "identifier")
            .map(|(s, d)| (a.text(s).to_owned(), b.text(d).to_owned()))
            .collect()
    }

    #[test]
    fn renamed_variables_are_paired() {
        let pairs = matched(
            "for x, y in flor.loop('step', loader):\n    out = model(x)\n    loss = criterion(out, y)\n",
            "for inputs, targets in flor.loop('step', train_loader):\n    outputs = net(inputs)\n    loss = crit(outputs, targets)\n",
        );
        for want in [
            ("x", "inputs"),
            ("model", "net"),
            ("out", "outputs"),
            ("loader", "train_loader"),
        ] {
            assert!(
                pairs.contains(&(want.0.to_owned(), want.1.to_owned())),
                "{want:?} not in {pairs:?}"
            );
        }
    }

    #[test]
    fn lcs_keeps_order() {
        let got = lcs(&[1, 2, 3, 4], &[2, 4, 3], |a, b| a == b);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (2, 2));
    }

    #[test]
    fn identical_trees_match_entirely() {
        let src = "import flor\nfor e in flor.loop('e', range(3)):\n    train(e)\n    x = 1\n";
        let (a, b) = (Tree::parse(src).unwrap(), Tree::parse(src).unwrap());
        let m = match_trees(&a, &b, &vec![false; a.len()]);
        assert!((0..a.len()).all(|s| m.dst_of(s) == Some(s)));
    }
}

//! Runs the statement-propagation corpus in `tests/propagation/` at the repository root.
//!
//! Each case is a folder `NN-category-slug` holding `old.py`, `new.py`, `stmts` (one selector per
//! line: a log name or `@LINE`), `expected.txt` (one outcome per line, as `Outcome` displays it)
//! and, when something is placed, `expected.py` (the old file with the statements spliced in;
//! without it the old file must come back unchanged). All were written by hand.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use flor_core::analyze::propagate;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/propagation")
}

fn check(dir: &Path) -> Result<(), String> {
    let read = |name: &str| {
        fs::read_to_string(dir.join(name)).map_err(|e| format!("cannot read {name}: {e}"))
    };
    let (old, new) = (read("old.py")?, read("new.py")?);
    let stmts = read("stmts")?;
    let stmts: Vec<&str> = stmts.lines().filter(|l| !l.trim().is_empty()).collect();
    let result = propagate(&new, &old, &stmts).map_err(|e| format!("error: {e}"))?;
    let got: String = result.outcomes.iter().map(|o| format!("{o}\n")).collect();
    let want = read("expected.txt")?;
    let mut problems = Vec::new();
    if got != want {
        problems.push(format!("outcomes differ\n--- want\n{want}--- got\n{got}"));
    }
    let want_src = if dir.join("expected.py").exists() {
        read("expected.py")?
    } else {
        old.clone()
    };
    if result.source != want_src {
        problems.push(format!(
            "spliced source differs:\n{}",
            similar::TextDiff::from_lines(&want_src, &result.source)
                .unified_diff()
                .header("expected.py", "got")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn corpus_cases_give_exactly_the_expected_result() {
    let mut dirs: Vec<PathBuf> = fs::read_dir(corpus())
        .expect("tests/propagation exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let only = std::env::var("CASE").unwrap_or_default();
    let mut by_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.contains(&only) {
            continue;
        }
        let category = name.split('-').nth(1).unwrap_or("?").to_owned();
        let entry = by_category.entry(category).or_default();
        entry.1 += 1;
        match check(dir) {
            Ok(()) => entry.0 += 1,
            Err(e) => failures.push(format!("== {name}\n{e}")),
        }
    }
    let total: usize = by_category.values().map(|v| v.1).sum();
    for (category, (pass, n)) in &by_category {
        eprintln!("{category:>10}: {pass}/{n}");
    }
    eprintln!("{}/{total} corpus cases pass", total - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        !only.is_empty() || total >= 40,
        "the corpus needs at least 40 cases, has {total}"
    );
}

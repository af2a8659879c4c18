//! Log statements whose value depends on the clock or on the machine (`dt = time.time() -
//! t0`, `torch.cuda.max_memory_allocated()`): no replay logs them again as recorded, so
//! replay's check of re-executed statements against the recorded values leaves them out.
//!
//! Flow-insensitive and by name: a name or attribute chain assigned from an expression
//! that calls a clock or machine function, or reads such a name, is clock-dependent; so
//! is a function of the script that returns one. Repeated until nothing changes.

use std::collections::HashSet;

use super::effects::Facts;
use super::sites::Api;
use super::tree::NodeId;

/// Last names of calls that read the clock or the machine's state.
const MACHINE: &[&str] = &[
    "perf_counter",
    "perf_counter_ns",
    "monotonic",
    "monotonic_ns",
    "process_time",
    "process_time_ns",
    "time_ns",
    "thread_time",
    "default_timer",
    "utcnow",
    "memory_allocated",
    "max_memory_allocated",
    "memory_reserved",
    "max_memory_reserved",
    "getrusage",
    "cpu_percent",
    "virtual_memory",
    "memory_info",
    "getpid",
    "gethostname",
    "elapsed_time",
];

/// The log call nodes whose value is clock-dependent.
pub(crate) fn clock_logs(f: &Facts) -> HashSet<NodeId> {
    let s = f.s;
    let t = s.tree;
    let mut tainted: HashSet<&str> = HashSet::new();
    let mut functions: HashSet<&str> = HashSet::new();
    let assignments: Vec<NodeId> = (0..t.len())
        .filter(|&n| {
            matches!(
                t.node(n).kind,
                "assignment" | "augmented_assignment" | "named_expression"
            )
        })
        .collect();
    let returns: Vec<(NodeId, &str)> = (0..t.len())
        .filter(|&n| t.node(n).kind == "return_statement")
        .filter_map(|n| {
            let def = t
                .ancestors(n)
                .find(|&a| t.node(a).kind == "function_definition")?;
            Some((n, t.text(t.field(def, "name")?)))
        })
        .collect();
    loop {
        let before = tainted.len() + functions.len();
        for &a in &assignments {
            let (target, value) = match t.node(a).kind {
                "named_expression" => (t.field(a, "name"), t.field(a, "value")),
                _ => (t.field(a, "left"), t.field(a, "right")),
            };
            let (Some(target), Some(value)) = (target, value) else {
                continue;
            };
            if clocky(f, value, &tainted, &functions) {
                for n in target..target + t.node(target).size {
                    if matches!(t.node(n).kind, "identifier" | "attribute") {
                        tainted.insert(t.text(n));
                    }
                }
            }
        }
        for &(r, name) in &returns {
            if clocky(f, r, &tainted, &functions) {
                functions.insert(name);
            }
        }
        if tainted.len() + functions.len() == before {
            break;
        }
    }
    s.log_calls
        .iter()
        .copied()
        .filter(|&call| {
            let args = f.arguments(call);
            let value = args
                .iter()
                .copied()
                .find(|&a| {
                    t.node(a).kind == "keyword_argument"
                        && t.field(a, "name").is_some_and(|n| t.text(n) == "value")
                })
                .and_then(|k| t.field(k, "value"))
                .or_else(|| {
                    args.iter()
                        .copied()
                        .filter(|&a| t.node(a).kind != "keyword_argument")
                        .nth(1)
                });
            value.is_some_and(|v| clocky(f, v, &tainted, &functions))
        })
        .collect()
}

/// Whether the expression at `root` calls a clock function or reads a tainted path.
fn clocky(f: &Facts, root: NodeId, tainted: &HashSet<&str>, functions: &HashSet<&str>) -> bool {
    let t = f.s.tree;
    (root..root + t.node(root).size).any(|n| match t.node(n).kind {
        "call" if f.s.api_of(n) != Some(Api::Log) => {
            let Some(function) = t.field(n, "function") else {
                return false;
            };
            let text = t.text(function);
            let last = text.rsplit('.').next().unwrap_or(text);
            MACHINE.contains(&last)
                || functions.contains(last)
                || text == "time.time"
                || text.ends_with("datetime.now")
                || text.ends_with("datetime.today")
                || (text == "time" && f.imported.contains("time") && imports_time_function(f))
        }
        "identifier" | "attribute" => tainted.contains(t.text(n)),
        _ => false,
    })
}

/// Whether the script says `from time import time` (so `time()` reads the clock).
fn imports_time_function(f: &Facts) -> bool {
    let t = f.s.tree;
    (0..t.len()).any(|n| {
        t.node(n).kind == "import_from_statement"
            && t.field(n, "module_name")
                .is_some_and(|m| t.text(m) == "time")
    })
}

#[cfg(test)]
mod tests {
    use crate::analyze::read_script;

    fn clock_names(src: &str) -> Vec<String> {
        read_script(src)
            .unwrap()
            .sites
            .into_iter()
            .filter(|s| s.clock)
            .map(|s| s.name.as_str().to_owned())
            .collect()
    }

    #[test]
    fn timings_and_memory_are_clock_dependent_losses_are_not() {
        let src = "\
import time
import torch
import flordb as flor
t0 = time.time()
def elapsed():
    return time.perf_counter() - start
for it in flor.loop('iter', range(3)):
    loss = step()
    t1 = time.time()
    dt = t1 - t0
    t0 = t1
    flor.log('loss', loss)
    flor.log('ms', dt * 1000)
    flor.log('mem', torch.cuda.max_memory_allocated() / 2**20)
    flor.log('wall', elapsed())
    flor.log('lr', get_lr(it))
";
        assert_eq!(clock_names(src), ["ms", "mem", "wall"]);
    }
}

//! Whether the code version recorded for a run is the code it ran. The snapshot reads
//! the working tree at the run's first FlorDB call; a source file the process read (the
//! script, its modules) that was modified after the process started and before that
//! snapshot may have been read in a form the snapshot does not hold (a sweep rewriting
//! `config.py` for the next run while this one imports), so the run is told, and the
//! run file says which files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The margin on either side of the window: the start time has a resolution of one
/// clock tick (10 ms), and a file's modification time comes from the kernel's coarse
/// clock, which lags the fine clock by up to a timer tick (4 ms at 250 Hz), so a file
/// written just after the snapshot began can carry a time a little before it.
const TICK: Duration = Duration::from_millis(10);

/// How long this process has existed, in seconds, from Linux's `/proc` (its start time
/// in clock ticks since boot against the uptime); `None` elsewhere.
pub(super) fn process_age() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is parenthesised and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // `starttime` is field 22 of the whole line, the 20th after the name.
    let ticks: f64 = fields.get(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // USER_HZ, the unit of /proc's tick counts, is 100 on every Linux architecture.
    let age = uptime - ticks / 100.0;
    (0.0..86_400.0 * 365.0).contains(&age).then_some(age)
}

/// When this process started; `None` where that cannot be read.
pub fn process_start() -> Option<SystemTime> {
    SystemTime::now().checked_sub(Duration::from_secs_f64(process_age()?))
}

/// The files among `files` inside `root` last modified after `start` and clearly before
/// `until`, when the snapshot began reading (paths relative to `root`, sorted); a
/// change within a tick of `until` is not one the snapshot can be said to have missed. Files outside the project (the standard
/// library, site-packages) are not the run's code version and are not looked at.
pub fn changed_between(
    root: &Path,
    files: &[PathBuf],
    start: SystemTime,
    until: SystemTime,
) -> Vec<String> {
    let threshold = start.checked_sub(TICK).unwrap_or(start);
    let until = until.checked_sub(TICK).unwrap_or(until);
    let mut changed: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(root).ok()?;
            if rel.starts_with(".flor") || rel.starts_with(".git") {
                return None;
            }
            let modified = std::fs::metadata(f).and_then(|m| m.modified()).ok()?;
            (modified > threshold && modified <= until).then(|| rel.to_string_lossy().into_owned())
        })
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_started_before_now() {
        let start = process_start().expect("linux /proc");
        let age = SystemTime::now().duration_since(start).unwrap();
        assert!(age < Duration::from_secs(3600), "{age:?}");
        assert!((0.0..3600.0).contains(&process_age().unwrap()));
    }

    #[test]
    fn only_project_files_changed_after_the_start_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let old = root.join("old.py");
        let new = root.join("pkg/new.py");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(&old, "x = 1").unwrap();
        let past = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        std::fs::write(&new, "y = 2").unwrap();
        let later = root.join("later.py");
        std::fs::write(&later, "z = 3").unwrap();
        let until = SystemTime::now() + Duration::from_secs(1);
        std::fs::File::options()
            .write(true)
            .open(&later)
            .unwrap()
            .set_modified(until - Duration::from_millis(2))
            .unwrap();
        let outside = std::env::temp_dir().join("flor-outside-project.py");
        let start = until - Duration::from_secs(5);
        let files = [old, new.clone(), new, later, outside, root.join("gone.py")];
        assert_eq!(
            changed_between(root, &files, start, until),
            vec!["pkg/new.py"]
        );
    }
}

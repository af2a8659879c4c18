//! Old versions, materialised for replay: each in its own linked worktree under
//! `.flor/worktrees/`, so the user's checkout (working tree, index, HEAD, branches,
//! stash) is never switched, reset or stashed. Worktrees are named after the process
//! that made them; one left behind by a process that died is removed by the next replay.
//!
//! A worktree is laid out so that a script finds what it found when it ran:
//!
//! ```text
//! .flor/worktrees/<pid>-<label>/          links to everything beside the repository
//!     <repo name>/                        the checkout of the old version
//!         data -> <repo>/data             the user's ignored files, as of the run's start
//! ```
//!
//! so `../data` from the checkout is the `data` folder beside the user's repository (as
//! in pytorch/examples), and ignored files the runs wrote after the replayed one started
//! (a `ckpt.pth` a resume block would load) are left out: [`Repo::ignored_as_of`].

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::Repo;
use crate::{Error, Result};

/// A linked worktree holding one commit, removed (with git's bookkeeping) when dropped.
#[derive(Debug)]
pub struct Worktree {
    repo: Repo,
    path: PathBuf,
    /// The folder holding the checkout and the links beside it.
    farm: PathBuf,
}

impl Worktree {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        self.repo.remove_worktree(&self.farm);
    }
}

/// The user's ignored files as a run saw them when it started: what to link into a
/// worktree, and what was left out because it was written after that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsOf {
    /// Folders to create (written since the start: their older entries are linked).
    pub dirs: Vec<String>,
    /// Paths to link, relative to the root.
    pub links: Vec<String>,
    /// Paths written after the start (or on it), relative to the root.
    pub left_out: Vec<String>,
}

impl AsOf {
    /// Creates the folders and links in `worktree`, pointing into the checkout at `root`.
    pub fn apply(&self, root: &Path, worktree: &Path) {
        for d in &self.dirs {
            let _ = std::fs::create_dir_all(worktree.join(d));
        }
        for rel in &self.links {
            let (src, dst) = (root.join(rel), worktree.join(rel));
            if dst.exists() || !dst.parent().is_some_and(Path::exists) {
                continue;
            }
            link(&src, &dst);
        }
    }
}

#[cfg(unix)]
fn link(src: &Path, dst: &Path) {
    let _ = std::os::unix::fs::symlink(src, dst);
}

#[cfg(not(unix))]
fn link(_src: &Path, _dst: &Path) {}

/// Entries looked at below the ignored paths before a folder is linked whole.
const AS_OF_BUDGET: usize = 20_000;

impl Repo {
    fn worktrees_dir(&self) -> PathBuf {
        self.root.join(".flor").join("worktrees")
    }

    /// Checks out `commit` (detached) into a new worktree named `label`, beside links to
    /// everything beside the repository (see the module's layout).
    pub fn add_worktree(&self, commit: &str, label: &str) -> Result<Worktree> {
        let dir = self.worktrees_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // `.flor/` keeps itself out of `git status` (as the store's layout does).
        let ignore = self.root.join(".flor").join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "*\n").map_err(|e| Error::io(&ignore, e))?;
        }
        let farm = dir.join(format!("{}-{label}", std::process::id()));
        if farm.exists() {
            self.remove_worktree(&farm);
        }
        std::fs::create_dir_all(&farm).map_err(|e| Error::io(&farm, e))?;
        let name = self
            .root
            .file_name()
            .map_or_else(|| "repo".into(), |n| n.to_os_string());
        if let Some(parent) = self.root.parent().and_then(|p| std::fs::read_dir(p).ok()) {
            for entry in parent.flatten().take(AS_OF_BUDGET) {
                if entry.file_name() != name {
                    link(&entry.path(), &farm.join(entry.file_name()));
                }
            }
        }
        let path = farm.join(&name);
        let target = path.to_string_lossy().into_owned();
        self.git(
            &[
                "worktree", "add", "--detach", "--force", "-q", &target, commit,
            ],
            None,
            None,
        )?;
        Ok(Worktree {
            repo: self.clone(),
            path,
            farm,
        })
    }

    /// The ignored files and folders of the checkout (see [`Repo::ignored_paths`]) as a
    /// run that started at `start` (Unix seconds) saw them: a path last written at or
    /// after `start` is left out, and a folder written since is entered to keep the
    /// older files in it. Without `start`, everything is linked.
    pub fn ignored_as_of(&self, start: Option<f64>) -> AsOf {
        let mut out = AsOf::default();
        let start = start.map(|s| UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0)));
        let mut budget = AS_OF_BUDGET;
        for rel in self.ignored_paths() {
            as_of(&self.root, &rel, start, &mut budget, &mut out);
        }
        out
    }

    fn remove_worktree(&self, path: &Path) {
        // Deleting the folder and pruning is git's own `worktree remove --force`, in one
        // git call instead of two.
        let _ = std::fs::remove_dir_all(path);
        let _ = self.git(&["worktree", "prune"], None, None);
    }

    /// Removes worktrees left behind by replays whose process is gone (killed, power loss).
    pub fn remove_stale_worktrees(&self) {
        let Ok(entries) = std::fs::read_dir(self.worktrees_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| p == std::process::id() || process_alive(p));
            if !alive {
                self.remove_worktree(&entry.path());
            }
        }
    }

    /// The untracked files of the user's checkout that git does not ignore, written
    /// after `start` (Unix seconds), relative to the root; `.flor/` excluded. A script
    /// that saves `ckpt.pth` beside itself without ignoring it leaves one: the run that
    /// wrote it did not see it as it is now.
    pub fn untracked_written_since(&self, start: Option<f64>) -> Vec<String> {
        let Some(start) = start.map(|s| UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0))) else {
            return Vec::new();
        };
        let listed = self
            .git(&["ls-files", "--others", "--exclude-standard"], None, None)
            .unwrap_or_default();
        listed
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(".flor/"))
            .filter(|l| {
                std::fs::symlink_metadata(self.root.join(l))
                    .and_then(|m| m.modified())
                    .is_ok_and(|written| written >= start)
            })
            .map(str::to_owned)
            .collect()
    }

    /// The bytes of `path` (relative to the root) in `commit`, if it has that file.
    pub fn file_bytes_at(&self, commit: &str, path: &str) -> Option<Vec<u8>> {
        self.run_git(
            &["cat-file", "blob", &format!("{commit}:{path}")],
            None,
            None,
            &[],
        )
        .ok()
    }

    /// The bytes of `path` (relative to the repository root) in `commit`.
    pub fn read_file_at(&self, commit: &str, path: &str) -> Result<String> {
        self.git_raw(&["show", &format!("{commit}:{path}")])
    }

    /// Whether `commit` exists in this repository.
    pub fn has_commit(&self, commit: &str) -> bool {
        self.rev(commit).is_some()
    }

    /// Ignored files and folders of the user's checkout (collapsed to the topmost
    /// ignored folder), relative to the root; `.flor/` excluded. Replay links them into
    /// each worktree so a script finds its `data/` as it did when it ran.
    pub fn ignored_paths(&self) -> Vec<String> {
        self.git(
            &[
                "ls-files",
                "--others",
                "--ignored",
                "--exclude-standard",
                "--directory",
                "--no-empty-directory",
            ],
            None,
            None,
        )
        .map(|out| {
            out.lines()
                .map(|l| l.trim_end_matches('/').to_string())
                .filter(|l| !l.is_empty() && l != ".flor" && !l.starts_with(".flor/"))
                .collect()
        })
        .unwrap_or_default()
    }
}

fn as_of(
    root: &Path,
    rel: &str,
    start: Option<std::time::SystemTime>,
    budget: &mut usize,
    out: &mut AsOf,
) {
    let path = root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return;
    };
    let written = meta.modified().ok();
    let newer = matches!((start, written), (Some(s), Some(w)) if w >= s);
    if !newer {
        out.links.push(rel.to_owned());
        return;
    }
    if !meta.is_dir() {
        out.left_out.push(rel.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        out.links.push(rel.to_owned());
        return;
    };
    let entries: Vec<_> = entries.flatten().collect();
    if entries.len() > *budget {
        // Too large to look through: as it is now.
        out.links.push(rel.to_owned());
        return;
    }
    *budget -= entries.len();
    out.dirs.push(rel.to_owned());
    for e in entries {
        let child = format!("{rel}/{}", e.file_name().to_string_lossy());
        as_of(root, &child, start, budget, out);
    }
}

/// Whether a process with this pid exists (Linux and macOS keep `/proc` or answer `kill -0`).
fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new(&format!("/proc/{pid}")).exists();
    }
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn worktree_holds_the_commit_and_leaves_the_checkout_alone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        std::fs::write(root.join(".gitignore"), "data/\n").unwrap();
        std::fs::write(root.join("train.py"), "v1\n").unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "v1"]);
        let v1 = git(root, &["rev-parse", "HEAD"]);
        std::fs::write(root.join("train.py"), "v2 uncommitted\n").unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        std::fs::write(root.join("data/x.csv"), "1\n").unwrap();
        let status = git(root, &["status", "--porcelain"]);

        let repo = Repo::discover(root).unwrap();
        assert_eq!(repo.read_file_at(&v1, "train.py").unwrap(), "v1\n");
        assert_eq!(repo.ignored_paths(), vec!["data".to_string()]);
        let wt = repo.add_worktree(&v1, "v1").unwrap();
        let path = wt.path().to_path_buf();
        assert_eq!(
            std::fs::read_to_string(path.join("train.py")).unwrap(),
            "v1\n"
        );
        // `../x` from the checkout is `x` beside the repository.
        assert_eq!(path.file_name(), root.file_name());
        assert_eq!(git(root, &["status", "--porcelain"]), status);
        drop(wt);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_to_string(root.join("train.py")).unwrap(),
            "v2 uncommitted\n"
        );
        assert_eq!(git(root, &["status", "--porcelain"]), status);
        assert_eq!(git(root, &["worktree", "list"]).lines().count(), 1);
    }

    #[test]
    fn ignored_files_written_after_a_run_started_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("beside.txt"), "b\n").unwrap();
        git(&root, &["init", "-q"]);
        std::fs::write(root.join(".gitignore"), "data/\nckpt.pth\nout/\n").unwrap();
        std::fs::create_dir(root.join("data")).unwrap();
        std::fs::write(root.join("data/x.csv"), "1\n").unwrap();
        std::fs::create_dir(root.join("out")).unwrap();
        std::fs::write(root.join("out/old.txt"), "o\n").unwrap();
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-qm", "v1"]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let start = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("ckpt.pth"), "weights\n").unwrap();
        std::fs::write(root.join("out/new.txt"), "n\n").unwrap();
        let repo = Repo::discover(&root).unwrap();
        let as_of = repo.ignored_as_of(Some(start));
        assert_eq!(as_of.left_out, vec!["ckpt.pth", "out/new.txt"]);
        assert_eq!(as_of.links, vec!["data", "out/old.txt"]);
        assert_eq!(as_of.dirs, vec!["out"]);
        assert!(repo.ignored_as_of(None).left_out.is_empty());
        let wt = repo
            .add_worktree(&git(&root, &["rev-parse", "HEAD"]), "v1")
            .unwrap();
        as_of.apply(&root, wt.path());
        assert!(wt.path().join("data/x.csv").exists());
        assert!(wt.path().join("out/old.txt").exists());
        assert!(!wt.path().join("out/new.txt").exists());
        assert!(!wt.path().join("ckpt.pth").exists());
        assert_eq!(
            std::fs::read_to_string(wt.path().join("../beside.txt")).unwrap(),
            "b\n"
        );
        drop(wt);
        assert!(dir.path().join("beside.txt").exists());
        assert!(root.join("data/x.csv").exists());
    }
}

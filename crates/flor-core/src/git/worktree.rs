//! Old versions, materialised for replay: each in its own linked worktree under
//! `.flor/worktrees/`, so the user's checkout (working tree, index, HEAD, branches,
//! stash) is never switched, reset or stashed. Worktrees are named after the process
//! that made them; one left behind by a process that died is removed by the next replay.

use std::path::{Path, PathBuf};

use super::Repo;
use crate::{Error, Result};

/// A linked worktree holding one commit, removed (with git's bookkeeping) when dropped.
#[derive(Debug)]
pub struct Worktree {
    repo: Repo,
    path: PathBuf,
}

impl Worktree {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        self.repo.remove_worktree(&self.path);
    }
}

impl Repo {
    fn worktrees_dir(&self) -> PathBuf {
        self.root.join(".flor").join("worktrees")
    }

    /// Checks out `commit` (detached) into a new worktree named `label`.
    pub fn add_worktree(&self, commit: &str, label: &str) -> Result<Worktree> {
        let dir = self.worktrees_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        // `.flor/` keeps itself out of `git status` (as the store's layout does).
        let ignore = self.root.join(".flor").join(".gitignore");
        if !ignore.exists() {
            std::fs::write(&ignore, "*\n").map_err(|e| Error::io(&ignore, e))?;
        }
        let path = dir.join(format!("{}-{label}", std::process::id()));
        if path.exists() {
            self.remove_worktree(&path);
        }
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
        })
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
}

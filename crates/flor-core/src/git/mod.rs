//! Code versions. Each run's code is snapshotted as a commit built from a temporary
//! index of the working tree, so the user's working tree, index, HEAD and branches stay
//! as they were; the commit is kept under `refs/flor/runs/<run>`. After the run a child
//! commit adds the run's JSONL file, off the exit path ([`pending`]). On a branch named
//! `flor.*` (the user's permission, as in the seed's `flor.shadow`) the branch itself
//! also advances.
//!
//! Everything goes through the user's own `git` program and configuration.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod worktree;

pub use worktree::{AsOf, Worktree};

use crate::record::RunId;
use crate::{Error, Result};

mod pending;
pub use pending::{
    finish_pending, finish_pending_unless_busy, has_pending, pending_dir, PendingRun,
};

/// Branches whose names start with this give FlorDB permission to commit to them.
pub const PERMISSION_PREFIX: &str = "flor.";

/// A git working tree.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    /// The environment git runs in, read once ([`Repo::with_env_snapshot`]); `None`:
    /// the process's own at each call.
    env: Option<std::sync::Arc<Vec<(std::ffi::OsString, std::ffi::OsString)>>>,
}

/// A run's code version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The snapshot commit (what `version` means in tables).
    pub commit: String,
    pub tree: String,
    /// The branch checked out when the run started; `None` on a detached HEAD.
    pub branch: Option<String>,
    /// HEAD's commit when the run started; `None` in a repository with no commits.
    pub head: Option<String>,
}

/// The working tree written into git at a run's start, before it becomes a commit.
#[derive(Debug, Clone)]
pub struct Captured {
    pub tree: String,
    branch: Option<String>,
    head: Option<String>,
    head_time: String,
}

/// How often `git add` is retried on a file that changes while it is hashed.
const ADD_RETRIES: u64 = 5;

/// Copies git's index keeping its modification time. git trusts an entry's cached stat
/// data only when the entry is older than the index file ("racy git"); a copy with a
/// fresh mtime would make a same-size edit in the same second as the last `git add`
/// look unchanged.
fn copy_keeping_mtime(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    let modified = std::fs::metadata(from)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io(from, e))?;
    std::fs::File::options()
        .write(true)
        .open(to)
        .and_then(|f| f.set_modified(modified))
        .map_err(|e| Error::io(to, e))
}

impl Snapshot {
    /// Whether the run was started on a `flor.*` branch, which then receives its file.
    pub fn commits_to_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with(PERMISSION_PREFIX))
    }
}

impl Repo {
    /// The repository whose working tree holds `start`, found by walking up to a `.git`.
    pub fn discover(start: &Path) -> Option<Repo> {
        let start = std::path::absolute(start).ok()?;
        start
            .ancestors()
            .find(|d| d.join(".git").exists())
            .map(|d| Repo {
                env: None,
                root: d.to_path_buf(),
            })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join(".flor").join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    /// Runs git with `index` as its index file (if any) and returns trimmed stdout.
    fn git(&self, args: &[&str], index: Option<&Path>, stdin: Option<&str>) -> Result<String> {
        self.git_env(args, index, stdin, &[])
    }

    fn git_env(
        &self,
        args: &[&str],
        index: Option<&Path>,
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<String> {
        let out = self.run_git(args, index, stdin, env)?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Runs git and returns its stdout as it is (file contents keep their bytes).
    fn git_raw(&self, args: &[&str]) -> Result<String> {
        let out = self.run_git(args, None, None, &[])?;
        String::from_utf8(out).map_err(|_| Error::Git {
            command: format!("git {}", args.join(" ")),
            message: "output is not UTF-8 text".into(),
        })
    }

    fn run_git(
        &self,
        args: &[&str],
        index: Option<&Path>,
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Vec<u8>> {
        let mut cmd = Command::new("git");
        // Run files are large and written once: fast compression keeps exit quick.
        cmd.arg("-C")
            .arg(&self.root)
            .args(["-c", "core.looseCompression=1"])
            .args(args);
        self.apply_env(&mut cmd);
        cmd.envs(env.iter().copied());
        if let Some(index) = index {
            cmd.env("GIT_INDEX_FILE", index);
        }
        if !self.has_identity() {
            // Commits need an author; a fresh machine may have none configured.
            for (k, v) in [
                ("GIT_AUTHOR_NAME", "flordb"),
                ("GIT_AUTHOR_EMAIL", "flordb@localhost"),
                ("GIT_COMMITTER_NAME", "flordb"),
                ("GIT_COMMITTER_EMAIL", "flordb@localhost"),
            ] {
                cmd.env(k, v);
            }
        }
        let command = || format!("git {}", args.join(" "));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Error::Git {
            command: command(),
            message: format!("cannot run git ({e}); is git installed?"),
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .map_err(|e| Error::io("git stdin", e))?;
        }
        let out = child.wait_with_output().map_err(|e| Error::io("git", e))?;
        if !out.status.success() {
            return Err(Error::Git {
                command: command(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// This repository with git run in the environment the process has now, read once
    /// here: git started from another thread then never reads the process's environment
    /// while the script changes it (`os.environ[...] = ...` right after the first FlorDB
    /// call, as `lightning.seed_everything` does), which glibc does not make safe.
    pub fn with_env_snapshot(&self) -> Repo {
        Repo {
            root: self.root.clone(),
            env: Some(std::sync::Arc::new(std::env::vars_os().collect())),
        }
    }

    fn apply_env(&self, cmd: &mut Command) {
        if let Some(env) = &self.env {
            cmd.env_clear();
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
        }
    }

    fn has_identity(&self) -> bool {
        static IDENTITY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *IDENTITY.get_or_init(|| {
            let mut cmd = Command::new("git");
            self.apply_env(&mut cmd);
            cmd.arg("-C")
                .arg(&self.root)
                .args(["var", "GIT_COMMITTER_IDENT"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// The checked-out branch, `None` on a detached HEAD.
    pub fn current_branch(&self) -> Option<String> {
        self.git(&["symbolic-ref", "-q", "--short", "HEAD"], None, None)
            .ok()
            .filter(|b| !b.is_empty())
    }

    fn rev(&self, rev: &str) -> Option<String> {
        self.git(
            &["rev-parse", "-q", "--verify", &format!("{rev}^{{commit}}")],
            None,
            None,
        )
        .ok()
        .filter(|s| !s.is_empty())
    }

    /// Commits the working tree as it is now, without touching the user's index, and
    /// keeps it under `refs/flor/runs/<run>`: [`Repo::capture`] then [`Repo::commit`].
    pub fn snapshot(&self, run: &RunId) -> Result<Snapshot> {
        let captured = self.capture(run)?;
        self.commit(captured, run)
    }

    /// Writes the working tree as it is now into git's object store (a tree), without
    /// touching the user's index. This is the part of a snapshot that must happen before
    /// the script can change its files; [`Repo::commit`] may follow on another thread.
    pub fn capture(&self, run: &RunId) -> Result<Captured> {
        let index = TempIndex::new(self.tmp_dir()?, run, "snapshot");
        // Starting from a copy of the user's index lets git reuse its file stat cache.
        let user_index = PathBuf::from(self.git(
            &["rev-parse", "--path-format=absolute", "--git-path", "index"],
            None,
            None,
        )?);
        if user_index.exists() {
            copy_keeping_mtime(&user_index, &index.path)?;
        }
        // A file being rewritten while git hashes it ("unstable object source data")
        // is hashed again once it holds still.
        let mut attempt = 0;
        loop {
            match self.git(&["add", "-A", "--", "."], Some(&index.path), None) {
                Ok(_) => break,
                Err(Error::Git { message, .. })
                    if message.contains("unstable object source") && attempt < ADD_RETRIES =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 * attempt));
                }
                Err(err) => return Err(err),
            }
        }
        let tree = self.git(&["write-tree"], Some(&index.path), None)?;
        let branch = self.current_branch();
        let (head, head_time) =
            match self.git(&["log", "-1", "--format=%H %ct", "HEAD"], None, None) {
                Ok(line) => {
                    let mut parts = line.split_whitespace();
                    (
                        parts.next().map(str::to_string),
                        parts.next().unwrap_or("0").to_string(),
                    )
                }
                Err(_) => (None, "0".to_string()),
            };
        Ok(Captured {
            tree,
            branch,
            head,
            head_time,
        })
    }

    /// Makes a captured tree the run's snapshot commit, kept under `refs/flor/runs/<run>`.
    pub fn commit(&self, captured: Captured, run: &RunId) -> Result<Snapshot> {
        let Captured {
            tree,
            branch,
            head,
            head_time,
        } = captured;
        // Same code on the same parent gives the same commit: a fixed message and the
        // parent's date make the snapshot deterministic, so runs of unchanged code share
        // one version.
        let date = format!("@{head_time} +0000");
        let env = [
            ("GIT_AUTHOR_DATE", date.as_str()),
            ("GIT_COMMITTER_DATE", date.as_str()),
        ];
        let commit = self.commit_tree_with(&tree, head.as_deref(), "FLOR::Snapshot\n", &env)?;
        self.git(&["update-ref", &run_ref(run), &commit], None, None)?;
        Ok(Snapshot {
            commit,
            tree,
            branch,
            head,
        })
    }

    fn commit_tree(&self, tree: &str, parent: Option<&str>, message: &str) -> Result<String> {
        self.commit_tree_with(tree, parent, message, &[])
    }

    fn commit_tree_with(
        &self,
        tree: &str,
        parent: Option<&str>,
        message: &str,
        env: &[(&str, &str)],
    ) -> Result<String> {
        let mut args = vec!["commit-tree", tree];
        if let Some(p) = parent {
            args.extend(["-p", p]);
        }
        args.extend(["-F", "-"]);
        self.git_env(&args, None, Some(message), env)
    }

    /// Adds the finished run's file on top of its snapshot (`refs/flor/runs/<run>`) and,
    /// on a `flor.*` branch, commits snapshot and file to that branch too.
    pub fn record_run(
        &self,
        snap: &Snapshot,
        run: &RunId,
        tstamp: &str,
        run_file: &Path,
        args: &[(String, String)],
    ) -> Result<String> {
        let rel = format!(".flor/runs/{}", file_name(run_file));
        let blob = self.git(
            &["hash-object", "-w", "--", &run_file.to_string_lossy()],
            None,
            None,
        )?;
        let index = TempIndex::new(self.tmp_dir()?, run, "records");
        self.git(&["read-tree", &snap.tree], Some(&index.path), None)?;
        self.git(
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{blob},{rel}"),
            ],
            Some(&index.path),
            None,
        )?;
        let tree = self.git(&["write-tree"], Some(&index.path), None)?;
        let mut message = format!("FLOR::Auto-commit::{tstamp}\n\n");
        for (k, v) in args {
            message.push_str(&format!("{k}={v}\n"));
        }
        message.push_str(&format!("\nFlor-Run: {run}\n"));
        let commit = self.commit_tree(&tree, Some(&snap.commit), &message)?;
        self.git(&["update-ref", &run_ref(run), &commit], None, None)?;
        if let Some(branch) = snap.branch.as_deref().filter(|_| snap.commits_to_branch()) {
            self.advance_branch(branch, snap, run, &rel, &blob, &message)?;
        }
        Ok(commit)
    }

    /// Commits the snapshot plus every run file the branch already holds plus this
    /// run's file to `branch`, under a lock so concurrent runs queue up, then refreshes
    /// the user's index if they are on that branch (as `git add -A && git commit` would).
    fn advance_branch(
        &self,
        branch: &str,
        snap: &Snapshot,
        run: &RunId,
        rel: &str,
        blob: &str,
        message: &str,
    ) -> Result<()> {
        let lock_path = self.tmp_dir()?.join("branch.lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let branch_ref = format!("refs/heads/{branch}");
        let tip = self.rev(&branch_ref);
        let index = TempIndex::new(self.tmp_dir()?, run, "branch");
        self.git(&["read-tree", &snap.tree], Some(&index.path), None)?;
        let mut entries = String::new();
        if let Some(tip) = &tip {
            // Runs committed to the branch by other processes since this one started.
            let listed = self.git(&["ls-tree", "-r", tip, "--", ".flor/runs/"], None, None)?;
            for line in listed.lines().filter(|l| !l.is_empty()) {
                entries.push_str(line);
                entries.push('\n');
            }
        }
        entries.push_str(&format!("100644 blob {blob}\t{rel}\n"));
        self.git(
            &["update-index", "--index-info"],
            Some(&index.path),
            Some(&entries),
        )?;
        let tree = self.git(&["write-tree"], Some(&index.path), None)?;
        let commit = self.commit_tree(&tree, tip.as_deref(), message)?;
        let old = tip.unwrap_or_else(|| "0".repeat(40));
        self.git(&["update-ref", &branch_ref, &commit, &old], None, None)?;
        if self.current_branch().as_deref() == Some(branch) {
            self.git(&["reset", "-q"], None, None)?;
        }
        drop(lock);
        Ok(())
    }
}

/// The ref that keeps a run's version (and, once it ends, its records).
/// The copy of a run's file that git holds under `refs/flor/runs/<run>` (committed when
/// the run ended), if the repository at `root` has one.
pub fn committed_run_file(root: &Path, run_id: &str) -> Option<Vec<u8>> {
    let repo = Repo::discover(root)?;
    let spec = format!("refs/flor/runs/{run_id}:.flor/runs/{run_id}.jsonl");
    repo.run_git(&["cat-file", "blob", &spec], None, None, &[])
        .ok()
}

/// Every run git holds a committed file of, by run id.
pub fn committed_runs(root: &Path) -> Vec<String> {
    let Some(repo) = Repo::discover(root) else {
        return Vec::new();
    };
    repo.git_raw(&[
        "for-each-ref",
        "--format=%(refname:strip=3)",
        "refs/flor/runs/",
    ])
    .map(|out| out.lines().map(str::to_owned).collect())
    .unwrap_or_default()
}

pub fn run_ref(run: &RunId) -> String {
    format!("refs/flor/runs/{run}")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A temporary index file, removed when dropped.
struct TempIndex {
    path: PathBuf,
}

impl TempIndex {
    fn new(dir: PathBuf, run: &RunId, purpose: &str) -> Self {
        TempIndex {
            path: dir.join(format!("index-{run}-{purpose}")),
        }
    }
}

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

//! Puts the commit jaga is built from into `jaga --version`:
//! `JAGA_BUILD_COMMIT` when set (builds from a tarball, packaging), else
//! `git rev-parse`, else "unknown commit". Never fails the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=JAGA_BUILD_COMMIT");
    let commit = std::env::var("JAGA_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_owned())
        .or_else(git_commit);
    let version = env!("CARGO_PKG_VERSION");
    let long = match commit {
        Some(commit) => format!("{version} (commit {commit})"),
        None => format!("{version} (unknown commit)"),
    };
    println!("cargo:rustc-env=JAGA_LONG_VERSION={long}");
}

/// The short commit and its date, `a1b2c3d4e5f6 2026-11-23`. A build from
/// a checkout with local changes names the commit it started from.
fn git_commit() -> Option<String> {
    let out = git(&["log", "-1", "--format=%h %cs", "--abbrev=12"])?;
    watch_head();
    Some(out)
}

/// Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it
/// points to (a commit), in this worktree's git directory or the common one.
fn watch_head() {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) else {
        return;
    };
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .map(PathBuf::from)
        .unwrap_or_else(|| git_dir.clone());
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    println!(
        "cargo:rerun-if-changed={}",
        common.join("packed-refs").display()
    );
    if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
        if branch.starts_with("refs/") {
            println!("cargo:rerun-if-changed={}", common.join(branch).display());
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

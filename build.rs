//! Records the commit shotrouter is built from, for `--version`: a studio running several
//! builds on its farm must be able to tell which one a node runs. Outside a git checkout (a
//! source tarball, a packaged crate) the commit is `unknown`.

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    // `--no-optional-locks`: a plain `git status` refreshes and rewrites the index, which this
    // script watches, and every build would then rebuild the crate.
    let dirty = git(&[
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_some_and(|out| !out.is_empty());
    let suffix = if dirty { "-modified" } else { "" };
    println!("cargo:rustc-env=SHOTROUTER_COMMIT={commit}{suffix}");
    // Rebuilt when HEAD moves (a commit, a checkout, a staged change). The paths come from git,
    // since `.git` is a file in a worktree; only existing ones are watched, because cargo takes
    // a missing watched file for a change and would rebuild every time.
    let mut watched = Vec::new();
    for name in ["HEAD", "index", "packed-refs"] {
        watched.extend(git(&["rev-parse", "--git-path", name]));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// A git command's trimmed output, when git is there and succeeds.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|text| text.trim().to_string())
}

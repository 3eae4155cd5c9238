//! The commit the binaries were built from, for `herald_build_info`:
//! `HERALD_BUILD_COMMIT` when set (an image built without .git), else
//! `git rev-parse`, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=HERALD_BUILD_COMMIT");
    let commit = std::env::var("HERALD_BUILD_COMMIT").ok().filter(|c| !c.trim().is_empty()).map(|c| c.trim().to_string());
    let commit = commit.or_else(|| {
        // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref, packed refs.
        if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
            println!("cargo:rerun-if-changed={dir}/HEAD");
            println!("cargo:rerun-if-changed={dir}/packed-refs");
            if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
                println!("cargo:rerun-if-changed={dir}/{r}");
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    println!("cargo:rustc-env=HERALD_BUILD_COMMIT={}", commit.unwrap_or_else(|| "unknown".into()));
}

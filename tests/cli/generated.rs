//! The checked-in completions and man pages must be what the clap definitions generate today.
//! After changing src/cli.rs, regenerate them with
//!
//!     DIFF_DD_BLESS=1 cargo test --test cli generated::
//!
//! and commit the result with the change.

use std::fs;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use clap_complete::Shell;
use diff_dd::cli::Cli;

use crate::util::{diff_dd, repository};

fn blessing() -> bool {
    std::env::var_os("DIFF_DD_BLESS").is_some()
}

/// Compares every file generated into `generated` with the checked-in copy in `checked_in`
/// (or, when blessing, copies it there).
fn compare_directories(generated: &Path, checked_in: &Path) {
    let mut names: Vec<_> = fs::read_dir(generated)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "nothing was generated");
    let mut stale = Vec::new();
    for name in names {
        let fresh = fs::read(generated.join(&name)).unwrap();
        let path = checked_in.join(&name);
        if blessing() {
            fs::write(&path, &fresh).unwrap();
        } else if fs::read(&path).ok().as_deref() != Some(&fresh[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with src/cli.rs (run DIFF_DD_BLESS=1 cargo test --test cli generated::): {stale:?}"
    );
}

#[test]
fn completions_match_the_cli() {
    let generated = tempfile::tempdir().unwrap();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let name = clap_complete::Generator::file_name(&shell, "diff-dd");
        fs::write(
            generated.path().join(name),
            diff_dd::cli::completion_script(shell),
        )
        .unwrap();
    }
    compare_directories(generated.path(), &repository().join("completions"));
}

#[test]
fn completions_subcommand_prints_the_same_scripts() {
    let output = diff_dd().args(["completions", "bash"]).output().unwrap();
    assert!(output.status.success());
    let checked_in = fs::read(repository().join("completions/diff-dd.bash")).unwrap();
    assert_eq!(output.stdout, checked_in);
}

#[test]
fn man_pages_match_the_cli() {
    let generated = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(Cli::command(), generated.path()).unwrap();
    compare_directories(generated.path(), &repository().join("man"));
}

/// Every page renders without a single groff warning.
#[test]
fn man_pages_render_cleanly() {
    if Command::new("groff").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "groff is needed to check the man pages (.ci/run installs it)"
        );
        eprintln!("groff is not installed: man pages not rendered");
        return;
    }
    let mut pages: Vec<_> = fs::read_dir(repository().join("man"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.iter().any(|page| page.ends_with("diff-dd.5")));
    for page in pages {
        let output = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "groff failed on {}",
            page.display()
        );
        assert!(
            output.stderr.is_empty(),
            "groff warns about {}: {}",
            page.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

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

/// Writes the section-1 pages into `directory`: for diff-dd and each command, the name,
/// synopsis, options and commands from the clap definitions, and the text kept beside them
/// in man/sections/PAGE.in (DESCRIPTION before the generated options; EXAMPLES, EXIT
/// STATUS, FILES and SEE ALSO after them), with the version in the footer.
fn write_man_pages(directory: &Path) {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut commands = vec![command.clone()];
    commands.extend(command.get_subcommands().cloned());
    for command in commands {
        let man = clap_mangen::Man::new(command)
            .source(format!("diff-dd {}", env!("CARGO_PKG_VERSION")))
            .manual("diff-dd manual");
        let name = man.get_filename();
        let text_path = repository().join("man/sections").join(format!("{name}.in"));
        let text = fs::read_to_string(&text_path)
            .unwrap_or_else(|error| panic!("{}: {error}", text_path.display()));
        let marker = ".\\\" OPTIONS: generated from src/cli.rs\n";
        let (description, rest) = text
            .split_once(marker)
            .unwrap_or_else(|| panic!("{} lacks the line {marker:?}", text_path.display()));
        let mut page = Vec::new();
        man.render_title(&mut page).unwrap();
        man.render_name_section(&mut page).unwrap();
        man.render_synopsis_section(&mut page).unwrap();
        page.extend_from_slice(description.as_bytes());
        man.render_options_section(&mut page).unwrap();
        if name == "diff-dd.1" {
            man.render_subcommands_section(&mut page).unwrap();
        }
        page.extend_from_slice(rest.as_bytes());
        fs::write(directory.join(name), page).unwrap();
    }
}

#[test]
fn man_pages_match_the_cli() {
    let generated = tempfile::tempdir().unwrap();
    write_man_pages(generated.path());
    compare_directories(generated.path(), &repository().join("man"));
    // What a person reads: no page without the sections every page has.
    for entry in fs::read_dir(generated.path()).unwrap() {
        let page = fs::read_to_string(entry.unwrap().path()).unwrap();
        for section in [
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH EXAMPLES",
            ".SH EXIT STATUS",
            ".SH SEE ALSO",
        ] {
            assert!(page.contains(section), "a page lacks {section}: {page}");
        }
        assert!(!page.contains(".SH EXTRA"), "{page}");
        assert!(
            page.contains(concat!("diff-dd ", env!("CARGO_PKG_VERSION"))),
            "no version in the footer"
        );
    }
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
        .filter(|path| path.is_file())
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

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
    let command = diff_dd::cli::built(Cli::command().disable_help_subcommand(true));
    let mut commands = vec![command.clone()];
    commands.extend(command.get_subcommands().cloned());
    for command in commands {
        let man = clap_mangen::Man::new(command.clone())
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
        if command.get_overridden_usage().is_some() {
            man.render_synopsis_section(&mut page).unwrap();
        } else {
            page.extend_from_slice(synopsis(&command).as_bytes());
        }
        page.extend_from_slice(description.as_bytes());
        man.render_options_section(&mut page).unwrap();
        if name == "diff-dd.1" {
            man.render_subcommands_section(&mut page).unwrap();
        }
        page.extend_from_slice(rest.as_bytes());
        fs::write(directory.join(name), page).unwrap();
    }
}

/// A command's SYNOPSIS, generated: every option with its value and `...` where it repeats,
/// then the operands, `DIFFFILE...` where they repeat (`diff-dd merge [--base FULL] ...
/// DIFFFILE... OUTFILE`). clap_mangen's drops option values and `...`.
fn synopsis(command: &clap::Command) -> String {
    let roman = |text: &str| text.replace('-', "\\-");
    let value = |arg: &clap::Arg| {
        let names = arg
            .get_value_names()
            .map(|names| names.iter().map(ToString::to_string).collect::<Vec<_>>())
            .unwrap_or_else(|| vec![arg.get_id().as_str().to_uppercase()]);
        format!("\\fI{}\\fR", roman(&names.join(" ")))
    };
    let repeats = |arg: &clap::Arg| {
        matches!(arg.get_action(), clap::ArgAction::Append)
            || arg
                .get_num_args()
                .is_some_and(|range| range.max_values() > 1)
    };
    let name = command.get_bin_name().unwrap_or(command.get_name());
    let mut words = vec![format!("\\fB{}\\fR", roman(name))];
    let shown = || command.get_arguments().filter(|arg| !arg.is_hide_set());
    for arg in shown().filter(|arg| !arg.is_positional()) {
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("\\fB\\-{short}\\fR"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", roman(long)));
        }
        let mut word = names.join("|");
        if arg.get_action().takes_values() {
            word = format!("{word} {}", value(arg));
        }
        if !arg.is_required_set() {
            word = format!("[{word}]");
        }
        if repeats(arg) {
            word.push_str("...");
        }
        words.push(word);
    }
    for arg in shown().filter(|arg| arg.is_positional()) {
        let mut word = value(arg);
        if repeats(arg) {
            word.push_str("...");
        }
        if !arg.is_required_set() {
            word = format!("[{word}]");
        }
        words.push(word);
    }
    // \% keeps groff from hyphenating a word (--sec-tor-size), and .ad l from stretching the
    // spaces between words; .ad then goes back to the page's adjustment.
    let words: Vec<String> = words
        .iter()
        .map(|word| format!("\\%{}", word.replace(' ', " \\%")))
        .collect();
    format!(".SH SYNOPSIS\n.ad l\n{}\n.ad\n", words.join(" "))
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

/// The synopses give each option's value and `...` where a word repeats, and no page, --help
/// or completion offers an option where it does nothing: -b in inspect, -s, -b, -q and -v
/// in completions. They are still accepted there.
#[test]
fn synopses_are_complete_and_options_appear_where_they_apply() {
    let page = |name: &str| fs::read_to_string(repository().join("man").join(name)).unwrap();
    let merge = page("diff-dd-merge.1");
    for part in [
        "[\\fB\\-\\-base\\fR \\%\\fIFULL\\fR]",
        "[\\fB\\-\\-compress\\fR \\%\\fILEVEL\\fR]",
        "\\fIDIFFFILE\\fR... \\%\\fIOUTFILE\\fR\n",
    ] {
        assert!(merge.contains(part), "diff-dd-merge.1 lacks {part}");
    }
    // backup's forms (REFFILE, a chain, a digest) are its overridden usage.
    let backup = page("diff-dd-backup.1");
    for form in [
        "INFILE REFFILE OUTFILE",
        "\\-\\-on PREV... INFILE REFFILE OUTFILE",
        "\\-\\-digest DIGEST [\\-\\-digest\\-out NEXT] INFILE OUTFILE",
    ] {
        assert!(backup.contains(form), "diff-dd-backup.1 lacks {form}");
    }
    // verify's forms (one diff, a chain, --no-target) are its overridden usage.
    let verify = page("diff-dd-verify.1");
    for form in [
        "DIFFFILE [TARGET]",
        "DIFFFILE... TARGET",
        "\\-\\-no\\-target DIFFFILE...",
    ] {
        assert!(verify.contains(form), "diff-dd-verify.1 lacks {form}");
    }
    let inspect = page("diff-dd-inspect.1");
    assert!(!inspect.contains("buffer\\-size") && inspect.contains("sector\\-size"));
    let completions = page("diff-dd-completions.1");
    for option in ["buffer\\-size", "sector\\-size", "quiet", "verbose"] {
        assert!(!completions.contains(option), "completions lists {option}");
    }
    let help = |arguments: &[&str]| {
        let output = diff_dd().args(arguments).output().unwrap();
        assert!(output.status.success(), "{arguments:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let inspect = help(&["inspect", "--help"]);
    assert!(!inspect.contains("--buffer-size") && inspect.contains("--sector-size"));
    assert!(!help(&["completions", "--help"]).contains("--sector-size"));
    let bash = fs::read_to_string(repository().join("completions/diff-dd.bash")).unwrap();
    let inspect_options = bash
        .split("diff__dd__subcmd__inspect)\n")
        .nth(1)
        .and_then(|arm| arm.lines().next())
        .unwrap();
    assert!(
        !inspect_options.contains("--buffer-size"),
        "{inspect_options}"
    );
    // Accepted, for scripts that pass them everywhere.
    assert!(help(&["completions", "-q", "-s", "4K", "-b", "4M", "bash"]).starts_with("_diff__dd()"));
    let output = diff_dd()
        .args(["inspect", "-b", "4M", "--json", "no-such.diff"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

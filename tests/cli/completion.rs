//! Completion tried for real: bash, zsh and fish each load the checked-in script and are
//! asked what they offer where a person presses TAB. (The scripts' bytes are pinned by
//! generated.rs; this checks that they work.) CI installs zsh and fish; elsewhere a missing
//! shell is skipped with a note.

use std::process::Command;

use crate::util::repository;

/// Where TAB is pressed, what must be offered there, and what must not. The shells run in a
/// directory holding full.img and monday.diff.
const CASES: [(&str, &[&str], &[&str]); 7] = [
    (
        "diff-dd verify --",
        &["--expect", "--json", "--quiet"],
        // Options of the top level, not of verify.
        &["--format", "--force"],
    ),
    ("diff-dd completions ", &["bash", "zsh", "fish"], &[]),
    // Not -b, which does nothing in inspect; -s does, for v1 diffs.
    (
        "diff-dd inspect --",
        &["--json", "--sector-size"],
        &["--buffer-size"],
    ),
    ("diff-dd verify x --expect ", &["base", "restored"], &[]),
    // Where a path goes, files, not options: bash offered only options, and inserted their
    // common prefix '-'.
    (
        "diff-dd restore --base full.img ",
        &["monday.diff"],
        &["-s", "--spool", "--help"],
    ),
    ("diff-dd inspect ", &["monday.diff"], &["--json"]),
    // Levels, not file names.
    (
        "diff-dd backup --compress ",
        &["none", "1", "4", "19"],
        &["monday.diff", "0", "20"],
    ),
];

/// A directory with the files the cases complete.
fn work_directory() -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    for name in ["full.img", "monday.diff"] {
        std::fs::write(directory.path().join(name), b"").unwrap();
    }
    directory
}

fn shell_available(shell: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {shell}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "CI must install {shell}");
        eprintln!("{shell} is not installed: its completion is not tried here");
    }
    found
}

fn check(shell: &str, line: &str, offered: &str, expected: &[&str], unexpected: &[&str]) {
    let offered: Vec<&str> = offered.split_whitespace().collect();
    for word in expected {
        assert!(
            offered.contains(word),
            "{shell}: '{line}<TAB>' offers {offered:?}, not {word}"
        );
    }
    for word in unexpected {
        assert!(
            !offered.contains(word),
            "{shell}: '{line}<TAB>' offers {word}: {offered:?}"
        );
    }
}

#[test]
fn bash_completes_after_a_subcommand() {
    if !shell_available("bash") {
        return;
    }
    let script = repository().join("completions/diff-dd.bash");
    let directory = work_directory();
    for (line, expected, unexpected) in CASES {
        // COMP_WORDS as bash splits the line; the function is the one `complete` names. When
        // it offers nothing, bash completes file names itself if `complete -o default` says
        // so, as here.
        let program = r#"source "$0"
function=$(complete -p diff-dd | sed -n 's/.*-F \([^ ]*\).*/\1/p')
read -ra COMP_WORDS <<< "$1"
[[ $1 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
cur=${COMP_WORDS[COMP_CWORD]}
"$function" diff-dd "$cur" "${COMP_WORDS[COMP_CWORD-1]}"
if [[ ${#COMPREPLY[@]} -eq 0 && $(complete -p diff-dd) == *"-o default"* ]]; then
    COMPREPLY=( $(compgen -f -- "$cur") )
fi
echo "${COMPREPLY[*]}""#;
        let output = Command::new("bash")
            .current_dir(directory.path())
            .args(["-c", program])
            .arg(&script)
            .arg(line)
            .output()
            .unwrap();
        assert!(output.status.success(), "bash: {output:?}");
        check(
            "bash",
            line,
            &String::from_utf8_lossy(&output.stdout),
            expected,
            unexpected,
        );
    }
}

#[test]
fn zsh_completes_after_a_subcommand() {
    if !shell_available("zsh") {
        return;
    }
    let directory = work_directory();
    for (line, expected, unexpected) in CASES {
        let output = Command::new("zsh")
            .current_dir(directory.path())
            .arg(repository().join("tests/cli/zsh-capture.zsh"))
            .arg(repository().join("completions"))
            .arg(line)
            .output()
            .unwrap();
        let offered = String::from_utf8_lossy(&output.stdout).replace('\r', "");
        check("zsh", line, &offered, expected, unexpected);
    }
}

#[test]
fn fish_completes_after_a_subcommand() {
    if !shell_available("fish") {
        return;
    }
    let script = repository().join("completions/diff-dd.fish");
    let directory = work_directory();
    for (line, expected, unexpected) in CASES {
        let output = Command::new("fish")
            .current_dir(directory.path())
            .args(["--no-config", "-c", "source $argv[1]; complete -C $argv[2]"])
            .arg(&script)
            .arg(line)
            .output()
            .unwrap();
        assert!(output.status.success(), "fish: {output:?}");
        // Each line: the candidate, a tab, its description.
        let offered: String = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|candidate| candidate.split('\t').next())
            .collect::<Vec<_>>()
            .join(" ");
        check("fish", line, &offered, expected, unexpected);
    }
}

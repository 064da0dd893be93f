//! Completion tried for real: bash, zsh and fish each load the checked-in script and are
//! asked what they offer where a person presses TAB. (The scripts' bytes are pinned by
//! generated.rs; this checks that they work.) CI installs zsh and fish; elsewhere a missing
//! shell is skipped with a note.

use std::process::Command;

use crate::util::repository;

/// Where TAB is pressed, and what must be offered there.
const CASES: [(&str, &[&str]); 3] = [
    ("diff-dd verify --", &["--expect", "--json", "--quiet"]),
    ("diff-dd completions ", &["bash", "zsh", "fish"]),
    ("diff-dd verify x --expect ", &["base", "restored"]),
];

/// Options of the top level that must not be offered after a subcommand.
const NOT_AFTER_VERIFY: [&str; 2] = ["--format", "--force"];

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

fn check(shell: &str, line: &str, offered: &str, expected: &[&str]) {
    let offered: Vec<&str> = offered.split_whitespace().collect();
    for word in expected {
        assert!(
            offered.contains(word),
            "{shell}: '{line}<TAB>' offers {offered:?}, not {word}"
        );
    }
    if line == "diff-dd verify --" {
        for word in NOT_AFTER_VERIFY {
            assert!(
                !offered.contains(&word),
                "{shell}: '{line}<TAB>' offers {word}: {offered:?}"
            );
        }
    }
}

#[test]
fn bash_completes_after_a_subcommand() {
    if !shell_available("bash") {
        return;
    }
    let script = repository().join("completions/diff-dd.bash");
    for (line, expected) in CASES {
        // COMP_WORDS as bash splits the line; the function is the one `complete` names.
        let program = r#"source "$0"
function=$(complete -p diff-dd | sed -n 's/.*-F \([^ ]*\).*/\1/p')
read -ra COMP_WORDS <<< "$1"
[[ $1 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
"$function" diff-dd "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
echo "${COMPREPLY[*]}""#;
        let output = Command::new("bash")
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
        );
    }
}

#[test]
fn zsh_completes_after_a_subcommand() {
    if !shell_available("zsh") {
        return;
    }
    for (line, expected) in CASES {
        let output = Command::new("zsh")
            .arg(repository().join("tests/cli/zsh-capture.zsh"))
            .arg(repository().join("completions"))
            .arg(line)
            .output()
            .unwrap();
        let offered = String::from_utf8_lossy(&output.stdout).replace('\r', "");
        check("zsh", line, &offered, expected);
    }
}

#[test]
fn fish_completes_after_a_subcommand() {
    if !shell_available("fish") {
        return;
    }
    let script = repository().join("completions/diff-dd.fish");
    for (line, expected) in CASES {
        let output = Command::new("fish")
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
        check("fish", line, &offered, expected);
    }
}

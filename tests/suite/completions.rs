//! `barrage completions SHELL` and `barrage man`: the bash script driven
//! by a real bash, the manual page rendered by a real `man`.

use std::path::Path;

use crate::common::{barrage, needs, run_bin};

/// stdout of `barrage ARGS`, which must exit 0 with nothing on stderr.
fn stdout_of(args: &[&str]) -> String {
    let out = run_bin(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "barrage {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "barrage {args:?} wrote to stderr");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// What bash completes for the command line `words` (the last word is the
/// one being completed), with the completion function the script at
/// `script` registers for `barrage`.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    const DRIVER: &str = r#"
script=$1; shift
source "$script" || exit 10
spec=$(complete -p barrage) || { echo "no completion registered for barrage" >&2; exit 11; }
fn=$(printf '%s\n' "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || { echo "no -F function in: $spec" >&2; exit 12; }
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"$fn" barrage "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = std::process::Command::new("bash")
        .args(["-c", DRIVER, "bash"])
        .arg(script)
        .args(words)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "bash completion of {words:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_and_flags() {
    if !needs("bash", "bash") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("barrage.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();

    let subcommands = bash_complete(&script, &["barrage", "r"]);
    for want in ["run", "report"] {
        assert!(
            subcommands.iter().any(|c| c == want),
            "`barrage r` completes to {subcommands:?}, without {want}"
        );
    }
    let flags = bash_complete(&script, &["barrage", "run", "--no"]);
    assert!(
        flags.iter().any(|c| c == "--no-tui"),
        "`barrage run --no` completes to {flags:?}, without --no-tui"
    );
}

#[test]
fn zsh_fish_powershell_elvish_scripts_name_barrage() {
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        assert!(script.contains("barrage"), "{shell}: no mention of barrage");
        assert!(script.contains("no-tui"), "{shell}: no `run --no-tui`");
    }
}

#[test]
fn unknown_shell_is_bad_input() {
    let out = run_bin(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// `man`'s output with overstrikes (bold `X\bX`, underline `_\bX`) taken
/// out and typographic hyphens and minus signs made ASCII.
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(match c {
            '\u{2010}' | '\u{2212}' => '-',
            c => c,
        });
    }
    out.into_iter().collect()
}

#[test]
fn man_page_renders_with_subcommands() {
    if !needs("man", "man") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("barrage.1");
    std::fs::write(&page, stdout_of(&["man"])).unwrap();

    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l: {stderr}");
    // groff warns on stderr about roff it cannot read.
    assert!(!stderr.contains("warning"), "man -l warned: {stderr}");
    let text = plain(&String::from_utf8_lossy(&out.stdout));
    for want in [
        "NAME",
        "barrage",
        "SUBCOMMANDS",
        "barrage run",
        "BARRAGE RUN",
        "--no-tui",
        "BARRAGE COMPLETIONS",
        "VERSION",
    ] {
        assert!(text.contains(want), "rendered page lacks {want:?}:\n{text}");
    }
}

#[test]
fn man_and_completions_are_listed_in_help() {
    let out = barrage().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("completions") && help.contains("man"),
        "{help}"
    );
}

//! Usage errors exit 1 in every subcommand (help and version exit 0), and the
//! generated shell completions and man pages cover every subcommand.

use std::process::{Command, Output};

fn distpoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(args)
        .output()
        .unwrap()
}

/// The subcommands `distpoint --help` lists (so that a new one is covered too).
fn subcommands() -> Vec<String> {
    let out = distpoint(&["--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let list: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(list.len() >= 9, "{text}");
    list
}

#[test]
fn an_unknown_flag_exits_1_in_every_subcommand() {
    let mut all: Vec<Vec<&str>> = Vec::new();
    let subs = subcommands();
    for sub in &subs {
        all.push(vec![sub.as_str()]);
    }
    all.push(vec!["certs", "dev"]);
    for words in all {
        let mut args = words.clone();
        args.push("--no-such-flag");
        let out = distpoint(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("--no-such-flag"), "{args:?}: {err}");
        // Help and version are not errors.
        let mut help = words.clone();
        help.push("--help");
        let out = distpoint(&help);
        assert_eq!(out.status.code(), Some(0), "{help:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
    assert_eq!(distpoint(&["--version"]).status.code(), Some(0));
    // No subcommand at all is a usage error too.
    assert_eq!(distpoint(&[]).status.code(), Some(1));
    assert_eq!(distpoint(&["no-such-command"]).status.code(), Some(1));
}

#[test]
fn a_missing_argument_exits_1_in_every_subcommand() {
    let cases: &[(&[&str], &str)] = &[
        (&["serve", "--config"], "--config"),
        (&["check-config", "--config"], "--config"),
        (&["hash-password", "extra"], "extra"),
        (&["fetch", "https://127.0.0.1:1/x"], "--output"),
        (&["fetch", "-o", "x"], "URL"),
        (
            &["fetch", "https://127.0.0.1:1/x", "-o", "x", "--cert", "c"],
            "--key",
        ),
        (&["bench"], "URL"),
        (
            &["bench", "https://127.0.0.1:1/x", "--connections"],
            "--connections",
        ),
        (
            &["bench", "https://127.0.0.1:1/x", "--duration", "0"],
            "--duration",
        ),
        (&["publish"], "DIR"),
        (&["publish", "--gen-key"], "--gen-key"),
        (&["certs"], "Usage"),
        (&["certs", "dev", "--out"], "--out"),
        (&["completions"], "SHELL"),
        (&["completions", "no-such-shell"], "no-such-shell"),
        (&["man"], "DIR"),
        (&["sync", "--config"], "--config"),
        (&["status", "--config"], "--config"),
    ];
    for (args, named) in cases {
        let out = distpoint(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} should name {named}: {err}");
    }
    // Every subcommand that takes arguments has a case above.
    for sub in subcommands() {
        if sub != "hash-password" {
            assert!(
                cases.iter().any(|(args, _)| args[0] == sub),
                "no missing-argument case for {sub}"
            );
        }
    }
}

#[test]
fn completions_name_every_subcommand_in_every_shell() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = distpoint(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.len() > 1000, "{shell}: {script}");
        for sub in subs.iter().chain([&"dev".to_string()]) {
            assert!(
                script.contains(sub.as_str()),
                "{shell} completion lacks {sub}"
            );
        }
        assert!(
            script.contains("cacert") && script.contains("force"),
            "{shell}"
        );
    }
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .arg("man")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // roff writes a hyphen as `\-`.
    let read = |name: &str| {
        std::fs::read_to_string(out_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .replace("\\-", "-")
    };
    let main = read("distpoint.1");
    assert!(
        main.starts_with(".ie") || main.contains(".TH distpoint 1"),
        "{main}"
    );
    let subs = subcommands();
    for sub in &subs {
        assert!(main.contains(sub.as_str()), "distpoint.1 lacks {sub}");
        let page = read(&format!("distpoint-{sub}.1"));
        assert!(
            page.contains(".TH distpoint-") && page.contains(".SH"),
            "{sub}"
        );
    }
    let dev = read("distpoint-certs-dev.1");
    assert!(dev.contains("force"), "{dev}");
    let fetch = read("distpoint-fetch.1");
    assert!(
        fetch.contains("cacert") && fetch.contains("publisher"),
        "{fetch}"
    );
    // What was written is listed.
    let listed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listed.lines().count(), subs.len() + 2, "{listed}");
}

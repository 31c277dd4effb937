//! What the binary writes when its output is not a terminal (a pipe, a file, CI): plain text, no colour codes.

use std::process::Command;

/// Runs the binary with stdout and stderr on pipes; returns (exit code, stdout, stderr).
fn run_piped(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"));
    command.args(args).env_remove("PBI_BRIDGE_TOKEN").env_remove("PBI_BRIDGE_CLIENT_SECRET");
    // Whatever the environment running the tests asks for, a pipe gets no colour unless forced.
    command.env_remove("CLICOLOR_FORCE").env_remove("FORCE_COLOR").env_remove("NO_COLOR");
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().expect("the binary runs");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn assert_plain(what: &str, text: &str) {
    assert!(!text.is_empty(), "{what}: nothing was written, so the check would prove nothing");
    assert!(!text.contains("\x1b["), "{what} carries terminal escape codes: {text:?}");
}

#[test]
fn help_errors_and_logs_have_no_colour_codes_on_a_pipe() {
    let (code, stdout, _) = run_piped(&["powerbi", "--help"], &[]);
    assert_eq!(code, Some(0));
    assert_plain("powerbi --help", &stdout);

    let (code, _, stderr) = run_piped(&["powerbi", "list-groups", "--no-such-flag"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_plain("a usage error", &stderr);

    // Debug logs (tracing, which colours by default) and the error line of a command that fails.
    let (code, _, stderr) = run_piped(
        &["powerbi", "list-groups", "--api-base", "http://127.0.0.1:9", "--token", "x", "--retries", "0"],
        &[("PBI_BRIDGE_LOG", "pbi_powerbi=debug")],
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("DEBUG") && stderr.contains("Power BI request"), "the logs were written: {stderr}");
    assert_plain("debug logs and the error", &stderr);
}

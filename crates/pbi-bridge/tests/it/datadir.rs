//! The data directory: only the commands that start pbi-bridge or first add data may create it (and its key
//! and database), they say so, and what they create is private to its owner whatever the umask. Every other
//! command refuses a data directory that is not there, says where it looked and how to point at the right one.

use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const DATABASE_FILES: [&str; 3] = ["pbi-bridge.db", "pbi-bridge.db-wal", "pbi-bridge.db-shm"];

/// A folder of the test's own, with `data` inside it not yet made (as a first run finds it).
pub(crate) struct Fresh {
    root: PathBuf,
}

impl Fresh {
    pub(crate) fn new() -> Self {
        let root = std::env::temp_dir().join(format!("pbi-datadir-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).expect("test folder");
        Self { root }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.root.join("data")
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `pbi-bridge ARGS --data-dir DIR` under `umask 000`, so that only modes pbi-bridge sets itself are private.
fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_pbi-bridge"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PBI_BRIDGE__CRYPTO__KEYS")
        .env_remove("PBI_BRIDGE__CRYPTO__KEY_FILE")
        .env_remove("PBI_BRIDGE__DATABASE__URL")
        .env_remove("PBI_BRIDGE__DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = command(data_dir, args).spawn().expect("runs");
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("finishes");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The data directory is 0700, and the key file and every database file there is 0600.
fn assert_private(data_dir: &Path, expect_wal: bool, what: &str) {
    assert_eq!(mode(data_dir), 0o700, "{what}: the data directory is its owner's only");
    assert_eq!(mode(&data_dir.join("keys")), 0o600, "{what}: the key file");
    for file in DATABASE_FILES {
        let path = data_dir.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{what}: {file}");
        } else {
            assert!(!expect_wal, "{what}: SQLite keeps {file} while the server runs");
        }
    }
}

/// Starts a long-running command, waits for its first line (it listens then) and looks at the data directory
/// while it runs; reads on to the banner's last line ("Press Ctrl-C to stop.", or the end if it stopped), then
/// stops it and returns everything it printed.
pub(crate) fn while_running(data_dir: &Path, args: &[&str], look: impl FnOnce(&str)) -> String {
    let mut child: Child = command(data_dir, args).spawn().expect("runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut printed = String::new();
    stdout.read_line(&mut printed).expect("a first line");
    look(&printed);
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("a line") == 0 {
            break;
        }
        printed.push_str(&line);
        if line.trim() == "Press Ctrl-C to stop." {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    printed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_and_serve_create_a_private_data_directory_and_say_so() {
    tokio::task::spawn_blocking(|| {
        for args in [&["up", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0"][..], &["serve", "--addr", "127.0.0.1:0"][..]] {
            let fresh = Fresh::new();
            let printed = while_running(&fresh.data(), args, |first| {
                assert!(first.starts_with("pbi-bridge up: open ") || first.starts_with("pbi-bridge server listening on "), "{first}");
                assert_private(&fresh.data(), true, args[0]);
            });
            let data = std::path::absolute(fresh.data()).expect("absolute");
            for said in [
                format!("created the data directory {}", data.display()),
                format!("created the encryption key file {}", data.join("keys").display()),
                format!("created the database {}", data.join("pbi-bridge.db").display()),
            ] {
                assert!(printed.contains(&said), "{}: says {said:?}:\n{printed}", args[0]);
            }
            let first_line = printed.lines().next().unwrap_or_default();
            assert!(first_line.starts_with("pbi-bridge "), "the first line is still the URL line: {printed}");
        }
    })
    .await
    .expect("task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_that_first_add_data_create_it_privately_and_say_so_once() {
    tokio::task::spawn_blocking(|| {
        let fresh = Fresh::new();
        let add = [
            "registration",
            "add",
            "--name",
            "erp",
            "--client-id",
            "00000000-0000-0000-0000-000000000001",
            "--tenant",
            "contoso.onmicrosoft.com",
            "--redirect-url",
            "https://erp.example/oauth/callback",
            "--secret-stdin",
            "--secret-expires",
            "2099-01-31",
        ];
        let added = run(&fresh.data(), &add, Some("a client secret"));
        assert_eq!(added.code, Some(0), "{}", added.stderr);
        assert!(added.stdout.contains("created the data directory") && added.stdout.contains("registered 'erp'"), "{}", added.stdout);
        assert_private(&fresh.data(), false, "registration add");

        let user =
            run(&fresh.data(), &["users", "add", "--username", "admin", "--admin", "--password-stdin"], Some("a long enough password\n"));
        assert_eq!(user.code, Some(0), "{}", user.stderr);
        assert!(!user.stdout.contains("created"), "nothing new was created the second time: {}", user.stdout);

        let other = Fresh::new();
        let json =
            run(&other.data(), &["users", "add", "--username", "admin", "--password-stdin", "--json"], Some("a long enough password\n"));
        assert_eq!(json.code, Some(0), "{}", json.stderr);
        serde_json::from_str::<serde_json::Value>(&json.stdout)
            .unwrap_or_else(|e| panic!("--json prints JSON only ({e}): {}", json.stdout));
        assert!(json.stderr.contains("created the data directory"), "said beside the JSON: {}", json.stderr);
        assert_private(&other.data(), false, "users add");

        let keys = Fresh::new();
        let key = run(&keys.data(), &["keys", "add"], None);
        assert_eq!(key.code, Some(0), "{}", key.stderr);
        assert!(key.stdout.contains("created the encryption key file"), "{}", key.stdout);
        assert_eq!((mode(&keys.data()), mode(&keys.data().join("keys"))), (0o700, 0o600), "keys add");
    })
    .await
    .expect("task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_left_readable_by_others_are_made_private() {
    tokio::task::spawn_blocking(|| {
        let fresh = Fresh::new();
        let added = run(&fresh.data(), &["users", "add", "--username", "admin", "--password-stdin"], Some("a long enough password\n"));
        assert_eq!(added.code, Some(0), "{}", added.stderr);
        // As an older pbi-bridge left them.
        for file in ["pbi-bridge.db", "keys"] {
            std::fs::set_permissions(fresh.data().join(file), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let listed = run(&fresh.data(), &["users", "list"], None);
        assert_eq!(listed.code, Some(0), "{}", listed.stderr);
        assert_eq!(mode(&fresh.data().join("pbi-bridge.db")), 0o600, "the database is made private again");
        assert_eq!(mode(&fresh.data().join("keys")), 0o600, "the key file is made private again");
        assert!(listed.stderr.contains("made") && listed.stderr.contains("private"), "and it says so: {}", listed.stderr);
    })
    .await
    .expect("task");
}

/// Every command that only reads or changes existing data, with arguments that would otherwise work.
const READERS: &[&[&str]] = &[
    &["registration", "show"],
    &["registration", "show", "--name", "erp"],
    &["registration", "validate", "--name", "erp"],
    &["registration", "update", "--name", "erp", "--enable"],
    &["registration", "remove", "--name", "erp"],
    &["connections", "list"],
    &["connections", "show", "--id", "00000000-0000-0000-0000-000000000001"],
    &["connections", "refresh", "--id", "00000000-0000-0000-0000-000000000001"],
    &["connections", "disconnect", "--id", "00000000-0000-0000-0000-000000000001"],
    &["users", "list"],
    &["keys", "rotate"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_read_data_refuse_a_data_directory_that_is_not_there_and_create_nothing() {
    tokio::task::spawn_blocking(|| {
        let fresh = Fresh::new();
        let data = std::path::absolute(fresh.data()).expect("absolute");
        for args in READERS {
            let refused = run(&fresh.data(), args, None);
            let what = args.join(" ");
            assert_eq!(refused.code, Some(2), "{what}: {}{}", refused.stdout, refused.stderr);
            for said in [data.display().to_string(), "--data-dir".into(), "PBI_BRIDGE__DATA_DIR".into()] {
                assert!(refused.stderr.contains(&said), "{what}: names {said}: {}", refused.stderr);
            }
            assert!(!fresh.data().exists(), "{what}: created nothing");
        }
        // A folder that is there but holds no pbi-bridge data is refused the same way, and stays empty.
        std::fs::create_dir(fresh.data()).expect("an empty folder");
        for args in READERS {
            let refused = run(&fresh.data(), args, None);
            assert_eq!(refused.code, Some(2), "{}: {}", args.join(" "), refused.stderr);
            assert!(refused.stderr.contains(&data.join("pbi-bridge.db").display().to_string()), "{}", refused.stderr);
            assert_eq!(std::fs::read_dir(fresh.data()).expect("folder").count(), 0, "{}: created nothing", args.join(" "));
        }
    })
    .await
    .expect("task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_whose_key_file_is_missing_is_not_given_a_new_key() {
    tokio::task::spawn_blocking(|| {
        let fresh = Fresh::new();
        let added = run(&fresh.data(), &["users", "add", "--username", "admin", "--password-stdin"], Some("a long enough password\n"));
        assert_eq!(added.code, Some(0), "{}", added.stderr);
        let key_file = fresh.data().join("keys");
        std::fs::remove_file(&key_file).expect("the key is lost");
        let key_path = std::path::absolute(&key_file).expect("absolute").display().to_string();
        for args in [&["users", "list"][..], &["users", "add", "--username", "bob", "--password-stdin"][..]] {
            let refused = run(&fresh.data(), args, Some("a long enough password\n"));
            let what = args.join(" ");
            assert_eq!(refused.code, Some(2), "{what}: {}", refused.stderr);
            assert!(refused.stderr.contains(&key_path) && refused.stderr.contains("--key-file"), "{what}: {}", refused.stderr);
            assert!(!key_file.exists(), "{what}: no new key was made for data encrypted under another");
        }
    })
    .await
    .expect("task");
}

/// SQLite serves one instance: a second `serve` on the same database refuses to start and says what to do,
/// while the first goes on (and the CLI still works beside it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_sqlite_database_refuses_to_start() {
    tokio::task::spawn_blocking(|| {
        let fresh = Fresh::new();
        let data = fresh.data();
        while_running(&data, &["serve", "--addr", "127.0.0.1:0"], |first| {
            assert!(first.starts_with("pbi-bridge server listening on "), "{first}");
            let second = run(&data, &["serve", "--addr", "127.0.0.1:0"], None);
            assert_eq!(second.code, Some(1), "{}", second.stderr);
            assert!(
                second.stderr.contains("another pbi-bridge server is already running on the SQLite database")
                    && second.stderr.contains("use PostgreSQL (--database-url postgres://…; see docs/scaling.md)"),
                "{}",
                second.stderr
            );
            let listed = run(&data, &["jobs", "schedules", "--json"], None);
            assert_eq!(listed.code, Some(0), "the CLI works beside the server: {}", listed.stderr);
        });
        let after = while_running(&data, &["serve", "--addr", "127.0.0.1:0"], |first| {
            assert!(first.starts_with("pbi-bridge server listening on "))
        });
        assert!(after.contains("Press Ctrl-C to stop."), "once the first has stopped, a server starts again: {after}");
    })
    .await
    .expect("task");
}

//! Running `pbi-bridge serve` processes from a test: a temporary folder and an instance killed when dropped.
//! Shared by the instances binary and `it`'s nginx test (`#[path]`), so both start servers the same way.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `serve --job-rescue-after-seconds`: how long a job of a killed process stays "running" before River's
/// leader rescues it (the default, 6 minutes, would not fit in a test). Long enough that a job of a live but
/// loaded instance (three servers and PostgreSQL on two cores) is not taken for a dead one's.
pub const RESCUE_AFTER_SECONDS: u64 = 10;

/// A temporary folder for the key file and the instances' logs, removed at the end.
pub struct Folder(pub PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `pbi-bridge serve`, killed (SIGKILL) when dropped if the test did not kill it first.
pub struct Instance {
    pub child: Child,
    pub url: String,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// What the instance wrote to stderr so far: for a failing assertion's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts `serve` on the database and waits for its "listening on" line; stdout is drained by a thread
    /// of its own after that (a closed pipe would make the server's next line fail).
    pub fn start(folder: &Path, n: usize, database: &str, key_file: &Path) -> Self {
        let log = folder.join(format!("serve-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(["serve", "--addr", "127.0.0.1:0", "--database", database])
            .arg("--key-file")
            .arg(key_file)
            .arg("--data-dir")
            .arg(folder.join(format!("data-{n}")))
            .args(["--job-rescue-after-seconds", &RESCUE_AFTER_SECONDS.to_string()])
            .env_remove("PBI_BRIDGE__CRYPTO__KEYS")
            .env("PBI_BRIDGE_LOG", "warn,pbi_jobs=info,riverqueue=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("serve starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("a first line");
        let url = first
            .trim()
            .strip_prefix("pbi-bridge server listening on ")
            .unwrap_or_else(|| panic!("instance {n}: {first:?}; stderr: {}", std::fs::read_to_string(&log).unwrap_or_default()))
            .to_owned();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Instance { child, url, log }
    }
}

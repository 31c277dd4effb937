//! `deploy/nginx.conf`, the front of docs/scaling.md, in use: two `serve` processes on one PostgreSQL database
//! behind Debian's nginx, configured from that very file (only its addresses and TLS lines are replaced).
//! Requests without a session spread over both instances; a signed-in browser stays on one (so the message
//! and the new API token shown after an action are there on the next page); when that instance is killed,
//! the same session goes on through the other one.

use crate::serve::{Folder, Instance};
use crate::up_cli::{hidden, sign_in};
use pbi_store::Store;
use secrecy::SecretString;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const SESSIONS: usize = 8;
const PASSWORD: &str = "a long enough password";

/// nginx: `PBI_BRIDGE_NGINX`, else on the PATH, else Debian's `/usr/sbin/nginx` (scripts/test installs it).
fn nginx_binary() -> PathBuf {
    if let Ok(path) = std::env::var("PBI_BRIDGE_NGINX") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| panic!("nginx is not installed: run scripts/test (it installs Debian's nginx) or set PBI_BRIDGE_NGINX"))
}

/// The deployed configuration with this test's upstreams and a plain-HTTP listener on `port`; every other
/// line (the affinity map, the hash, the proxy settings) is the file's own.
fn site_config(deployed: &str, upstreams: &[&str], port: u16) -> String {
    let mut out = String::new();
    let mut servers_written = false;
    for line in deployed.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("server ") && trimmed.contains("max_fails") {
            if !servers_written {
                for upstream in upstreams {
                    out.push_str(&format!("    server {upstream} max_fails=3 fail_timeout=10s;\n"));
                }
                servers_written = true;
            }
        } else if trimmed.starts_with("listen ") {
            out.push_str(&format!("    listen 127.0.0.1:{port};\n"));
        } else if !trimmed.starts_with("ssl_") {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(servers_written, "deploy/nginx.conf has no upstream servers to replace");
    out
}

/// nginx started as a daemon on its own prefix: by the time the command returns, it listens. Stopped on drop.
struct Nginx {
    binary: PathBuf,
    config: PathBuf,
    prefix: PathBuf,
}

impl Nginx {
    fn start(folder: &Path, upstreams: &[&str]) -> (Self, String) {
        let deployed =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx.conf")).expect("deploy/nginx.conf");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let prefix = folder.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).expect("nginx prefix");
        // Which instance answered, for the test to read; the deployed file sets no header of its own, so this
        // one (at the http level) reaches its location.
        let config = format!(
            "pid {prefix}/nginx.pid;\nerror_log {prefix}/logs/error.log warn;\nevents {{}}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {prefix}/body;\nproxy_temp_path {prefix}/proxy;\n\
             add_header X-Test-Upstream $upstream_addr always;\n{site}}}\n",
            prefix = prefix.display(),
            site = site_config(&deployed, upstreams, port)
        );
        let path = prefix.join("nginx.conf");
        std::fs::write(&path, config).expect("nginx.conf");
        let nginx = Nginx { binary: nginx_binary(), config: path, prefix };
        let started = nginx.run(&[]);
        assert!(started.status.success(), "nginx did not start: {}", String::from_utf8_lossy(&started.stderr));
        (nginx, format!("http://127.0.0.1:{port}"))
    }

    fn run(&self, extra: &[&str]) -> std::process::Output {
        Command::new(&self.binary).arg("-p").arg(&self.prefix).arg("-c").arg(&self.config).args(extra).output().expect("nginx runs")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.run(&["-s", "stop"]);
    }
}

/// The instance that answered (the last one nginx tried, when the first one failed).
fn upstream(response: &reqwest::Response) -> String {
    let tried = response.headers().get("x-test-upstream").and_then(|v| v.to_str().ok()).expect("nginx names the instance");
    tried.rsplit(", ").next().unwrap_or(tried).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_spreads_new_visitors_keeps_a_session_on_one_instance_and_survives_losing_it() {
    let db = pbi_testdb::TestDb::new(true, "nginx").await;
    let folder = Folder(std::env::temp_dir().join(format!("pbi-nginx-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&folder.0).expect("folder");
    let key_file = folder.0.join("keys");
    pbi_crypto::KeyRing::write_new_key_file(&key_file, &pbi_crypto::KeyRing::new_key_line(1)).expect("key file");
    let store = Store::connect(&db.url, pbi_crypto::KeyRing::load(&key_file).expect("keys")).await.expect("store");
    let hash = pbi_server::users::hash_password(&SecretString::from(PASSWORD.to_owned())).expect("hash");
    store.add_user("ada", "Ada", &hash, false, time::OffsetDateTime::now_utc().unix_timestamp()).await.expect("ada");

    let mut instances: Vec<Instance> = (0..2).map(|n| Instance::start(&folder.0, n, &db.url, &key_file)).collect();
    let addresses: Vec<String> = instances.iter().map(|i| i.url.trim_start_matches("http://").trim_end_matches('/').to_owned()).collect();
    let (_nginx, base) = Nginx::start(&folder.0, &addresses.iter().map(String::as_str).collect::<Vec<_>>());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    // New visitors (no session cookie) are spread: each request hashes on its own id.
    let mut answered = HashSet::new();
    for _ in 0..40 {
        let page = http.get(format!("{base}/login")).send().await.expect("GET");
        assert_eq!(page.status(), 200);
        answered.insert(upstream(&page));
    }
    assert_eq!(answered.len(), 2, "forty first visits reach both instances: {answered:?}");

    // Each signed-in browser stays on one instance: the token made on one page is shown on the next.
    let mut sessions = Vec::new();
    for n in 0..SESSIONS {
        // The form and the POST may reach different instances (no session cookie yet): the form's key is shared.
        let session = sign_in(&http, &base, "ada", PASSWORD).await;
        let settings = http.get(format!("{base}/settings")).header("cookie", &session).send().await.expect("GET");
        let home = upstream(&settings);
        let csrf = hidden(&settings.text().await.expect("page"), "csrf");
        let made = http
            .post(format!("{base}/settings/tokens"))
            .header("cookie", &session)
            .form(&[("csrf", csrf.as_str()), ("name", &format!("token {n}")), ("expires_in_days", "")])
            .send()
            .await
            .expect("POST");
        assert_eq!((made.status().as_u16(), upstream(&made)), (303, home.clone()), "session {n} stays on {home}");
        let shown = http.get(format!("{base}/settings")).header("cookie", &session).send().await.expect("GET");
        assert_eq!(upstream(&shown), home, "session {n} stays on {home}");
        let page = shown.text().await.expect("page");
        assert!(page.contains(&format!("Made the API token “token {n}”.")), "the message reached session {n}'s next page");
        sessions.push((session, home));
    }

    // The instance one session lives on dies: nginx sends the same session to the other, still signed in.
    let (session, home) = sessions[0].clone();
    let victim = addresses.iter().position(|a| *a == home).expect("one of ours");
    instances[victim].child.kill().expect("SIGKILL");
    instances[victim].child.wait().expect("reaped");
    for _ in 0..3 {
        let settings = http.get(format!("{base}/settings")).header("cookie", &session).send().await.expect("GET");
        let survivor = &instances[1 - victim];
        assert_eq!(settings.status(), 200, "the session goes on after its instance died; its log: {}", survivor.log());
        assert_ne!(upstream(&settings), home);
        assert!(settings.text().await.expect("page").contains(r#"id="api-tokens""#), "still signed in");
    }
    drop(instances);
}

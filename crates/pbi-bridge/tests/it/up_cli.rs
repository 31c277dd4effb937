//! `pbi-bridge up`: the newcomer's first command, driven as a browser would, through the real binary.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub(crate) struct Up {
    child: Child,
    pub(crate) base: String,
    /// Kept open while the server runs: it goes on writing its banner after the first line.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn up(data_dir: &Path) -> Up {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(["up", "--addr", "127.0.0.1:0", "--sandbox-addr", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .env_remove("PBI_BRIDGE__CRYPTO__KEYS")
            .env_remove("PBI_BRIDGE__DATABASE__URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("up runs");
        let mut first = String::new();
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        stdout.read_line(&mut first).expect("a first line");
        let base = first.trim().strip_prefix("pbi-bridge up: open ").unwrap_or_else(|| panic!("unexpected first line: {first}")).to_owned();
        Up { child, base, _stdout: stdout }
    })
    .await
    .expect("task")
}

pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..start + html[start..].find('"').expect("closing quote")].to_owned()
}

fn cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

pub(crate) async fn sign_in(http: &reqwest::Client, base: &str, user: &str, password: &str) -> String {
    let form = http.get(format!("{base}/login")).send().await.expect("GET");
    let login_csrf = cookie(&form, "pbi_login_csrf");
    let csrf = hidden(&form.text().await.expect("page"), "csrf");
    let signed_in = http
        .post(format!("{base}/login"))
        .header("cookie", login_csrf)
        .form(&[("csrf", csrf.as_str()), ("username", user), ("password", password), ("next", "/")])
        .send()
        .await
        .expect("POST");
    assert_eq!(signed_in.status(), 303, "{user} signs in");
    cookie(&signed_in, "pbi_session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_lets_a_demo_user_connect_their_power_bi_account_and_a_restart_keeps_the_data() {
    let dir = std::env::temp_dir().join(format!("pbi-up-{}", uuid::Uuid::new_v4()));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let running = up(&dir).await;
    let base = running.base.clone();
    let session = sign_in(&http, &base, "alice", "alice-demo-password").await;
    let settings = http.get(format!("{base}/settings")).header("cookie", &session).send().await.expect("GET").text().await.expect("page");
    let to_entra = http
        .post(format!("{base}/connect"))
        .header("cookie", &session)
        .form(&[("csrf", hidden(&settings, "csrf").as_str()), ("reconsent", "false")])
        .send()
        .await
        .expect("POST");
    let authorize = to_entra.headers()["location"].to_str().expect("ascii").to_owned();
    let sandbox = authorize.split("/contoso.onmicrosoft.com/").next().expect("sandbox base").to_owned();
    let page = http.get(&authorize).send().await.expect("GET").text().await.expect("sign-in page");
    let login = http
        .post(format!("{sandbox}/contoso.onmicrosoft.com/login"))
        .form(&[("ctx", hidden(&page, "ctx").as_str()), ("login", "alice@contoso.onmicrosoft.com"), ("passwd", "alice-password")])
        .send()
        .await
        .expect("POST");
    let entra = cookie(&login, "sandbox_estsauth");
    let consent = login.text().await.expect("consent page");
    assert!(consent.contains("View all dashboards"), "seed 000's permissions are asked for");
    let accepted = http
        .post(format!("{sandbox}/contoso.onmicrosoft.com/consent"))
        .header("cookie", entra)
        .form(&[("ctx", hidden(&consent, "ctx").as_str()), ("decision", "accept")])
        .send()
        .await
        .expect("POST");
    let back = accepted.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(back.starts_with(&format!("{base}/oauth/callback")), "{back}");
    http.get(&back).header("cookie", &session).send().await.expect("callback");
    let connected = http.get(format!("{base}/settings")).header("cookie", &session).send().await.expect("GET").text().await.expect("page");
    assert!(connected.contains("alice@contoso.onmicrosoft.com") && connected.contains(r#"id="status">connected"#), "{connected}");

    // Seed 001 is ready to try: demo items on a SQLite data source, the templates complete in the sandbox.
    let items = http.get(format!("{base}/items")).header("cookie", &session).send().await.expect("GET").text().await.expect("page");
    for name in ["IT Spend by department", "Monthly spend", "Total spend", "Open orders"] {
        assert!(items.contains(name), "{name} in {items}");
    }
    let at = items.find("IT Spend by department").expect("the item");
    let start = at + items[at..].find("/items/").expect("its pin link");
    let pin_path = items[start..start + items[start..].find('"').expect("end")].to_owned();
    let dialog = http.get(format!("{base}{pin_path}")).header("cookie", &session).send().await.expect("GET").text().await.expect("page");
    let form = [
        ("csrf", hidden(&dialog, "csrf")),
        ("target", "me:new".to_owned()),
        ("new_dashboard_name", "IT Spend Analysis Sample".to_owned()),
        ("every", "hourly".to_owned()),
        ("minute", "0".to_owned()),
        ("time_zone", "UTC".to_owned()),
        ("param.company", "USMF".to_owned()),
    ];
    let pinned = http.post(format!("{base}{pin_path}")).header("cookie", &session).form(&form).send().await.expect("POST");
    assert_eq!(pinned.status(), 303);
    let shown = pinned.headers()["location"].to_str().expect("ascii").to_owned();
    let page = http.get(format!("{base}{shown}")).header("cookie", &session).send().await.expect("GET").text().await.expect("page");
    // The first delivery ran the item's query on the demo database: its four departments.
    assert!(page.contains("and delivered: the tile shows") && page.contains(r#"<td class="num">4</td>"#), "{page}");
    drop(running);

    // A restart keeps pbi-bridge's data (users, registration, connections); the in-memory sandbox starts afresh.
    let again = up(&dir).await;
    let session = sign_in(&http, &again.base, "alice", "alice-demo-password").await;
    let settings =
        http.get(format!("{}/settings", again.base)).header("cookie", &session).send().await.expect("GET").text().await.expect("page");
    assert!(settings.contains("alice@contoso.onmicrosoft.com"), "the connection survived the restart: {settings}");
    drop(again);
    let _ = std::fs::remove_dir_all(dir);
}

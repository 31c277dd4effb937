//! The embed page in a real headless Chromium: a host page on another origin speaks the powerbi-client
//! protocol to it (`/tile/load` with an embed token) and receives `tileLoaded` and `rendered`.

use crate::support::*;
use pbi_sandbox::demo_id;
use reqwest::Method;
use serde_json::json;
use std::path::PathBuf;

/// Debian's Chromium (`./scripts/test` installs it); `PBI_BRIDGE_CHROMIUM` overrides the path.
fn chromium() -> String {
    std::env::var("PBI_BRIDGE_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

async fn run_chromium(extra: Vec<String>, url: String) -> String {
    tokio::task::spawn_blocking(move || {
        let profile = std::env::temp_dir().join(format!("pbi-bridge-chromium-{}", uuid::Uuid::new_v4()));
        let output = std::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap_or_else(|e| panic!("cannot run Chromium ({e}); ./scripts/test installs it, or set PBI_BRIDGE_CHROMIUM"));
        let _ = std::fs::remove_dir_all(profile);
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .expect("chromium task")
}

fn host_page(embed_url: &str, token: &str, tile: &str, dashboard: &str) -> String {
    format!(
        r#"<!doctype html><html><body style="margin:0">
<div id="status">waiting</div>
<div style="width:640px;height:360px"><iframe id="frame" src="{embed_url}&uid=u1" style="width:100%;height:100%;border:0"></iframe></div>
<script>
const seen = [];
const show = () => document.getElementById("status").textContent = seen.join(" ");
window.addEventListener("message", (e) => {{
  const m = e.data;
  if (m && m.url) {{ seen.push(m.url); e.source.postMessage({{statusCode: 202, headers: {{}}, body: {{}}, windowPostMessageProxy: m.windowPostMessageProxy}}, "*"); }}
  else if (m && m.statusCode) {{ seen.push("load:" + m.statusCode); }}
  show();
}});
document.getElementById("frame").addEventListener("load", () => {{
  document.getElementById("frame").contentWindow.postMessage({{method: "POST", url: "/tile/load", headers: {{uid: "u1"}},
    body: {{type: "tile", tokenType: 1, accessToken: "{token}", embedUrl: "{embed_url}", id: "{tile}", dashboardId: "{dashboard}"}},
    windowPostMessageProxy: {{id: "host-1"}}}}, "*");
}});
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_draws_a_tile_from_an_embed_token_and_reports_tile_loaded() {
    let t = TestSandbox::start().await;
    let alice = t.user_token("alice@contoso.onmicrosoft.com").await;
    let (ws, dash) = (demo_id("ws:sales"), demo_id("dash:sales-overview"));
    let (_, tiles) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dash}/tiles")).await;
    let tile = tiles["value"][1].clone();
    let tile_id = tile["id"].as_str().expect("id");
    let (_, _, token) = t
        .call(
            &alice,
            Method::POST,
            &format!("/groups/{ws}/dashboards/{dash}/tiles/{tile_id}/GenerateToken"),
            Some(json!({"accessLevel": "View"})),
        )
        .await;
    let html = host_page(tile["embedUrl"].as_str().expect("embedUrl"), token["token"].as_str().expect("token"), tile_id, &dash.to_string());

    // The host page lives on its own origin, as an application embedding Power BI would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let host = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dom = run_chromium(vec!["--virtual-time-budget=20000".into(), "--dump-dom".into()], host.clone()).await;
    assert!(dom.contains("load:202"), "the embed page accepted /tile/load: {dom}");
    assert!(dom.contains("/tile/u1/events/tileLoaded") && dom.contains("/tile/u1/events/rendered"), "{dom}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&shots).expect("artifacts dir");
    let shot = shots.join("sandbox-embed-tile.png");
    run_chromium(
        vec!["--virtual-time-budget=20000".into(), "--window-size=660,420".into(), format!("--screenshot={}", shot.display())],
        host,
    )
    .await;
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "a screenshot at {}", shot.display());
    server.abort();
}

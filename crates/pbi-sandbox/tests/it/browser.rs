//! The embed page in a real headless Chromium: a host page on another origin speaks the powerbi-client
//! protocol to it (`/tile/load` with an embed token) and receives `tileLoaded` and `rendered`. Chromium is
//! driven by `tests/browser/embed.mjs`, which waits for that exchange on the page, not for a length of time.

use crate::support::*;
use pbi_sandbox::demo_id;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Runs `tests/browser/embed.mjs` (puppeteer-core on Debian's Chromium; `./scripts/test` installs both): it
/// opens the host page, waits for the embed exchange to finish, screenshots it, and prints what it saw.
/// Then it pushes `push`'s rows (`{url, token, body}`) and waits for the tile to redraw by itself.
fn drive_chromium(host: &str, shot: &Path, push: &serde_json::Value) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/embed.mjs");
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(host)
        .arg(shot)
        .arg(push.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); ./scripts/test installs what the browser tests need"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the embed page in Chromium failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs `tests/browser/copy.mjs` on the callback page at `url`: it clicks Copy and prints what was copied.
fn copy_in_chromium(url: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/copy.mjs");
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); ./scripts/test installs what the browser tests need"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the callback page in Chromium failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The width and height a PNG's header gives (its IHDR chunk), or `None` if the bytes are not a PNG.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n")?.get(4..16)?.strip_prefix(b"IHDR")?;
    let number = |at: usize| ihdr.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
    Some((number(0)?, number(4)?))
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
async fn chromium_draws_a_tile_from_an_embed_token_reports_tile_loaded_and_redraws_after_a_push() {
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

    // This run's screenshot only: last run's file is removed first, so it cannot pass for this one.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&shots).expect("artifacts dir");
    let shot = shots.join("sandbox-embed-tile.png");
    match std::fs::remove_file(&shot) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("cannot remove last run's {}: {e}", shot.display()),
        _ => {}
    }
    // Once drawn, a new region's sales are pushed to the tile's dataset, as a delivery would.
    let push = json!({
        "url": t.url(&format!("/v1.0/myorg/groups/{ws}/datasets/{}/tables/Sales/rows", demo_id("ds:retail-sales"))),
        "token": alice,
        "body": {"rows": [{"Date": "2026-12-01T00:00:00Z", "Region": "Central", "Product": "Bikes", "Amount": 5000.0, "Units": 5, "CompanyId": "USMF"}]},
    });
    let seen = tokio::task::spawn_blocking({
        let shot = shot.clone();
        move || drive_chromium(&host, &shot, &push)
    })
    .await
    .expect("chromium task");
    let status = seen["status"].as_str().unwrap_or_default();
    assert!(status.contains("load:202"), "the embed page accepted /tile/load: {status}");
    assert!(status.contains("/tile/u1/events/tileLoaded") && status.contains("/tile/u1/events/rendered"), "{status}");
    let (before, after) = (seen["before"].as_str().unwrap_or_default(), seen["after"].as_str().unwrap_or_default());
    assert!(before.contains("North") && !before.contains("Central"), "drawn first without it: {before}");
    assert!(after.contains("Central"), "the tile redrew by itself after the push: {after}");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("a screenshot at {}: {e}", shot.display()));
    assert_eq!(png_size(&png), Some((660, 420)), "a PNG of the page's viewport at {}", shot.display());
    assert!(png.len() > 1000, "more than a blank page: {} bytes", png.len());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_pages_copy_button_copies_the_whole_command_without_inline_script() {
    let t = TestSandbox::start().await;
    let redirect = t.authorize_as("alice@contoso.onmicrosoft.com", &[]).await;
    let page = t.http.get(&redirect).send().await.expect("GET");
    let policy = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline'; script"), "no inline script may run: {policy}");
    let html = page.text().await.expect("page");
    let start = html.find(r#"<pre id="redeem" class="wrap">"#).expect("the command") + r#"<pre id="redeem" class="wrap">"#.len();
    let command = html[start..].split("</pre>").next().expect("its end").replace("&#39;", "'").replace("&amp;", "&");

    let seen = tokio::task::spawn_blocking(move || copy_in_chromium(&redirect)).await.expect("chromium task");
    assert_eq!(seen["button"], "Copied", "{seen}");
    assert_eq!(seen["clipboard"].as_str(), Some(command.as_str()), "the whole command, as one line");
    assert_eq!(seen["violations"], json!([]), "the page broke its own policy: {seen}");
}

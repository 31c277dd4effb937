//! The Content-Security-Policy on every answer, pages that work under it (no inline script, style or
//! handler), and the one place the policy opens: tile frames, only from the configured Power BI's embed host.
//! A tile whose embed URL is elsewhere is neither pinned, nor drawn, nor given the user's token.

use crate::connect::world;
use crate::hidden;
use crate::workspaces::{key_of, offered};
use pbi_store::Pin;
use reqwest::StatusCode;

/// The policy's directives by name.
fn directives(policy: &str) -> std::collections::HashMap<String, Vec<String>> {
    policy
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            Some((words.next()?.to_ascii_lowercase(), words.map(str::to_owned).collect()))
        })
        .collect()
}

/// What a page may not hold if it is to work under `script-src 'self'; style-src 'self'`.
fn inline_code(page: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut found = Vec::new();
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').unwrap_or(lower.len() - at)];
        if !tag.contains(" src=") {
            found.push(format!("an inline script: {}", &page[at..(at + 80).min(page.len())]));
        }
    }
    for pattern in ["<style", " style=\"", "javascript:"] {
        if let Some(at) = lower.find(pattern) {
            found.push(format!("{pattern}: {}", &page[at..(at + 80).min(page.len())]));
        }
    }
    // Event handler attributes (onclick=, onsubmit=, …) are inline script too.
    for (at, _) in lower.match_indices(" on") {
        let name: String = lower[at + 3..].chars().take_while(char::is_ascii_alphabetic).collect();
        if !name.is_empty() && lower[at + 3 + name.len()..].starts_with('=') {
            found.push(format!("a handler attribute on{name}"));
        }
    }
    found
}

fn attribute(html: &str, attribute: &str) -> Option<String> {
    let marker = format!(r#"{attribute}=""#);
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_a_content_security_policy_and_every_page_works_under_it() {
    let world = world().await;
    let app = &world.app;
    let alice = world.connected("alice").await;
    let admin = app.session("admin").await;
    let workspace = world.new_workspace(&alice, "Policies").await;
    let (_, pin_page) = app.page(&alice, &format!("{workspace}/pin")).await;
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    let tiles = offered(&pin_page);
    world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Total Sales"))]).await;

    let sandbox = url::Url::parse(world.sandbox.base_url()).expect("URL").origin().ascii_serialization();
    let unknown = format!("/workspaces/{}", uuid::Uuid::new_v4());
    let pin_path = format!("{workspace}/pin");
    let pages: Vec<(&str, &str)> = vec![
        ("/login", ""),
        ("/", &alice),
        ("/settings", &alice),
        ("/workspaces", &alice),
        (&workspace, &alice),
        (&pin_path, &alice),
        ("/admin/powerbi", &admin),
        ("/admin/users", &admin),
        ("/api/docs", ""),
        ("/nowhere", ""),
        // A problem page: not found among Alice's workspaces.
        (&unknown, &alice),
    ];
    let mut assets = std::collections::BTreeSet::new();
    for (path, cookie) in &pages {
        let response = app.http.get(app.url(path)).header("cookie", *cookie).send().await.expect("GET");
        let policy = response.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let is_html = response.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
        let page = response.text().await.expect("page");
        let d = directives(&policy);
        for (name, value) in [
            ("default-src", "'self'"),
            ("script-src", "'self'"),
            ("style-src", "'self'"),
            ("frame-ancestors", "'none'"),
            ("object-src", "'none'"),
            ("base-uri", "'none'"),
        ] {
            assert_eq!(d.get(name).map(Vec::as_slice), Some(&[value.to_owned()][..]), "{path}: {name} in {policy:?}");
        }
        let frames = d.get("frame-src").cloned().unwrap_or_default();
        if *path == workspace {
            assert!(frames.contains(&sandbox), "{path}: the tiles' embed host may be framed: {policy}");
            assert!(frames.iter().all(|f| f.starts_with("https://") || *f == sandbox), "only embed hosts: {policy}");
        } else {
            assert_eq!(frames, ["'none'"], "{path}: nothing else frames anything: {policy}");
        }
        if is_html {
            assert_eq!(inline_code(&page), Vec::<String>::new(), "{path} must work under the policy");
            for (at, _) in page.match_indices("src=\"/static/").chain(page.match_indices("href=\"/static/")) {
                let rest = &page[at + page[at..].find('"').expect("quote") + 1..];
                assets.insert(rest[..rest.find('"').expect("quote")].to_owned());
            }
        }
    }
    // The policy's own scripts and stylesheet are served, typed, and carry the policy too.
    assert!(assets.iter().any(|a| a.ends_with(".css")) && assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        let response = app.http.get(app.url(asset)).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let kind = response.headers()["content-type"].to_str().expect("ascii").to_owned();
        assert!(kind.starts_with(if asset.ends_with(".css") { "text/css" } else { "text/javascript" }), "{asset}: {kind}");
        assert!(response.headers().contains_key("content-security-policy"), "{asset}");
    }
    // JSON answers too: a browser shown one directly runs nothing from it.
    let me = app.http.get(app.url("/api/v1/me")).header("cookie", &alice).send().await.expect("GET");
    assert!(me.headers().contains_key("content-security-policy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workspace_script_posts_the_token_to_the_embed_hosts_origin_only() {
    let world = world().await;
    let app = &world.app;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Origins").await;
    let (status, page) = app.page(&alice, &workspace).await;
    assert_eq!(status, StatusCode::OK);
    let mut script = String::new();
    for (at, _) in page.match_indices("<script") {
        let path = attribute(&page[at..], "src").expect("every script is a file");
        script.push_str(&app.http.get(app.url(&path)).send().await.expect("GET").text().await.expect("script"));
    }
    assert!(script.contains("postMessage"), "the page loads the tile script");
    // Every message leaves with a named target origin: "*" would hand the token to whatever the frame holds.
    for (at, _) in script.match_indices("postMessage(") {
        let call = &script[at..at + script[at..].find(");").expect("end of call")];
        assert!(!call.contains("\"*\"") && !call.contains("'*'"), "{call}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tile_whose_embed_url_is_on_another_host_is_not_drawn_and_gets_no_token() {
    let world = world().await;
    let app = &world.app;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Elsewhere").await;
    let (_, pin_page) = app.page(&alice, &format!("{workspace}/pin")).await;
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    let tiles = offered(&pin_page);
    world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Total Sales"))]).await;
    let workspace_id: uuid::Uuid = workspace.trim_start_matches("/workspaces/").parse().expect("id");
    let good = app.store.pins(workspace_id).await.expect("pins").remove(0);
    // As if Power BI (or whatever answered for it) had named another host: stored before this check existed.
    let foreign = app
        .store
        .add_pin(
            &Pin {
                id: uuid::Uuid::nil(),
                title: "Look-alike".into(),
                // Another tile: a tile is pinned once per workspace.
                tile_id: uuid::Uuid::new_v4().to_string(),
                embed_url: format!("https://app.powerbi.com.evil.example/embed?dashboardId={}&tileId=x", good.dashboard_id),
                ..good.clone()
            },
            app.clock.unix(),
        )
        .await
        .expect("pin");

    let response = app.http.get(app.url(&workspace)).header("cookie", &alice).send().await.expect("GET");
    let policy = response.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    let page = response.text().await.expect("page");
    assert!(!policy.contains("evil.example"), "{policy}");
    assert_eq!(page.matches(r#"<iframe class="tile-frame""#).count(), 1, "only the tile on the embed host is framed: {page}");
    assert!(!page.contains("data-src=\"https://app.powerbi.com.evil.example"), "{page}");
    let tile = &page[page.find(&format!(r#"id="pin-{}""#, foreign.id)).expect("the refused tile is listed")..];
    let tile = &tile[..tile.find("</div>\n</div>").unwrap_or(tile.len())];
    assert!(tile.contains("https://app.powerbi.com.evil.example") && tile.contains("not drawn"), "says why: {tile}");
    assert!(tile.contains("Unpin"), "and can be unpinned: {tile}");

    let token =
        app.http.get(app.url(&format!("/api/v1{workspace}/pins/{}/token", foreign.id))).header("cookie", &alice).send().await.expect("GET");
    assert_eq!(token.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = token.json().await.expect("JSON");
    assert!(body.get("accessToken").is_none(), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("evil.example")), "{body}");
    let fine = app.http.get(app.url(&format!("/api/v1{workspace}/pins/{}/token", good.id))).header("cookie", &alice).send().await;
    assert_eq!(fine.expect("GET").status(), StatusCode::OK, "the tile on the embed host still gets its token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tile_power_bi_lists_on_another_host_cannot_be_pinned() {
    let world = world().await;
    let app = &world.app;
    // The same sandbox under another name: what it answers (embed URLs on 127.0.0.1) is then on a host other
    // than the configured API's (localhost).
    let registration = app.store.registration_by_name("erp").await.expect("registration");
    let mut details = registration.details.clone();
    let renamed = world.sandbox.base_url().replace("127.0.0.1", "localhost");
    details.api_base = Some(renamed.clone());
    app.store.update_registration(registration.id, &details, app.clock.unix()).await.expect("update");
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Renamed").await;
    let (status, pin_page) = app.page(&alice, &format!("{workspace}/pin")).await;
    assert_eq!(status, StatusCode::OK, "{pin_page}");
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    let tiles = offered(&pin_page);
    let refused =
        world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Total Sales"))]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let text = refused.text().await.expect("page");
    assert!(text.contains("tiles[0]") && text.contains(world.sandbox.base_url()) && text.contains(&renamed), "{text}");
    let workspace_id: uuid::Uuid = workspace.trim_start_matches("/workspaces/").parse().expect("id");
    assert!(app.store.pins(workspace_id).await.expect("pins").is_empty(), "nothing was pinned");
}

//! Seed 002's connect flow: an app's backend makes a connect session with its secret key; its end user opens
//! the link, is sent through Entra ID's sign-in and consent, and the connection is theirs (an end user's, not a
//! pbi-bridge user's); the app reads the outcome. Each failure is its own page and its own outcome.

use crate::connect::World;
use crate::hidden;
use pbi_connect::app::AppSpec;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

pub(crate) const ALICE: &str = "alice@contoso.onmicrosoft.com";

/// An app on the world's registration, with `origins`; its secret key.
pub(crate) async fn app_of(world: &World, name: &str, origins: &[&str]) -> (pbi_store::App, String) {
    let registration = world.app.store.registrations(false).await.expect("registrations").remove(0).id;
    let spec =
        AppSpec { name: name.into(), registration_id: registration, allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect() };
    let (app, key) = pbi_connect::apps::create(&world.app.store, "admin", &spec, world.app.clock.unix()).await.expect("app");
    (app, key.secret.expose_secret().to_owned())
}

pub(crate) async fn create_session(world: &World, key: &str, body: Value) -> reqwest::Response {
    world.app.http.post(world.app.url("/api/v1/connect/sessions")).bearer_auth(key).json(&body).send().await.expect("POST")
}

/// The app reads its session.
async fn read_session(world: &World, key: &str, id: &str) -> Value {
    let read = world.app.http.get(world.app.url(&format!("/api/v1/connect/sessions/{id}"))).bearer_auth(key).send().await;
    read.expect("GET").json().await.expect("JSON")
}

/// The app lists its connections with `query`.
async fn list_connections(world: &World, key: &str, query: &str) -> Value {
    let listed = world.app.http.get(world.app.url(&format!("/api/v1/connect/connections{query}"))).bearer_auth(key).send().await;
    listed.expect("GET").json().await.expect("JSON")
}

/// The `set-cookie` of the connect page's browser cookie, as a `cookie` header value.
fn browser_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pbi_connect="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// A browser (no pbi-bridge session) opens the session's link: its cookie and the page's address.
pub(crate) async fn open_link(world: &World, url: &str) -> (String, String) {
    let opened = world.app.http.get(url).send().await.expect("GET");
    assert_eq!(opened.status(), StatusCode::SEE_OTHER, "{:?}", opened.text().await);
    let cookie = browser_cookie(&opened).expect("the browser's cookie");
    let page = opened.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(!page.contains("pcs_"), "the token leaves the address bar: {page}");
    (cookie, page)
}

/// Continue on the connect page, sign in at Entra as `upn` with `decision`, and come back to pbi-bridge's
/// callback: where the callback sends the browser.
pub(crate) async fn connect_as(world: &World, cookie: &str, page: &str, upn: &str, decision: &str) -> String {
    let (status, html) = world.app.page(cookie, page).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = hidden(&html, "csrf").expect("csrf");
    let to_entra =
        world.app.http.post(world.app.url(page)).header("cookie", cookie).form(&[("csrf", csrf.as_str())]).send().await.expect("POST");
    assert_eq!(to_entra.status(), StatusCode::SEE_OTHER);
    let authorize = to_entra.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(authorize.contains("prompt=select_account"), "{authorize}");
    let back = world.sign_in_at_entra(&authorize, upn, decision).await;
    assert!(back.starts_with(&world.app.url("/oauth/callback?")), "{back}");
    let landed = world.app.http.get(&back).header("cookie", cookie).send().await.expect("callback");
    assert_eq!(landed.status(), StatusCode::SEE_OTHER, "{:?}", landed.text().await);
    landed.headers()["location"].to_str().expect("ascii").to_owned()
}

#[tokio::test]
async fn an_apps_end_user_connects_their_own_power_bi_account_through_a_connect_session() {
    let world = crate::connect::world().await;
    let (_, key) = app_of(&world, "ERP", &["http://localhost:3000"]).await;
    let (_, other_key) = app_of(&world, "CRM", &[]).await;
    let end_user = json!({"endUser": {"id": "u-42", "email": "ann@erp.example", "displayName": "Ann"}});

    // Only an app's secret key opens the Connect API.
    let none = world.app.http.post(world.app.url("/api/v1/connect/sessions")).json(&end_user).send().await.expect("POST");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = create_session(&world, "pbb_not-an-app-key", end_user.clone()).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("body").contains("not an app's secret key"));
    let elsewhere = create_session(&world, &key, json!({"endUser": {"id": "u-42"}, "returnUrl": "https://evil.example.com/x"})).await;
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
    let refused: Value = elsewhere.json().await.expect("JSON");
    assert_eq!(refused["error"]["field"], "returnUrl", "{refused}");
    let nameless = create_session(&world, &key, json!({"endUser": {"id": " "}})).await;
    assert_eq!(nameless.json::<Value>().await.expect("JSON")["error"]["field"], "endUser.id");

    let made = create_session(&world, &key, end_user.clone()).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.expect("JSON");
    let token = made["token"].as_str().expect("token");
    let url = made["url"].as_str().expect("url").to_owned();
    let session_id = made["session"]["id"].as_str().expect("id").to_owned();
    assert!(token.starts_with("pcs_") && url == world.app.url(&format!("/connect/app?session={token}")), "{made}");
    assert_eq!((made["session"]["status"].as_str(), made["endUser"]["externalId"].as_str()), (Some("pending"), Some("u-42")));

    // The first browser to open the link holds it; another browser is refused.
    let (cookie, page) = open_link(&world, &url).await;
    let second = world.app.http.get(&url).send().await.expect("GET");
    assert_eq!(second.status(), StatusCode::FORBIDDEN);
    let (_, html) = world.app.page(&cookie, &page).await;
    assert!(html.contains("Connect your Power BI account to ERP") && html.contains("(Ann)"), "{html}");
    assert!(html.contains(r#"data-scope="Dashboard.Read.All""#) && !html.contains("sign-in-link"), "{html}");
    let forged = world.app.http.post(world.app.url(&page)).header("cookie", &cookie).form(&[("csrf", "x")]).send().await.expect("POST");
    assert_ne!(forged.status(), StatusCode::SEE_OTHER, "a form without the page's CSRF token goes nowhere");

    let done = connect_as(&world, &cookie, &page, ALICE, "accept").await;
    assert_eq!(done, format!("/connect/app/{session_id}/done"));
    let (status, result) = world.app.page(&cookie, &done).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert!(result.contains(r#"data-status="connected""#) && result.contains(r#"data-origins="http://localhost:3000""#), "{result}");

    // The connection is the end user's, and the app reads it from the session.
    let connections = world.app.store.all_connections().await.expect("connections");
    assert_eq!(connections.len(), 1);
    let end_user = world.app.store.end_user(connections[0].account.owner.end_user().expect("an end user's")).await.expect("end user");
    assert_eq!((end_user.external_id.as_str(), end_user.email.as_deref()), ("u-42", Some("ann@erp.example")));
    assert!(result.contains(&connections[0].id.to_string()), "{result}");
    let read = read_session(&world, &key, &session_id).await;
    assert_eq!((read["status"].as_str(), read["connectionId"].as_str()), (Some("connected"), Some(connections[0].id.to_string().as_str())));

    // Another app reaches none of it: every Connect operation with an id in the document, with the other
    // app's key and this app's ids, answers 404.
    let doc: Value = world.app.http.get(world.app.url("/api/v1/openapi.json")).send().await.expect("GET").json().await.expect("JSON");
    let mut tried = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item").iter().filter(|(_, o)| o["tags"][0] == "Connect") {
            if !template.contains("{id}") {
                continue;
            }
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let id = if template.starts_with("/connect/connections/") { connections[0].id.to_string() } else { session_id.clone() };
            let path = format!("/api/v1{}", template.replace("{id}", &id));
            let crossed = world.app.http.request(method, world.app.url(&path)).bearer_auth(&other_key).json(&json!({})).send().await;
            let crossed = crossed.expect("call");
            assert_eq!(crossed.status(), StatusCode::NOT_FOUND, "{path}");
            tried.push(operation["operationId"].as_str().expect("id").to_owned());
        }
    }
    tried.sort();
    assert_eq!(tried, ["deleteAppConnection", "getAppConnection", "getConnectSession"]);
    let theirs = world.app.http.get(world.app.url("/api/v1/connect/connections")).bearer_auth(&other_key).send().await.expect("GET");
    assert_eq!(theirs.json::<Value>().await.expect("JSON")["connections"], json!([]), "another app lists none of them");
    // A pbi-bridge user named alice does not get the end user's connection.
    world.app.session("alice").await;
    let alice = world.app.store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice");
    assert!(world.app.store.connections_of(&alice.as_owner()).await.expect("list").is_empty());
    // The app lists its connections (by end user, by status), reads one and disconnects it.
    let listed = list_connections(&world, &key, "?endUserId=u-42&status=connected").await;
    assert_eq!(listed["connections"][0]["account"], ALICE, "{listed}");
    assert_eq!((listed["connections"][0]["endUser"]["externalId"].as_str(), listed["nextCursor"].as_null()), (Some("u-42"), Some(())));
    assert_eq!(list_connections(&world, &key, "?endUserId=u-7").await["connections"], json!([]));
    assert_eq!(list_connections(&world, &key, "?status=needs_sign_in").await["connections"], json!([]));
    let bad = world.app.http.get(world.app.url("/api/v1/connect/connections?cursor=nope")).bearer_auth(&key).send().await.expect("GET");
    assert_eq!(bad.json::<Value>().await.expect("JSON")["error"]["field"], "cursor");
    let one = world.app.url(&format!("/api/v1/connect/connections/{}", connections[0].id));
    let got: Value = world.app.http.get(&one).bearer_auth(&key).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!((got["status"].as_str(), got["tenantId"].as_str()), (Some("connected"), Some(connections[0].account.tenant_id.as_str())));
    assert!(!got.to_string().contains("accessToken") && !got.to_string().contains("refresh"), "{got}");
    let gone = world.app.http.delete(&one).bearer_auth(&key).send().await.expect("DELETE");
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_eq!(list_connections(&world, &key, "?status=disconnected").await["connections"][0]["id"], connections[0].id.to_string());
    let tokens = world.app.store.connection_tokens(connections[0].id).await.expect("tokens");
    assert!(matches!(tokens, (None, None)), "its tokens are erased");

    // The link is used up.
    let again = world.app.http.get(&url).header("cookie", &cookie).send().await.expect("GET");
    assert_eq!(again.status(), StatusCode::GONE);
}

#[tokio::test]
async fn a_declined_consent_is_its_own_page_and_outcome_and_a_return_url_hears_it() {
    let world = crate::connect::world().await;
    let (_, key) = app_of(&world, "ERP", &["http://localhost:3000"]).await;

    // In a popup: the result page says it and posts it to the app's window.
    let made: Value = create_session(&world, &key, json!({"endUser": {"id": "u-1"}})).await.json().await.expect("JSON");
    let (cookie, page) = open_link(&world, made["url"].as_str().expect("url")).await;
    let done = connect_as(&world, &cookie, &page, ALICE, "cancel").await;
    let (status, result) = world.app.page(&cookie, &done).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(result.contains("You declined the permissions") && result.contains(r#"data-status="consent_declined""#), "{result}");
    assert!(world.app.store.all_connections().await.expect("list").is_empty(), "nothing was connected");
    let id = made["session"]["id"].as_str().expect("id");
    let read = read_session(&world, &key, id).await;
    assert_eq!(read["status"], "consent_declined", "{read}");

    // With a return URL: the browser goes back to the app with the reason.
    let made: Value = create_session(&world, &key, json!({"endUser": {"id": "u-1"}, "returnUrl": "http://localhost:3000/power-bi?tab=2"}))
        .await
        .json()
        .await
        .expect("JSON");
    let (cookie, page) = open_link(&world, made["url"].as_str().expect("url")).await;
    let done = connect_as(&world, &cookie, &page, ALICE, "cancel").await;
    let back = world.app.http.get(world.app.url(&done)).header("cookie", &cookie).send().await.expect("GET");
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let id = made["session"]["id"].as_str().expect("id");
    assert_eq!(
        back.headers()["location"].to_str().expect("ascii"),
        format!("http://localhost:3000/power-bi?tab=2&sessionId={id}&error=consent_declined")
    );
}

#[tokio::test]
async fn a_connect_link_expires_after_thirty_minutes_and_an_app_with_connections_stays() {
    let world = crate::connect::world().await;
    let (app, key) = app_of(&world, "ERP", &[]).await;
    let made: Value = create_session(&world, &key, json!({"endUser": {"id": "u-1"}})).await.json().await.expect("JSON");
    let (cookie, page) = open_link(&world, made["url"].as_str().expect("url")).await;
    world.app.clock.advance(time::Duration::minutes(31)).expect("a manual clock");
    let (status, html) = world.app.page(&cookie, &page).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("expired after 30 minutes"), "{html}");
    let read = read_session(&world, &key, made["session"]["id"].as_str().expect("id")).await;
    assert_eq!(read["status"], "expired");

    let made: Value = create_session(&world, &key, json!({"endUser": {"id": "u-1"}})).await.json().await.expect("JSON");
    let (cookie, page) = open_link(&world, made["url"].as_str().expect("url")).await;
    connect_as(&world, &cookie, &page, ALICE, "accept").await;
    let refused = pbi_connect::apps::delete(&world.app.store, "admin", app.id, world.app.clock.unix()).await;
    assert!(matches!(refused, Err(pbi_connect::AppError::Conflict(_))), "{refused:?}");
    let connection = world.app.store.all_connections().await.expect("list").remove(0);
    world.app.auth().disconnect(connection.id, Some(&connection.account.owner)).await.expect("disconnected");
    pbi_connect::apps::delete(&world.app.store, "admin", app.id, world.app.clock.unix()).await.expect("deleted once disconnected");
    assert!(world.app.store.all_connections().await.expect("list").is_empty(), "its end users' connections went with it");
}

#[tokio::test]
async fn an_admin_sees_an_apps_connections_on_its_page_and_disconnects_one() {
    let world = crate::connect::world().await;
    let (app, key) = app_of(&world, "ERP", &[]).await;
    let made: Value =
        create_session(&world, &key, json!({"endUser": {"id": "u-9", "displayName": "Ann"}})).await.json().await.expect("JSON");
    let (cookie, page) = open_link(&world, made["url"].as_str().expect("url")).await;
    connect_as(&world, &cookie, &page, ALICE, "accept").await;
    let connection = world.app.store.all_connections().await.expect("list").remove(0).id;
    world.app.store.set_shared_accounts_allowed(false, &[], world.app.clock.unix()).await.expect("one account, one user");

    let admin = world.app.session("admin").await;
    let (status, html) = world.app.page(&admin, &format!("/admin/apps/{}", app.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Ann (u-9)") && html.contains(ALICE) && html.contains(r#"id="delete-app""#), "{html}");
    assert!(!html.contains("<title>ERP · Apps<h2"), "the page's title is only its title");
    let path = format!("/admin/apps/{}/connections/{connection}/disconnect", app.id);
    // The pbi-bridge user alice connects the same Power BI account for herself: an app's end user's connection
    // of it is no pbi-bridge user's, so it is not "taken".
    let alice = world.app.session("alice").await;
    let back = world.get_started(&alice, ALICE).await;
    let landed = world.app.http.get(&back).header("cookie", &alice).send().await.expect("callback");
    assert_eq!(landed.headers()["location"].to_str().expect("ascii"), "/settings", "connected for herself too");
    let (_, settings) = world.app.page(&alice, "/settings").await;
    let csrf = hidden(&settings, "csrf").expect("csrf");
    let refused = world.app.http.post(world.app.url(&path)).header("cookie", &alice).form(&[("csrf", csrf.as_str())]).send().await;
    assert_eq!(refused.expect("POST").status(), StatusCode::FORBIDDEN, "administrators only");
    let csrf = hidden(&html, "csrf").expect("csrf");
    let done = world.app.http.post(world.app.url(&path)).header("cookie", &admin).form(&[("csrf", csrf.as_str())]).send().await;
    assert_eq!(done.expect("POST").status(), StatusCode::SEE_OTHER);
    let (_, html) = world.app.page(&admin, &format!("/admin/apps/{}", app.id)).await;
    assert!(html.contains(&format!("Disconnected {ALICE}")) && html.contains(">disconnected<"), "{html}");
    assert_eq!(world.app.store.connection(connection).await.expect("kept").status, pbi_store::ConnectionStatus::Revoked);
    let (entries, _) = world.app.store.audit_entries(None, 1).await.expect("audit");
    let entry = &entries[0].entry;
    assert_eq!((entry.actor.as_str(), entry.action.as_str()), ("admin", "connections.disconnected"));
    assert_eq!(entry.target, format!("{ALICE} of ERP's end user u-9"));
}

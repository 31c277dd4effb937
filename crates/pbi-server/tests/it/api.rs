//! The JSON API over real HTTP: API tokens, the whole story as a script, and every route refusing another
//! user's ids and non-admins. Every answer is checked against the server's own OpenAPI document: its status
//! must be documented for the operation, and its body must match the documented schema exactly.

use crate::connect::{World, world};
use crate::hidden;
use pbi_swagger::{Swagger, SwaggerError};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A caller of the API that checks each answer against the OpenAPI document.
pub(crate) struct Api {
    doc: Value,
    checker: Swagger,
}

impl Api {
    pub(crate) async fn of(world: &World) -> Self {
        let doc: Value = world.app.http.get(world.app.url("/api/v1/openapi.json")).send().await.expect("GET").json().await.expect("JSON");
        Self { checker: Swagger::strict(doc.clone()), doc }
    }

    /// The operation a concrete path and method answer to: (operationId, its description).
    fn operation(&self, method: &Method, path: &str) -> (String, &Value) {
        let path = path.split('?').next().unwrap_or(path).strip_prefix("/api/v1").expect("an API path");
        let segments: Vec<&str> = path.split('/').collect();
        for (template, item) in self.doc["paths"].as_object().expect("paths") {
            let pattern: Vec<&str> = template.split('/').collect();
            let matches = pattern.len() == segments.len()
                && pattern.iter().zip(&segments).all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s);
            if let (true, Some(op)) = (matches, item.get(method.as_str().to_lowercase())) {
                return (op["operationId"].as_str().expect("operationId").to_owned(), op);
            }
        }
        panic!("{method} {path} is not in the OpenAPI document")
    }

    /// Calls the API and checks the answer against the document; returns its status and JSON body (null if none).
    pub(crate) async fn call(&self, world: &World, auth: Auth<'_>, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = world.app.http.request(method.clone(), world.app.url(path));
        request = match auth {
            Auth::Token(token) => request.bearer_auth(token),
            Auth::Session { cookie, csrf } => {
                let request = request.header("cookie", cookie);
                match csrf {
                    Some(csrf) => request.header("x-csrf-token", csrf),
                    None => request,
                }
            }
            Auth::Nobody => request,
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("the API answers JSON") };
        let (operation, described) = self.operation(&method, path);
        assert!(
            described["responses"].get(status.as_str()).is_some(),
            "{operation} answered {status}, which its OpenAPI description does not list: {body}"
        );
        match self.checker.check_response(&operation, status.as_u16(), &body) {
            Ok(()) => {}
            Err(SwaggerError::NoSchema { .. }) => assert!(body.is_null(), "{operation} {status} documents no body but sent {body}"),
            Err(other) => panic!("{other}"),
        }
        (status, body)
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    Token(&'a str),
    Session { cookie: &'a str, csrf: Option<&'a str> },
    Nobody,
}

impl World {
    /// Makes an API token on My settings, as the signed-in user, and reads it off the page (shown once).
    pub(crate) async fn api_token(&self, cookie: &str, name: &str) -> String {
        let (_, settings) = self.app.page(cookie, "/settings").await;
        let csrf = hidden(&settings, "csrf").expect("csrf");
        let made = self.post(cookie, "/settings/tokens", &[("csrf", csrf.as_str()), ("name", name), ("expires_in_days", "30")]).await;
        // Post/Redirect/Get: the token is shown on the page the answer sends the browser to, once.
        assert_eq!(made.status(), StatusCode::SEE_OTHER);
        let shown = self.app.http.get(self.app.url("/settings")).header("cookie", cookie).send().await.expect("GET");
        assert_eq!(shown.headers()["cache-control"], "no-store", "the page showing a token is never cached");
        let page = shown.text().await.expect("page");
        let start = page.find(r#"id="new-token-value">"#).expect("the token is shown") + r#"id="new-token-value">"#.len();
        page[start..start + page[start..].find('<').expect("end")].to_owned()
    }
}

fn ids(body: &Value, list: &str) -> Vec<String> {
    body[list].as_array().expect(list).iter().map(|item| item["id"].as_str().expect("id").to_owned()).collect()
}

fn tile<'a>(tiles: &'a Value, title: &str) -> &'a Value {
    tiles["tiles"].as_array().expect("tiles").iter().find(|t| t["title"] == title).unwrap_or_else(|| panic!("{title} in {tiles}"))
}

fn tile_ref(tile: &Value) -> Value {
    json!({"groupId": tile["groupId"], "dashboardId": tile["dashboardId"], "tileId": tile["tileId"]})
}

#[tokio::test]
async fn a_script_with_an_api_token_does_everything_the_pages_do() {
    let world = world().await;
    let alice_session = world.connected("alice").await;
    let token = world.api_token(&alice_session, "nightly report").await;
    assert!(token.starts_with("pbb_") && token.len() > 40, "{token}");
    let api = Api::of(&world).await;
    let alice = Auth::Token(&token);

    let (status, me) = api.call(&world, alice, Method::GET, "/api/v1/me", None).await;
    assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("alice")));
    let (_, connection) = api.call(&world, alice, Method::GET, "/api/v1/connection", None).await;
    assert_eq!((connection["status"].as_str(), connection["account"].as_str()), (Some("connected"), Some("alice@contoso.onmicrosoft.com")));

    let (status, created) = api.call(&world, alice, Method::POST, "/api/v1/workspaces", Some(json!({"name": "  Board  "}))).await;
    assert_eq!((status, created["name"].as_str()), (StatusCode::CREATED, Some("Board")));
    let workspace = format!("/api/v1/workspaces/{}", created["id"].as_str().expect("id"));

    let (status, tiles) = api.call(&world, alice, Method::GET, "/api/v1/tiles", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tiles["tiles"].as_array().expect("tiles").iter().all(|t| t["title"] != "Actual Spend"), "Finance is Bob's: {tiles}");
    let chosen = json!({"tiles": [tile_ref(tile(&tiles, "Total Sales")), tile_ref(tile(&tiles, "Sales by Month")), tile_ref(tile(&tiles, "Recent Sales"))]});
    let (status, pinned) = api.call(&world, alice, Method::POST, &format!("{workspace}/pins"), Some(chosen)).await;
    assert_eq!(status, StatusCode::CREATED);
    let pins = ids(&pinned, "pins");
    for (i, title) in ["Total Sales", "Sales by Month", "Recent Sales"].into_iter().enumerate() {
        let listed = tile(&tiles, title);
        assert_eq!(
            (&pinned["pins"][i]["title"], &pinned["pins"][i]["rowSpan"], &pinned["pins"][i]["colSpan"]),
            (&listed["title"], &listed["rowSpan"], &listed["colSpan"]),
            "pinned in order, at Power BI's size"
        );
    }

    let reversed: Vec<&String> = pins.iter().rev().collect();
    let (status, reordered) = api.call(&world, alice, Method::PUT, &format!("{workspace}/order"), Some(json!({"pins": reversed}))).await;
    assert_eq!((status, ids(&reordered, "pins")), (StatusCode::OK, reversed.into_iter().cloned().collect::<Vec<_>>()));
    let (status, _) = api.call(&world, alice, Method::PUT, &format!("{workspace}/order"), Some(json!({"pins": [pins[0]]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an order must name every pin once");

    let (status, changed) =
        api.call(&world, alice, Method::PATCH, &workspace, Some(json!({"name": "Board EU", "companyFilter": " USMF "}))).await;
    assert_eq!((status, changed["name"].as_str(), changed["companyFilter"].as_str()), (StatusCode::OK, Some("Board EU"), Some("USMF")));
    let (_, kept) = api.call(&world, alice, Method::PATCH, &workspace, Some(json!({"name": "Board"}))).await;
    assert_eq!(kept["companyFilter"], "USMF", "a field left out is kept");
    let (_, cleared) = api.call(&world, alice, Method::PATCH, &workspace, Some(json!({"companyFilter": null}))).await;
    assert!(cleared["companyFilter"].is_null(), "null clears the filter");

    let (status, drawn) = api.call(&world, alice, Method::GET, &format!("{workspace}/pins/{}/token", pins[0]), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(drawn["accessToken"].as_str().is_some_and(|t| t.split('.').count() == 3), "a JWT: {drawn}");
    assert!(drawn["embedUrl"].as_str().is_some_and(|u| u.starts_with(world.sandbox.base_url())));
    // The token is Alice's own: the sandbox answers her tile with it.
    let group = pinned["pins"][0]["groupId"].as_str().expect("a workspace tile");
    let tile_url = format!(
        "{}/v1.0/myorg/groups/{group}/dashboards/{}/tiles/{}",
        world.sandbox.base_url(),
        pinned["pins"][0]["dashboardId"].as_str().expect("dashboard"),
        pinned["pins"][0]["tileId"].as_str().expect("tile")
    );
    let direct = world.app.http.get(tile_url).bearer_auth(drawn["accessToken"].as_str().expect("token")).send().await.expect("GET");
    assert_eq!(direct.status(), StatusCode::OK);

    let (status, _) = api.call(&world, alice, Method::DELETE, &format!("{workspace}/pins/{}", pins[1]), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, detail) = api.call(&world, alice, Method::GET, &workspace, None).await;
    assert_eq!(ids(&detail, "pins"), [pins[2].clone(), pins[0].clone()]);

    // The page shows what the API did: the same operations underneath.
    let (_, page) = world.app.page(&alice_session, &workspace.replace("/api/v1", "")).await;
    assert!(page.contains(r#"id="workspace-name">Board<"#) && page.matches(r#"<iframe class="tile-frame""#).count() == 2, "{page}");

    let (status, _) = api.call(&world, alice, Method::DELETE, &workspace, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = api.call(&world, alice, Method::GET, &workspace, None).await;
    assert_eq!((status, gone["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let (status, _) = api.call(&world, alice, Method::DELETE, "/api/v1/connection", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = api.call(&world, alice, Method::GET, "/api/v1/connection", None).await;
    assert_eq!(after["status"], "disconnected");
    let (status, refused) = api.call(&world, alice, Method::GET, "/api/v1/tiles", None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("needs_sign_in")));
}

#[tokio::test]
async fn tokens_are_refused_when_wrong_revoked_or_expired_and_stored_only_as_hashes() {
    let logs = pbi_testlog::capture();
    let world = world().await;
    let api = Api::of(&world).await;
    let alice_session = world.app.session("alice").await;
    let token = world.api_token(&alice_session, "short-lived").await;

    let (status, anonymous) = api.call(&world, Auth::Nobody, Method::GET, "/api/v1/workspaces", None).await;
    assert_eq!((status, anonymous["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
    let challenge = world.app.http.get(world.app.url("/api/v1/me")).send().await.expect("GET");
    assert!(challenge.headers()["www-authenticate"].to_str().expect("ascii").starts_with("Bearer"));
    let wrong = format!("{}x", token);
    let (status, body) = api.call(&world, Auth::Token(&wrong), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains(&token[4..12]), "the answer does not echo the token: {body}");

    // A token cannot make more tokens; a browser session can, with its CSRF token.
    let (status, refused) = api.call(&world, Auth::Token(&token), Method::POST, "/api/v1/tokens", Some(json!({"name": "more"}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let session = Auth::Session { cookie: &alice_session, csrf: None };
    let (status, refused) = api.call(&world, session, Method::POST, "/api/v1/tokens", Some(json!({"name": "more"}))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("csrf")), "no CSRF header, no change");
    let (_, settings) = world.app.page(&alice_session, "/settings").await;
    let csrf = hidden(&settings, "csrf").expect("csrf");
    let session = Auth::Session { cookie: &alice_session, csrf: Some(&csrf) };
    let (status, made) = api.call(&world, session, Method::POST, "/api/v1/tokens", Some(json!({"name": "ci", "expiresInDays": 1}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let second = made["token"].as_str().expect("token").to_owned();
    let (status, _) = api.call(&world, Auth::Token(&second), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::OK);

    let (_, listed) = api.call(&world, Auth::Token(&token), Method::GET, "/api/v1/tokens", None).await;
    assert_eq!(listed["tokens"].as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(&second) && !listed.to_string().contains(&token), "a list never holds a token");
    assert!(listed["tokens"].as_array().expect("tokens").iter().any(|t| t["lastUsedAt"].is_string()), "use is noted");

    // A day later the one-day token has expired; the 30-day one still works.
    world.sandbox.clock().advance(time::Duration::days(1)).expect("a manual clock");
    let (status, _) = api.call(&world, Auth::Token(&second), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired");
    let first_id = listed["tokens"].as_array().expect("tokens").iter().find(|t| t["name"] == "short-lived").expect("first")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = api.call(&world, Auth::Token(&token), Method::DELETE, &format!("/api/v1/tokens/{first_id}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "a token may revoke itself");
    let (status, _) = api.call(&world, Auth::Token(&token), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");

    world.app.store.close().await;
    let stored = pbi_testlog::DatabaseFiles::read(&world.app.db);
    logs.assert_heard_from(&["pbi_server", "pbi_store"]);
    for secret in [&token, &second] {
        stored.assert_lacks("API token (only its hash is kept)", secret);
        logs.assert_lacks("API token", secret);
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let world = world().await;
    let api = Api::of(&world).await;
    let alice_session = world.connected("alice").await;
    let token = world.api_token(&alice_session, "input").await;
    let alice = Auth::Token(&token);
    let (_, created) = api.call(&world, alice, Method::POST, "/api/v1/workspaces", Some(json!({"name": "Inputs"}))).await;
    let workspace = format!("/api/v1/workspaces/{}", created["id"].as_str().expect("id"));

    for (method, path, body, field) in [
        (Method::POST, "/api/v1/workspaces".to_owned(), json!({}), "name"),
        (Method::POST, "/api/v1/workspaces".to_owned(), json!({"name": 5}), "name"),
        (Method::POST, "/api/v1/workspaces".to_owned(), json!({"nmae": "x"}), "nmae"),
        (Method::POST, "/api/v1/workspaces".to_owned(), json!({"name": "   "}), "name"),
        (Method::POST, "/api/v1/workspaces".to_owned(), json!({"name": "x".repeat(101)}), "name"),
        (Method::PATCH, workspace.clone(), json!({"companyFilter": "a\nb"}), "companyFilter"),
        (Method::POST, format!("{workspace}/pins"), json!({"tiles": []}), "tiles"),
        (Method::POST, format!("{workspace}/pins"), json!({"tiles": [{"dashboardId": "x", "tileId": "y"}]}), "tiles[0].dashboardId"),
        (Method::PUT, format!("{workspace}/order"), json!({"pins": ["not-a-guid"]}), "pins[0]"),
        (Method::POST, "/api/v1/tokens".to_owned(), json!({"name": "x", "expiresInDays": 0}), "expiresInDays"),
        (Method::POST, "/api/v1/tokens".to_owned(), json!({"name": "x", "expiresInDays": 1.5}), "expiresInDays"),
        (Method::GET, "/api/v1/workspaces/not-a-guid".to_owned(), Value::Null, "path"),
    ] {
        let body = (!body.is_null()).then_some(body);
        let auth = if path == "/api/v1/tokens" {
            // Only a session makes tokens: check the input with one.
            Auth::Session { cookie: &alice_session, csrf: None }
        } else {
            alice
        };
        if let Auth::Session { .. } = auth {
            let (_, settings) = world.app.page(&alice_session, "/settings").await;
            let csrf = hidden(&settings, "csrf").expect("csrf");
            let (status, error) =
                api.call(&world, Auth::Session { cookie: &alice_session, csrf: Some(&csrf) }, method.clone(), &path, body).await;
            assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{method} {path}: {error}");
            continue;
        }
        let (status, error) = api.call(&world, auth, method.clone(), &path, body).await;
        assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{method} {path}: {error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let not_json = world.app.http.post(world.app.url("/api/v1/workspaces")).bearer_auth(&token).body("name=x").send().await.expect("POST");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(not_json.json::<Value>().await.expect("JSON")["error"]["field"], "Content-Type");
    let huge = json!({"name": "x".repeat(70 * 1024)});
    let too_big = world.app.http.post(world.app.url("/api/v1/workspaces")).bearer_auth(&token).json(&huge).send().await.expect("POST");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.json::<Value>().await.expect("JSON")["error"]["code"], "too_large");
    // serde would read an array into a struct field by field; a body is one JSON object or nothing.
    let (status, error) = api.call(&world, alice, Method::PATCH, &workspace, Some(json!([null, null]))).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("body")), "{error}");
    let unknown = world.app.http.get(world.app.url("/api/v1/nothing-here")).bearer_auth(&token).send().await.expect("GET");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.json::<Value>().await.expect("JSON")["error"]["code"], "not_found");
    let (_, still) = api.call(&world, alice, Method::GET, &workspace, None).await;
    assert_eq!((still["workspace"]["name"].as_str(), still["pins"].as_array().map(Vec::len)), (Some("Inputs"), Some(0)), "nothing changed");
}

/// For every operation of the document that takes an id: a body that would be valid for the owner.
fn body_for(operation: &str, pin: &str, bobs_tile: &Value) -> Option<Value> {
    match operation {
        "updateWorkspace" => Some(json!({"name": "Taken over", "companyFilter": "X"})),
        "pinTiles" => Some(json!({"tiles": [tile_ref(bobs_tile)]})),
        "reorderPins" => Some(json!({"pins": [pin]})),
        "updateSubscription" => Some(json!({"enabled": false})),
        _ => None,
    }
}

/// A subscription of Alice's, as a pin leaves it in the store (no Power BI call is needed to be refused it).
async fn alices_subscription(world: &World) -> uuid::Uuid {
    let store = &world.app.store;
    let alice = store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice").id;
    let item = pbi_store::NewItem {
        name: "Chart2".into(),
        definition: json!({"name": "Chart2", "kind": "single-value", "value": "Total", "columns": [{"name": "Total", "type": "decimal"}]})
            .to_string(),
        source: pbi_store::ItemSource::Pushed,
        data_source_id: None,
        query: None,
        parameters: "{}".into(),
        everyone: true,
        pinners: vec![],
    };
    let item = store.add_item(&item, 0).await.expect("item").id;
    let connection = store.connections_of(&pbi_store::Owner::User(alice)).await.expect("connections")[0].id;
    let new = pbi_store::NewSubscription {
        owner: alice,
        connection_id: connection,
        item_id: item,
        parameters: "{}".into(),
        workspace_id: None,
        workspace_name: "My workspace".into(),
        dashboard_id: uuid::Uuid::new_v4(),
        dashboard_name: "Mine".into(),
        frequency: json!({"every": "hourly", "minute": 0}).to_string(),
        time_zone: "UTC".into(),
    };
    store.add_subscription(&new, 0).await.expect("subscription").id
}

#[tokio::test]
async fn every_route_with_an_id_refuses_another_users_and_admin_routes_refuse_users() {
    let world = world().await;
    let api = Api::of(&world).await;
    let alice_session = world.connected("alice").await;
    let bob_session = world.connected("bob").await;
    let alice_token = world.api_token(&alice_session, "alice").await;
    let bob_token = world.api_token(&bob_session, "bob").await;
    let (alice, bob) = (Auth::Token(&alice_token), Auth::Token(&bob_token));

    let (_, created) = api.call(&world, alice, Method::POST, "/api/v1/workspaces", Some(json!({"name": "Alice's"}))).await;
    let workspace = created["id"].as_str().expect("id").to_owned();
    let (_, alice_tiles) = api.call(&world, alice, Method::GET, "/api/v1/tiles", None).await;
    let (_, pinned) = api
        .call(
            &world,
            alice,
            Method::POST,
            &format!("/api/v1/workspaces/{workspace}/pins"),
            Some(json!({"tiles": [tile_ref(tile(&alice_tiles, "Stock on Hand"))]})),
        )
        .await;
    let pin = ids(&pinned, "pins").remove(0);
    let (_, alice_tokens) = api.call(&world, alice, Method::GET, "/api/v1/tokens", None).await;
    let alice_token_id = ids(&alice_tokens, "tokens").remove(0);
    let (_, bob_me) = api.call(&world, bob, Method::GET, "/api/v1/me", None).await;
    let bob_id = bob_me["id"].as_str().expect("id").to_owned();
    let (_, bob_tiles) = api.call(&world, bob, Method::GET, "/api/v1/tiles", None).await;
    let bobs_tile = tile(&bob_tiles, "Actual Spend").clone();
    let subscription = alices_subscription(&world).await.to_string();
    assert!(
        bob_tiles["tiles"].as_array().expect("tiles").iter().all(|t| t["title"] != "Stock on Hand"),
        "Operations is Alice's workspace, not Bob's: {bob_tiles}"
    );

    // Every operation in the document whose path has an id, called by Bob with Alice's ids.
    let mut tried = Vec::new();
    for (template, item) in api.doc["paths"].as_object().expect("paths").clone() {
        if !template.contains('{') {
            continue;
        }
        for (method, operation) in item.as_object().expect("item") {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            if operation["tags"][0] == "Administration" {
                continue; // Refused to users before any id is looked at: tried below.
            }
            if operation["tags"][0] == "Connect" {
                continue; // An app's, with its secret key: `connect_sessions` tries another app's ids.
            }
            let id = operation["operationId"].as_str().expect("operationId").to_owned();
            let owner_of_id = match id.as_str() {
                "revokeApiToken" => &alice_token_id,
                _ if template.starts_with("/subscriptions/") => &subscription,
                _ => &workspace,
            };
            let path = format!("/api/v1{template}").replace("{id}", owner_of_id).replace("{pin}", &pin);
            let (status, body) = api.call(&world, bob, method.clone(), &path, body_for(&id, &pin, &bobs_tile)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{id}: Bob reached Alice's {path}: {body}");
            assert!(!body.to_string().contains("Stock on Hand") && !body.to_string().contains("accessToken"), "{id}: {body}");
            tried.push(id);
        }
    }
    tried.sort();
    assert_eq!(
        tried,
        [
            "checkPin",
            "deleteSubscription",
            "deleteWorkspace",
            "getSubscription",
            "getTileToken",
            "getWorkspace",
            "listCompanies",
            "listDeliveries",
            "pinTiles",
            "reorderPins",
            "revokeApiToken",
            "runSubscription",
            "unpinTile",
            "updateSubscription",
            "updateWorkspace"
        ],
        "each route with an id was tried"
    );
    let (_, listed) = api.call(&world, bob, Method::GET, "/api/v1/workspaces", None).await;
    assert_eq!(listed["workspaces"].as_array().map(Vec::len), Some(0), "Bob lists none of Alice's workspaces");
    let (_, intact) = api.call(&world, alice, Method::GET, &format!("/api/v1/workspaces/{workspace}"), None).await;
    assert_eq!((intact["workspace"]["name"].as_str(), intact["workspace"]["companyFilter"].is_null()), (Some("Alice's"), true));
    assert_eq!(ids(&intact, "pins"), std::slice::from_ref(&pin), "Alice's pin is still there and Bob's tile was not added");
    let (status, _) = api.call(&world, alice, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::OK, "Alice's token was not revoked by Bob");
    let (_, hers) = api.call(&world, alice, Method::GET, &format!("/api/v1/subscriptions/{subscription}"), None).await;
    assert_eq!(hers["state"], "active", "Bob neither disabled nor deleted Alice's subscription: {hers}");

    // Bob names, as his own pin, a tile only Alice can see: Power BI itself refuses it, as Bob.
    let (_, bobs) = api.call(&world, bob, Method::POST, "/api/v1/workspaces", Some(json!({"name": "Bob's"}))).await;
    let bobs = format!("/api/v1/workspaces/{}/pins", bobs["id"].as_str().expect("id"));
    let (status, refused) =
        api.call(&world, bob, Method::POST, &bobs, Some(json!({"tiles": [tile_ref(tile(&alice_tiles, "Stock on Hand"))]}))).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("tiles[0]")), "{refused}");

    // Administration: every operation so tagged refuses a user and serves an admin.
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "admin").await;
    let config = json!({"enabled": true, "clientId": "8b7e587d-8d90-4e61-95a3-cfe6461aa03e", "tenant": "contoso.onmicrosoft.com", "cloud": "public"});
    let mut admin_operations = 0;
    for (template, item) in api.doc["paths"].as_object().expect("paths").clone() {
        for (method, operation) in item.as_object().expect("item") {
            if operation["tags"][0] != "Administration" {
                continue;
            }
            admin_operations += 1;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body = match (method.as_str(), template.as_str()) {
                ("PUT", "/items/{id}/rows") => Some(json!({"rows": []})),
                ("POST" | "PUT", "/admin/data-sources" | "/admin/data-sources/{id}") => {
                    Some(json!({"name": "Taken", "kind": "sqlite", "location": "/taken.db"}))
                }
                ("POST" | "PUT", "/admin/items" | "/admin/items/{id}") => {
                    Some(json!({"name": "Taken", "kind": "table", "columns": [{"name": "A", "type": "text"}], "source": "pushed"}))
                }
                ("POST", "/admin/apps") | ("PUT", "/admin/apps/{id}") => Some(json!({"name": "Taken over", "registrationId": bob_id})),
                ("PUT", _) => Some(config.clone()),
                ("POST", "/admin/users") => Some(json!({"username": "mallory", "password": "a long enough password"})),
                ("PATCH", "/admin/users/{id}") => Some(json!({"disabled": true, "password": "taken over, long enough"})),
                ("POST", "/admin/templates") => Some(json!({"workspaceName": "Taken over"})),
                ("POST", "/admin/apps/{id}/keys") => Some(json!({})),
                _ => None,
            };
            let path = format!("/api/v1{template}").replace("{id}", &bob_id);
            let (status, refused) = api.call(&world, alice, method, &path, body).await;
            assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("admin_only")), "{template}");
        }
    }
    assert_eq!(admin_operations, 32);
    let (status, _) = api.call(&world, bob, Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::OK, "Alice could not disable Bob");
    let (_, users) = api.call(&world, Auth::Token(&admin_token), Method::GET, "/api/v1/admin/users", None).await;
    assert!(users["users"].as_array().expect("users").iter().all(|u| u["username"] != "mallory"), "a user could not add one");
    let (status, shown) = api.call(&world, Auth::Token(&admin_token), Method::GET, "/api/v1/admin/powerbi", None).await;
    assert_eq!(
        (status, shown["configured"].as_bool(), shown["applicationKey"]["status"].as_str()),
        (StatusCode::OK, Some(true), Some("valid"))
    );
    assert_eq!(shown["redirectUrl"], world.app.url("/oauth/callback"));
    let (status, validation) = api.call(&world, Auth::Token(&admin_token), Method::POST, "/api/v1/admin/powerbi/validate", None).await;
    assert_eq!((status, validation["passed"].as_bool()), (StatusCode::OK, Some(true)), "{validation}");
}

#[tokio::test]
async fn admins_configure_power_bi_through_the_api_and_the_key_is_never_shown() {
    let world = world().await;
    let api = Api::of(&world).await;
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "provisioning").await;
    let admin = Auth::Token(&admin_token);
    let (_, before) = api.call(&world, admin, Method::GET, "/api/v1/admin/powerbi", None).await;

    let bad = json!({"enabled": true, "clientId": "not-a-guid", "tenant": "", "cloud": "moon"});
    let (status, error) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(bad)).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("clientId")));
    for named in ["Application ID", "Tenant", "Cloud"] {
        assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains(named)), "every problem is said: {error}");
    }
    let (_, unchanged) = api.call(&world, admin, Method::GET, "/api/v1/admin/powerbi", None).await;
    assert_eq!(unchanged, before, "a refused configuration changes nothing");

    let key = "brand-new-application-key~0123456789";
    let config = json!({
        "enabled": true,
        "clientId": before["clientId"],
        "tenant": before["tenant"],
        "cloud": "public",
        "authorizeUrl": before["authorizeUrl"],
        "tokenUrl": before["tokenUrl"],
        "apiBase": before["apiBase"],
        "applicationKey": {"value": key, "expiresOn": "2031-01-31"},
    });
    let (status, saved) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(config)).await;
    assert_eq!((status, saved["applicationKey"]["expiresOn"].as_str()), (StatusCode::OK, Some("2031-01-31")));
    assert!(!saved.to_string().contains(key), "the key is write-only");
    let (_, page) = world.app.page(&admin_session, "/admin/powerbi").await;
    assert!(page.contains("2031-01-31") && !page.contains(key), "the page shows the new key's expiry, never the key");

    // Update Registration: the redirect URLs besides pbi-bridge's own, checked one by one.
    let own = world.app.url("/oauth/callback");
    assert_eq!((saved["redirectUrls"].clone(), saved["subscriptionsToPause"].clone()), (json!([own]), json!(0)));
    let mut config = json!({"enabled": true, "clientId": before["clientId"], "tenant": before["tenant"], "cloud": "public",
        "authorizeUrl": before["authorizeUrl"], "tokenUrl": before["tokenUrl"], "apiBase": before["apiBase"]});
    config["redirectUrls"] = json!(["https://bi.contoso.com/oauth/callback", "https://bi.contoso.com/elsewhere"]);
    let (status, error) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(config.clone())).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("redirectUrls[1]")), "{error}");
    config["redirectUrls"] = json!(["https://BI.contoso.com/oauth/callback"]);
    let (status, saved) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(config.clone())).await;
    assert_eq!((status, saved["redirectUrls"].clone()), (StatusCode::OK, json!([own, "https://bi.contoso.com/oauth/callback"])));
    config.as_object_mut().expect("object").remove("redirectUrls");
    let (_, kept) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(config.clone())).await;
    assert_eq!(kept["redirectUrls"], saved["redirectUrls"], "left out, they are kept");
    config["redirectUrls"] = json!([]);
    let (_, only_own) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(config)).await;
    assert_eq!(only_own["redirectUrls"], json!([own]), "pbi-bridge's own stays");
}

#[tokio::test]
async fn admins_add_users_who_can_then_sign_in() {
    let world = world().await;
    let api = Api::of(&world).await;
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "provisioning").await;
    let admin = Auth::Token(&admin_token);
    let password = "carol's long password";
    let new = json!({"username": "carol", "displayName": "Carol Diaz", "password": password});
    let (status, carol) = api.call(&world, admin, Method::POST, "/api/v1/admin/users", Some(new.clone())).await;
    assert_eq!((status, carol["displayName"].as_str(), carol["isAdmin"].as_bool()), (StatusCode::CREATED, Some("Carol Diaz"), Some(false)));
    assert!(!carol.to_string().contains(password), "the password is write-only");
    let (status, again) = api.call(&world, admin, Method::POST, "/api/v1/admin/users", Some(new)).await;
    assert_eq!((status, again["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("username")), "{again}");
    for (body, field) in [
        (json!({"username": "dave", "password": "short"}), "password"),
        (json!({"username": "dave smith", "password": password}), "username"),
        (json!({"username": "dave", "password": password, "role": "admin"}), "role"),
    ] {
        let (status, error) = api.call(&world, admin, Method::POST, "/api/v1/admin/users", Some(body)).await;
        assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{error}");
    }
    let signed_in = world.app.sign_in("carol", password, "/").await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "Carol signs in with what the admin set");
    let carol_session = crate::session_cookie(&signed_in);
    let carol_token = world.api_token(&carol_session, "carol's script").await;

    // Carol leaves: disabled, she is signed out, her token stops and she cannot sign in; enabled, she can again.
    let carol_path = format!("/api/v1/admin/users/{}", carol["id"].as_str().expect("id"));
    let (status, disabled) = api.call(&world, admin, Method::PATCH, &carol_path, Some(json!({"disabled": true}))).await;
    assert_eq!((status, disabled["disabled"].as_bool()), (StatusCode::OK, Some(true)));
    let (status, _) = world.app.page(&carol_session, "/settings").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "her session ended");
    let (status, _) = api.call(&world, Auth::Token(&carol_token), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "her API token stopped");
    let refused = world.app.sign_in("carol", password, "/").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("page").contains("This account is disabled"));
    let wrong = world.app.sign_in("carol", "not her password at all", "/").await;
    assert!(!wrong.text().await.expect("page").contains("disabled"), "only her password tells that the account is disabled");
    let (_, enabled) = api.call(&world, admin, Method::PATCH, &carol_path, Some(json!({"disabled": false}))).await;
    assert_eq!(enabled["disabled"], false);
    let (status, _) = api.call(&world, Auth::Token(&carol_token), Method::GET, "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "disabling ended her API token for good: enabling her does not bring it back");

    // A new password: the old one stops, her sessions end.
    let carol_session = crate::session_cookie(&world.app.sign_in("carol", password, "/").await);
    let (status, error) = api.call(&world, admin, Method::PATCH, &carol_path, Some(json!({"password": "short", "disabled": true}))).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("password")));
    let (_, unchanged) = api.call(&world, admin, Method::GET, "/api/v1/admin/users", None).await;
    assert!(
        unchanged["users"].as_array().expect("users").iter().any(|u| u["username"] == "carol" && u["disabled"] == false),
        "a refused change changes nothing"
    );
    let new_password = "carol's new long password";
    let (status, _) = api.call(&world, admin, Method::PATCH, &carol_path, Some(json!({"password": new_password}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!world.app.page(&carol_session, "/settings").await.0.is_success(), "her session ended");
    assert_eq!(world.app.sign_in("carol", password, "/").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(world.app.sign_in("carol", new_password, "/").await.status(), StatusCode::SEE_OTHER);
    let (_, me) = api.call(&world, admin, Method::GET, "/api/v1/me", None).await;
    let (status, error) = api
        .call(
            &world,
            admin,
            Method::PATCH,
            &format!("/api/v1/admin/users/{}", me["id"].as_str().expect("id")),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "an admin cannot lock themself out");

    // The page does the same.
    let (status, page) = world.app.page(&admin_session, "/admin/users").await;
    assert!(status == StatusCode::OK && page.contains("Carol Diaz"), "{page}");
    let csrf = hidden(&page, "csrf").expect("csrf");
    let added = world
        .post(
            &admin_session,
            "/admin/users",
            &[("csrf", csrf.as_str()), ("username", "erin"), ("display_name", ""), ("password", password), ("admin", "true")],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let (_, users) = api.call(&world, admin, Method::GET, "/api/v1/admin/users", None).await;
    let erin = users["users"].as_array().expect("users").iter().find(|u| u["username"] == "erin").expect("Erin was added");
    assert_eq!((erin["displayName"].as_str(), erin["isAdmin"].as_bool()), (Some("erin"), Some(true)));
    let (_, page) = world.app.page(&admin_session, "/admin/users").await;
    let csrf = hidden(&page, "csrf").expect("csrf");
    let disabled =
        world.post(&admin_session, &format!("/admin/users/{}/disable", erin["id"].as_str().expect("id")), &[("csrf", csrf.as_str())]).await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let (_, page) = world.app.page(&admin_session, "/admin/users").await;
    assert!(page.contains("Disabled erin") && page.contains(r#"id="user-erin""#), "{page}");
    assert_eq!(world.app.sign_in("erin", password, "/").await.status(), StatusCode::FORBIDDEN, "the page disabled her");
    let alice = world.app.session("alice").await;
    let (status, _) = world.app.page(&alice, "/admin/users").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user cannot see the users page");
    let refused = world.post(&alice, "/admin/users", &[("csrf", "x"), ("username", "frank"), ("password", password)]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

/// The tile list asks Power BI several things at once; answers that arrive out of order do not reorder it.
#[tokio::test]
async fn the_tile_list_keeps_its_order_when_power_bi_answers_out_of_order() {
    use pbi_sandbox::{FaultKind, FaultRule};
    /// Fails a listing that asks one thing at a time (it would wait forever for an overlap) instead of hanging.
    async fn within_a_minute<F: std::future::Future>(what: &str, future: F) -> F::Output {
        tokio::time::timeout(std::time::Duration::from_secs(60), future).await.unwrap_or_else(|_| panic!("{what}"))
    }
    let world = world().await;
    let api = Api::of(&world).await;
    let session = world.connected("alice").await;
    let token = world.api_token(&session, "order").await;
    let (_, first) = api.call(&world, Auth::Token(&token), Method::GET, "/api/v1/tiles", None).await;
    let titles = |list: &Value| -> Vec<String> {
        list["tiles"].as_array().expect("tiles").iter().map(|t| format!("{} / {}", t["groupName"], t["title"])).collect()
    };
    assert_eq!(titles(&first).first().map(|t| t.starts_with("\"My workspace\"")), Some(true), "My workspace first: {first}");
    // The first dashboards and the first tiles asked for answer last: the sandbox holds each until its
    // (manual) clock has moved 300 ms past the request, while the calls asked after it are answered.
    world.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/dashboards", 1, FaultKind::Delay { millis: 300 }));
    world.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/dashboards/*/tiles", 1, FaultKind::Delay { millis: 300 }));
    world.sandbox.reset_max_in_flight();
    let listing = api.call(&world, Auth::Token(&token), Method::GET, "/api/v1/tiles", None);
    let release = async {
        let mut overlaps = Vec::new();
        // One held call per round: the dashboards, then (asked only once every dashboard is known) the tiles.
        for held in 1..=2 {
            within_a_minute("a delayed call reached the sandbox", world.sandbox.wait_for_delayed(held)).await;
            within_a_minute("other calls were asked while one was held", world.sandbox.wait_for_in_flight(2)).await;
            overlaps.push(world.sandbox.max_in_flight());
            world.sandbox.clock().advance(time::Duration::milliseconds(300)).expect("a manual clock");
            world.sandbox.reset_max_in_flight();
        }
        overlaps
    };
    let ((_, again), overlaps) = tokio::join!(listing, release);
    assert_eq!(titles(&again), titles(&first));
    assert!(overlaps.iter().all(|&n| n >= 2), "Power BI calls in flight at once, per round: {overlaps:?}");
    assert!(world.sandbox.pending_faults().is_empty(), "both delays were used");
}

#[tokio::test]
async fn an_unavailable_power_bi_is_said_after_two_quick_retries_not_minutes_of_backoff() {
    let world = world().await;
    let api = Api::of(&world).await;
    let session = world.connected("alice").await;
    let token = world.api_token(&session, "outage").await;
    use pbi_sandbox::{FaultKind, FaultRule};
    world.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/dashboards", 100, FaultKind::Status { status: 503, retry_after: None }));
    world.sandbox.clear_requests();
    let (status, body) = api.call(&world, Auth::Token(&token), Method::GET, "/api/v1/tiles", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let attempts = world.sandbox.requests().into_iter().filter(|r| r.path == "/v1.0/myorg/dashboards").count();
    assert_eq!(attempts, 3, "the first try and two retries (the default policy made 6 over up to two minutes)");
}

#[tokio::test]
async fn admins_make_an_app_whose_secret_key_is_shown_once_and_rotate_it_with_an_overlap() {
    let world = world().await;
    let api = Api::of(&world).await;
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "provisioning").await;
    let admin = Auth::Token(&admin_token);
    let registration = world.app.store.registrations(false).await.expect("registrations").remove(0).id;
    let new = json!({"name": "ERP", "registrationId": registration, "allowedOrigins": ["https://ERP.example.com"]});
    let (status, made) = api.call(&world, admin, Method::POST, "/api/v1/admin/apps", Some(new.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let key = made["secretKey"].as_str().expect("the key, this once").to_owned();
    assert!(key.starts_with("pbs_") && key.len() == 47, "{key}");
    assert_eq!(made["app"]["allowedOrigins"], json!(["https://erp.example.com"]));
    let id = made["app"]["id"].as_str().expect("id").to_owned();

    let (status, shown) = api.call(&world, admin, Method::GET, &format!("/api/v1/admin/apps/{id}"), None).await;
    assert_eq!((status, shown["app"]["name"].as_str(), shown["keys"][0]["hint"].as_str()), (StatusCode::OK, Some("ERP"), Some(&key[..8])));
    let (_, listed) = api.call(&world, admin, Method::GET, "/api/v1/admin/apps", None).await;
    for body in [&shown, &listed] {
        assert!(!body.to_string().contains(&key[8..]), "the key is never shown again: {body}");
    }
    let (status, again) = api.call(&world, admin, Method::POST, "/api/v1/admin/apps", Some(new)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    for (body, field) in [
        (json!({"name": "CRM", "registrationId": registration, "allowedOrigins": ["http://crm.example.com"]}), "allowedOrigins[0]"),
        (json!({"name": "", "registrationId": registration}), "name"),
        (json!({"name": "CRM", "registrationId": uuid::Uuid::new_v4()}), "registrationId"),
        (json!({"name": "CRM", "registrationId": "not-a-guid"}), "registrationId"),
    ] {
        let (status, error) = api.call(&world, admin, Method::POST, "/api/v1/admin/apps", Some(body)).await;
        assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{error}");
    }

    let rotate = format!("/api/v1/admin/apps/{id}/keys");
    let (status, error) = api.call(&world, admin, Method::POST, &rotate, Some(json!({"overlapHours": 1000}))).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("overlapHours")), "{error}");
    let (status, rotated) = api.call(&world, admin, Method::POST, &rotate, Some(json!({"overlapHours": 2}))).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_ne!(rotated["secretKey"].as_str(), Some(key.as_str()));
    let (_, shown) = api.call(&world, admin, Method::GET, &format!("/api/v1/admin/apps/{id}"), None).await;
    let keys = shown["keys"].as_array().expect("keys");
    assert_eq!((keys.len(), keys[0]["expiresAt"].is_null()), (2, true), "{shown}");
    let overlap_ends = time::OffsetDateTime::from_unix_timestamp(world.app.clock.unix() + 7200).expect("time");
    assert_eq!(
        keys[1]["expiresAt"].as_str(),
        Some(overlap_ends.format(&time::format_description::well_known::Rfc3339).expect("format").as_str())
    );
    let (status, _) =
        api.call(&world, admin, Method::POST, &format!("/api/v1/admin/apps/{}/keys", uuid::Uuid::new_v4()), Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let app_path = format!("/api/v1/admin/apps/{id}");
    let change = json!({"name": "ERP (production)", "registrationId": registration, "allowedOrigins": []});
    let (status, changed) = api.call(&world, admin, Method::PUT, &app_path, Some(change)).await;
    assert_eq!(
        (status, changed["name"].as_str(), changed["allowedOrigins"].clone()),
        (StatusCode::OK, Some("ERP (production)"), json!([]))
    );
    let (status, _) = api.call(&world, admin, Method::DELETE, &app_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.call(&world, admin, Method::GET, &app_path, None).await.0, StatusCode::NOT_FOUND);
    let (_, audit) = api.call(&world, admin, Method::GET, "/api/v1/admin/audit", None).await;
    let text = audit.to_string();
    for action in ["apps.created", "apps.key.rotated", "apps.changed", "apps.deleted"] {
        assert!(text.contains(action), "{action}: {audit}");
    }
    assert!(!text.contains(&key[8..]), "{audit}");
}

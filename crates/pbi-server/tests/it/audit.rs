//! Where the key and users' tokens are sent cannot change without the key; older keys can be removed; every
//! such change, and every change to users, is in the audit log an administrator reads.

use crate::api::{Api, Auth};
use crate::connect::world;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The configuration as it stands, as the body that would save it unchanged (without a key).
fn as_saved(config: &Value) -> Value {
    json!({
        "enabled": config["enabled"],
        "clientId": config["clientId"],
        "tenant": config["tenant"],
        "cloud": config["cloud"],
        "authorizeUrl": config["authorizeUrl"],
        "tokenUrl": config["tokenUrl"],
        "apiBase": config["apiBase"],
    })
}

#[tokio::test]
async fn moving_the_endpoints_needs_the_key_again_and_is_recorded_without_any_secret() {
    let world = world().await;
    let api = Api::of(&world).await;
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "audit").await;
    let admin = Auth::Token(&admin_token);
    let (_, before) = api.call(&world, admin, Method::GET, "/api/v1/admin/powerbi", None).await;

    // The token URL of a server the administrator controls, without entering the key: refused, nothing moves.
    for (field, value) in [("tokenUrl", "https://collector.example/token"), ("apiBase", "https://collector.example"), ("cloud", "china")] {
        let mut moved = as_saved(&before);
        moved[field] = json!(value);
        let (status, refused) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(moved)).await;
        assert_eq!((status, refused["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("applicationKey")), "{field}: {refused}");
        assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("entered again")), "{refused}");
    }
    let (_, unchanged) = api.call(&world, admin, Method::GET, "/api/v1/admin/powerbi", None).await;
    assert_eq!(unchanged, before, "a refused change changes nothing");
    let (_, log) = api.call(&world, admin, Method::GET, "/api/v1/admin/audit", None).await;
    assert_eq!(log["entries"].as_array().map(Vec::len), Some(0), "and records nothing: {log}");

    // Other settings change freely.
    let mut renamed = as_saved(&before);
    renamed["tenant"] = json!("fabrikam.onmicrosoft.com");
    let (status, _) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(renamed)).await;
    assert_eq!(status, StatusCode::OK);

    // With the key entered again, the endpoints move, and the log says who moved them from where to where.
    let key = "re-entered-application-key~0123456789";
    let mut moved = as_saved(&before);
    moved["tenant"] = json!("fabrikam.onmicrosoft.com");
    moved["tokenUrl"] = json!("https://login.example/token");
    moved["applicationKey"] = json!({"value": key, "expiresOn": "2031-01-31"});
    let (status, saved) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(moved)).await;
    assert_eq!((status, saved["tokenUrl"].as_str()), (StatusCode::OK, Some("https://login.example/token")), "{saved}");

    let (status, log) = api.call(&world, admin, Method::GET, "/api/v1/admin/audit", None).await;
    assert_eq!(status, StatusCode::OK);
    let entries = log["entries"].as_array().expect("entries");
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["powerbi.key.added", "powerbi.endpoints.changed", "powerbi.configuration.changed"], "newest first: {log}");
    let moved_entry = &entries[1];
    assert_eq!(moved_entry["actor"], "admin");
    let old: Value = serde_json::from_str(moved_entry["oldValue"].as_str().expect("old")).expect("JSON");
    let new: Value = serde_json::from_str(moved_entry["newValue"].as_str().expect("new")).expect("JSON");
    assert_eq!((old["tokenUrl"].clone(), new["tokenUrl"].clone()), (before["tokenUrl"].clone(), json!("https://login.example/token")));
    assert!(entries[0]["newValue"].as_str().is_some_and(|v| v.contains("2031-01-31")), "the key's expiry, not the key");
    let (_, page) = world.app.page(&admin_session, "/admin/audit").await;
    assert!(page.contains("powerbi.endpoints.changed") && page.contains("https://login.example/token"), "{page}");
    for text in [log.to_string(), page] {
        assert!(!text.contains(key), "the key is never in the log");
    }

    let alice_session = world.app.session("alice").await;
    let alice_token = world.api_token(&alice_session, "nosy").await;
    let (status, _) = api.call(&world, Auth::Token(&alice_token), Method::GET, "/api/v1/admin/audit", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "administrators only");
    let (status, _) = world.app.page(&alice_session, "/admin/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, bad) = api.call(&world, admin, Method::GET, "/api/v1/admin/audit?after=not-a-cursor", None).await;
    assert_eq!((status, bad["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("cursor")));
}

#[tokio::test]
async fn the_key_entered_last_is_in_use_and_older_keys_are_shown_and_removed() {
    let world = world().await;
    let api = Api::of(&world).await;
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "keys").await;
    let admin = Auth::Token(&admin_token);
    let (_, before) = api.call(&world, admin, Method::GET, "/api/v1/admin/powerbi", None).await;
    let first = before["applicationKeys"][0]["id"].as_str().expect("the world's key").to_owned();

    // A corrected key that expires before the first one: it is the key in use all the same.
    let mut corrected = as_saved(&before);
    corrected["applicationKey"] = json!({"value": "corrected-key~0123456789", "expiresOn": "2026-12-30"});
    let (status, saved) = api.call(&world, admin, Method::PUT, "/api/v1/admin/powerbi", Some(corrected)).await;
    assert_eq!(status, StatusCode::OK);
    let keys = saved["applicationKeys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0]["inUse"].as_bool(), keys[0]["expiresOn"].as_str()), (Some(true), Some("2026-12-30")), "{saved}");
    assert_eq!((keys[1]["id"].as_str(), keys[1]["inUse"].as_bool()), (Some(first.as_str()), Some(false)));
    assert_eq!(saved["applicationKey"]["expiresOn"], "2026-12-30", "the state shown is the key in use");
    let (_, page) = world.app.page(&admin_session, "/admin/powerbi").await;
    assert!(page.contains(r#"id="keys""#) && page.contains("In use") && page.contains("Older"), "{page}");

    let in_use = keys[0]["id"].as_str().expect("id").to_owned();
    let (status, refused) = api.call(&world, admin, Method::DELETE, &format!("/api/v1/admin/powerbi/keys/{in_use}"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    let (status, _) = api.call(&world, admin, Method::DELETE, &format!("/api/v1/admin/powerbi/keys/{first}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(&world, admin, Method::DELETE, &format!("/api/v1/admin/powerbi/keys/{first}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "gone");
    let (_, after) = api.call(&world, admin, Method::GET, "/api/v1/admin/powerbi", None).await;
    assert_eq!(after["applicationKeys"].as_array().map(Vec::len), Some(1));
    let (_, log) = api.call(&world, admin, Method::GET, "/api/v1/admin/audit", None).await;
    assert_eq!(log["entries"][0]["action"], "powerbi.key.removed", "{log}");
}

#[tokio::test]
async fn adding_and_disabling_users_is_recorded() {
    let world = world().await;
    let api = Api::of(&world).await;
    let admin_session = world.app.session("admin").await;
    let admin_token = world.api_token(&admin_session, "users").await;
    let admin = Auth::Token(&admin_token);
    let new = json!({"username": "Carol", "password": "carol's long password"});
    let (status, carol) = api.call(&world, admin, Method::POST, "/api/v1/admin/users", Some(new)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, twin) = api
        .call(&world, admin, Method::POST, "/api/v1/admin/users", Some(json!({"username": "carol", "password": "another long password"})))
        .await;
    assert_eq!((status, twin["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("username")), "one account whatever the case");
    let id = carol["id"].as_str().expect("id");
    let (status, _) = api.call(&world, admin, Method::PATCH, &format!("/api/v1/admin/users/{id}"), Some(json!({"disabled": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let new_password = json!({"password": "carol's new long password"});
    let (status, _) = api.call(&world, admin, Method::PATCH, &format!("/api/v1/admin/users/{id}"), Some(new_password)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, log) = api.call(&world, admin, Method::GET, "/api/v1/admin/audit", None).await;
    assert!(!log.to_string().contains("carol's new long password"), "never the password");
    let seen: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["action"].as_str().unwrap_or(""), e["target"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(seen, [("user.password.set", "Carol"), ("user.disabled", "Carol"), ("user.added", "Carol")], "{log}");
}

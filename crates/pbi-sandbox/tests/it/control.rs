//! Test control: faults, the request log, the clock over HTTP, the seed document.

use crate::support::*;
use pbi_sandbox::{FaultKind, FaultRule, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn injected_faults_answer_the_next_matching_requests_then_stop() {
    let t = TestSandbox::start().await;
    let alice = t.user_token("alice@contoso.onmicrosoft.com").await;
    t.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/groups", 1, FaultKind::Throttle { retry_after: 42 }));
    t.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 2, FaultKind::Status { status: 503, retry_after: None }));
    let (status, headers, _) = t.call(&alice, reqwest::Method::GET, "/groups", None).await;
    assert_eq!((status, headers["retry-after"].to_str().ok()), (StatusCode::TOO_MANY_REQUESTS, Some("42")));
    for _ in 0..2 {
        assert_eq!(t.api_get(&alice, "/groups").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(t.api_get(&alice, "/groups").await.0, StatusCode::OK);

    // Over HTTP too, with a dropped connection and an invalid body.
    let response = t
        .http
        .post(t.url("/_sandbox/faults"))
        .json(&json!({"path": "/v1.0/myorg/dashboards", "fault": {"kind": "drop"}}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);
    let dropped = t.http.get(t.url("/v1.0/myorg/dashboards")).bearer_auth(&alice).send().await;
    let error = dropped.expect_err("the connection is cut before a complete answer");
    assert!(error.is_request(), "{error}");
    t.http
        .post(t.url("/_sandbox/faults"))
        .json(&json!({"path": "/v1.0/myorg/dashboards", "fault": {"kind": "invalidBody"}}))
        .send()
        .await
        .expect("POST");
    let garbled = t.http.get(t.url("/v1.0/myorg/dashboards")).bearer_auth(&alice).send().await.expect("GET");
    assert!(garbled.json::<Value>().await.is_err());
}

/// The in-flight count a client's concurrency test relies on: delayed requests stay in flight until the
/// manual clock moves, a brief overlap is kept as the maximum, and only Power BI REST calls count.
#[tokio::test]
async fn the_sandbox_counts_power_bi_requests_in_flight_and_delay_faults_hold_them_until_the_clock_moves() {
    let t = TestSandbox::start().await;
    let alice = t.user_token("alice@contoso.onmicrosoft.com").await;
    t.sandbox.reset_max_in_flight();
    assert_eq!((t.sandbox.in_flight(), t.sandbox.max_in_flight(), t.sandbox.delayed()), (0, 0, 0));
    // Other services and the sandbox's own endpoints do not count.
    t.http.get(t.url(&format!("/{TENANT}/v2.0/.well-known/openid-configuration"))).send().await.expect("GET");
    t.http.get(t.url("/_sandbox/clock")).send().await.expect("GET");
    assert_eq!(t.sandbox.max_in_flight(), 0);
    assert_eq!(t.api_get(&alice, "/groups").await.0, StatusCode::OK);
    assert_eq!((t.sandbox.in_flight(), t.sandbox.max_in_flight()), (0, 1), "one at a time");

    t.sandbox.reset_max_in_flight();
    t.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/groups", 2, FaultKind::Delay { millis: 1000 }));
    let held: Vec<_> = (0..2).map(|_| tokio::spawn(t.http.get(t.url("/v1.0/myorg/groups")).bearer_auth(&alice).send())).collect();
    within_a_minute(t.sandbox.wait_for_delayed(2)).await;
    within_a_minute(t.sandbox.wait_for_in_flight(2)).await;
    assert_eq!(t.sandbox.in_flight(), 2, "both are held by the clock");
    // A third request is answered while they wait: the peak stays, the count falls back.
    assert_eq!(t.api_get(&alice, "/dashboards").await.0, StatusCode::OK);
    assert_eq!((t.sandbox.in_flight(), t.sandbox.max_in_flight()), (2, 3));
    assert!(held.iter().all(|h| !h.is_finished()), "no answer before the clock moves");
    t.sandbox.clock().advance(time::Duration::seconds(1)).expect("a manual clock");
    for request in held {
        assert_eq!(within_a_minute(request).await.expect("task").expect("GET").status(), StatusCode::OK);
    }
    assert_eq!((t.sandbox.in_flight(), t.sandbox.max_in_flight(), t.sandbox.delayed()), (0, 3, 2));
    t.sandbox.reset_max_in_flight();
    assert_eq!(t.sandbox.max_in_flight(), 0, "reset to the requests in flight now");
    // An overlap that has ended still satisfies a wait started later (it waits on the maximum).
    assert_eq!(t.api_get(&alice, "/groups").await.0, StatusCode::OK);
    within_a_minute(t.sandbox.wait_for_in_flight(1)).await;
}

#[tokio::test]
async fn the_request_log_names_callers_and_never_holds_secrets() {
    let t = TestSandbox::start().await;
    t.sandbox.clear_requests();
    let tokens = t.user_tokens("alice@contoso.onmicrosoft.com").await;
    let access = tokens["access_token"].as_str().expect("token");
    t.api_get(access, "/groups").await;
    let log = t.sandbox.requests();
    let token_calls: Vec<_> = log.iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).collect();
    assert_eq!(token_calls.len(), 1, "the token endpoint was called exactly once");
    let api = log.iter().find(|r| r.service == Service::PowerBi).expect("an API call");
    assert_eq!((api.caller.as_deref(), api.status), (Some("alice@contoso.onmicrosoft.com"), 200));

    let over_http: Value = t.http.get(t.url("/_sandbox/requests")).send().await.expect("GET").json().await.expect("JSON");
    let text = over_http.to_string();
    for secret in [access, tokens["refresh_token"].as_str().expect("rt"), pbi_sandbox::demo::APP_SECRET, "alice-password"] {
        assert!(!text.contains(secret), "the log never holds a secret or token");
    }
}

#[tokio::test]
async fn the_clock_moves_over_http_and_the_seed_lists_the_directory() {
    let t = TestSandbox::start().await;
    let before: Value = t.http.get(t.url("/_sandbox/clock")).send().await.expect("GET").json().await.expect("JSON");
    let after: Value = t
        .http
        .post(t.url("/_sandbox/clock/advance"))
        .json(&json!({"seconds": 3600}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(after["unix"].as_i64().expect("unix") - before["unix"].as_i64().expect("unix"), 3600);

    let seed: Value = t.http.get(t.url("/_sandbox/seed")).send().await.expect("GET").json().await.expect("JSON");
    let users: Vec<&str> = seed["users"].as_array().expect("users").iter().filter_map(|u| u["upn"].as_str()).collect();
    assert!(users.contains(&"alice@contoso.onmicrosoft.com") && users.contains(&"dave@fabrikam.onmicrosoft.com"));
    assert_eq!(seed["tenants"].as_array().expect("tenants").len(), 2);
    assert!(seed["apps"].as_array().expect("apps").iter().any(|a| a["clientId"] == t.client_id()));

    let response = t
        .http
        .post(t.url("/_sandbox/commands"))
        .json(&json!({"op": "createUser", "tenant": "00000000-0000-4000-8000-000000000000", "upn": "x@y", "password": "p"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = t.http.post(t.url("/_sandbox/commands")).json(&json!({"op": "launchRockets"})).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Any web page a developer visits could otherwise reconfigure their running sandbox with a "simple"
/// cross-origin request (a form, or a fetch with text/plain), which browsers send without a preflight.
#[tokio::test]
async fn the_control_api_refuses_changes_that_are_not_json_or_come_from_another_site() {
    let t = TestSandbox::start().await;
    let before = t.sandbox.clock().now();
    let upn = "mallory@contoso.onmicrosoft.com";
    let create = json!({"op": "createUser", "tenant": pbi_sandbox::demo_id("tenant:contoso"), "upn": upn, "password": "p"}).to_string();
    let advance = json!({"seconds": 3600}).to_string();
    let rule = json!({"path": "/v1.0/*", "fault": {"kind": "drop"}}).to_string();
    let foreign = Some("https://attacker.example");
    let json_type = Some("application/json");
    let cases = [
        ("POST", "/_sandbox/clock/advance", Some("text/plain"), None, &advance, "Content-Type:"),
        ("POST", "/_sandbox/commands", Some("text/plain;charset=UTF-8"), foreign, &create, "Origin:"),
        ("POST", "/_sandbox/commands", Some("text/plain"), None, &create, "Content-Type:"),
        ("POST", "/_sandbox/commands", Some("application/x-www-form-urlencoded"), None, &create, "Content-Type:"),
        ("POST", "/_sandbox/commands", None, None, &create, "Content-Type:"),
        ("POST", "/_sandbox/commands", json_type, foreign, &create, "Origin:"),
        ("POST", "/_sandbox/commands", json_type, Some("null"), &create, "Origin:"),
        ("POST", "/_sandbox/clock/advance", json_type, foreign, &advance, "Origin:"),
        ("POST", "/_sandbox/faults", Some("multipart/form-data; boundary=x"), None, &rule, "Content-Type:"),
        ("POST", "/_sandbox/faults", json_type, foreign, &rule, "Origin:"),
        ("PUT", "/_sandbox/push-limits", Some("text/plain"), None, &r#"{"enabled": false}"#.to_owned(), "Content-Type:"),
        ("DELETE", "/_sandbox/requests", None, foreign, &String::new(), "Origin:"),
        ("DELETE", "/_sandbox/faults", None, foreign, &String::new(), "Origin:"),
    ];
    t.sandbox.inject(FaultRule::new(Some("GET"), "/nowhere", 1, FaultKind::Drop));
    t.http.get(t.url("/v1.0/myorg/groups")).send().await.expect("a logged request");
    for (method, path, content_type, origin, body, names) in cases {
        let mut request = t.http.request(method.parse().expect("method"), t.url(path)).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let error: Value = response.json().await.expect("a JSON error");
        let expected = if names == "Origin:" { StatusCode::FORBIDDEN } else { StatusCode::UNSUPPORTED_MEDIA_TYPE };
        assert_eq!(status, expected, "{method} {path} {content_type:?} {origin:?}: {error}");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(names), "the error names the header: {message}");
        let sent = if names == "Origin:" { origin } else { content_type };
        assert!(message.contains(sent.unwrap_or("none")), "and what was sent: {message}");
    }
    // Nothing changed.
    assert_eq!(t.sandbox.clock().now(), before, "the clock did not move");
    assert!(!t.sandbox.directory().to_string().contains(upn), "no user was created");
    assert_eq!(t.sandbox.pending_faults().len(), 1, "no fault was added or cleared");
    assert!(!t.sandbox.requests().is_empty(), "the log was not cleared");

    // Reads stay open to any page; the sandbox's own pages and scripts (no Origin) can still change things.
    let read = t.http.get(t.url("/_sandbox/clock")).header("origin", "https://attacker.example").send().await.expect("GET");
    assert_eq!(read.status(), StatusCode::OK);
    let own = t
        .http
        .post(t.url("/_sandbox/clock/advance"))
        .header("origin", t.sandbox.base_url())
        .header("content-type", "application/json; charset=utf-8")
        .body(advance.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(t.sandbox.clock().now() - before, time::Duration::hours(1));
    let script =
        t.http.post(t.url("/_sandbox/commands")).header("content-type", "application/json").body(create).send().await.expect("POST");
    assert_eq!(script.status(), StatusCode::OK);
    assert!(t.sandbox.directory().to_string().contains(upn));
}

/// The text of the element with `id` (a `<pre>` or `<code>`), with the page's escapes undone.
fn element_text(page: &str, id: &str) -> Option<String> {
    let start = page.find(&format!(r#"id="{id}""#))?;
    let start = start + page[start..].find('>')? + 1;
    let end = start + page[start..].find("</")?;
    let text = &page[start..end];
    Some(text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&"))
}

/// Splits `command` into words as a POSIX shell does (nothing is run but `sh` itself).
fn shell_words(command: &str) -> Vec<String> {
    let output =
        std::process::Command::new("sh").args(["-c", r#"eval "set -- $1"; printf '%s\0' "$@""#, "sh", command]).output().expect("sh runs");
    assert!(output.status.success(), "sh could not read the command: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).split('\0').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_callback_page_shows_the_code_and_one_curl_that_redeems_it() {
    let t = TestSandbox::start().await;
    let redirect = t.authorize_as("alice@contoso.onmicrosoft.com", &[]).await;
    let page = t.http.get(&redirect).send().await.expect("GET").text().await.expect("page");
    let code = query_param(&redirect, "code").expect("code");
    assert_eq!(element_text(&page, "code").as_deref(), Some(code.as_str()));
    assert_eq!(page.matches("<pre").count(), 2, "the code, and the command in one block: {page}");
    let command = element_text(&page, "redeem").expect("the command");
    assert!(!command.contains('\n') && !command.contains('\\'), "one line, no continuation the page added: {command:?}");

    // Copied whole into a shell, the command is curl posting a form to the token endpoint: send that form.
    let words = shell_words(&command);
    assert_eq!(words[..2], ["curl", "-s"], "{words:?}");
    let mut form = Vec::new();
    let mut rest = words[3..].iter();
    while let (Some(flag), Some(pair)) = (rest.next(), rest.next()) {
        assert!(flag == "-d" || flag == "--data-urlencode", "only form fields: {words:?}");
        let (name, value) = pair.split_once('=').expect("NAME=VALUE");
        form.push((name.to_owned(), value.to_owned()));
    }
    let answer = t.http.post(&words[2]).form(&form).send().await.expect("POST");
    assert_eq!(answer.status(), StatusCode::OK, "the command redeems the code: {}", answer.text().await.unwrap_or_default());
    let tokens: Value = answer.json().await.expect("JSON");
    assert!(tokens["access_token"].is_string(), "{tokens}");
}

#[tokio::test]
async fn the_callback_page_leaves_out_fields_that_did_not_come() {
    let t = TestSandbox::start().await;
    let page = |query: &'static str| {
        let url = t.url(&format!("/_sandbox/callback?{query}"));
        let http = t.http.clone();
        async move { http.get(url).send().await.expect("GET").text().await.expect("page") }
    };
    let bare = page("code=abc&state=&session_state=").await;
    assert!(bare.contains("Redeem it"), "{bare}");
    assert!(!bare.contains("State:") && !bare.contains(r#"id="state""#) && !bare.contains("Session state"), "empty fields hidden: {bare}");
    let with_state = page("code=abc&state=s-1").await;
    assert_eq!(element_text(&with_state, "state").as_deref(), Some("s-1"), "{with_state}");

    let error = page("error=access_denied&error_description=&state=").await;
    assert_eq!(element_text(&error, "error").as_deref(), Some("access_denied"));
    assert!(!error.contains("error-description") && !error.contains("State:"), "{error}");
    let described = page("error=access_denied&error_description=AADSTS65004%3A%20declined").await;
    assert_eq!(element_text(&described, "error-description").as_deref(), Some("AADSTS65004: declined"));

    let consent = page("admin_consent=True&tenant=").await;
    assert!(consent.contains("admin_consent=True") && !consent.contains("Tenant:"), "{consent}");
}

/// `issueRefreshToken` gives a test a signed-in user without a browser: the token is redeemed like one from a
/// sign-in (consent is checked then), and the command refuses scopes without offline_access.
#[tokio::test]
async fn issue_refresh_token_mints_a_token_the_token_endpoint_redeems_as_a_sign_ins() {
    let t = TestSandbox::start().await;
    let bob = pbi_sandbox::demo_id("user:bob@contoso.onmicrosoft.com");
    let issued = t.control(json!({"op": "issueRefreshToken", "user": bob, "clientId": t.client_id(), "scope": API_SCOPES})).await;
    let token = issued["refreshToken"].as_str().expect("a refresh token").to_owned();
    let (status, refused) = t.refresh(token.clone()).await;
    assert_eq!((status, refused["error_codes"][0].as_u64()), (StatusCode::BAD_REQUEST, Some(65001)), "bob has not consented yet");
    let tenant = pbi_sandbox::demo_id("tenant:contoso");
    t.control(json!({"op": "grantConsent", "tenant": tenant, "clientId": t.client_id(), "user": bob, "scopes": ["Dashboard.Read.All"]}))
        .await;
    let (status, body) = t.refresh(token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string(), "{body}");
    let requests = t.sandbox.requests();
    let last = requests.last().expect("the token request is logged");
    assert_eq!(
        (last.path.as_str(), last.caller.as_deref()),
        (format!("/{TENANT}/oauth2/v2.0/token").as_str(), Some("bob@contoso.onmicrosoft.com"))
    );

    let refused = t
        .http
        .post(t.url("/_sandbox/commands"))
        .json(&json!({"op": "issueRefreshToken", "user": bob, "clientId": t.client_id(), "scope": "openid"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let error: Value = refused.json().await.expect("JSON");
    assert_eq!(error["error"], "a refresh token needs the offline_access scope");
}

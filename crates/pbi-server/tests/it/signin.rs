//! Signing in under attack: throttling per user name and client address, a lock no one else can impose,
//! sessions a new sign-in replaces, the login form's CSRF cookie, and connections that stay usable after a
//! refusal.

use crate::{App, PASSWORD, hidden, session_cookie};
use pbi_server::{ServerConfig, users};
use reqwest::StatusCode;
use std::net::IpAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server like `App::start`'s, with this configuration.
async fn app_with(config: ServerConfig) -> App {
    App::start_with(config, pbi_clock::Clock::manual_from_now()).await
}

/// A browser elsewhere: its requests come from `address` (any of 127.0.0.0/8 reaches the server).
fn client_at(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).local_address(IpAddr::from(address)).build().expect("client")
}

/// Signs in through `http` (sending `cookies` too, and `headers`), the form fetched by the same client.
async fn sign_in_through(
    app: &App,
    http: &reqwest::Client,
    username: &str,
    password: &str,
    cookies: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let form = http.get(app.url("/login")).send().await.expect("GET");
    let csrf_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.contains("login_csrf="))
        .and_then(|c| c.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let csrf = hidden(&form.text().await.expect("page"), "csrf").expect("csrf field");
    let cookie = if cookies.is_empty() { csrf_cookie } else { format!("{csrf_cookie}; {cookies}") };
    let mut request = http.post(app.url("/login")).header("cookie", cookie);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.form(&[("csrf", csrf.as_str()), ("username", username), ("password", password), ("next", "/")]).send().await.expect("POST")
}

const ATTACKER: [u8; 4] = [127, 0, 0, 2];

#[tokio::test]
async fn wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere() {
    let app = App::start().await;
    let attacker = client_at(ATTACKER);
    // Any spelling of the name counts for the account it names.
    for name in ["ALICE", " alice ", "Alice", "alice", " aLiCe"].iter().cycle().take(10) {
        assert_eq!(sign_in_through(&app, &attacker, name, "a wrong guess!!", "", &[]).await.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = sign_in_through(&app, &attacker, "alice", PASSWORD, "", &[]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "the guessing address waits, even with the password");
    let owner = app.sign_in("alice", PASSWORD, "/").await;
    assert_eq!(owner.status(), StatusCode::SEE_OTHER, "alice, signing in from her own address, is not locked out");
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("900"), "the guesser is told how long");
}

#[tokio::test]
async fn forwarded_for_headers_are_ignored_unless_the_proxy_is_trusted() {
    let app = App::start().await;
    let attacker = client_at(ATTACKER);
    for i in 0..10 {
        let forwarded = format!("10.0.0.{i}");
        let answer = sign_in_through(&app, &attacker, "alice", "a wrong guess!!", "", &[("x-forwarded-for", &forwarded)]).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let claimed_elsewhere = sign_in_through(&app, &attacker, "alice", PASSWORD, "", &[("x-forwarded-for", "10.9.9.9")]).await;
    assert_eq!(claimed_elsewhere.status(), StatusCode::TOO_MANY_REQUESTS, "a header cannot buy fresh guesses");

    let behind_proxy = app_with(ServerConfig { trust_forwarded_for: true, ..Default::default() }).await;
    for _ in 0..10 {
        let answer =
            sign_in_through(&behind_proxy, &behind_proxy.http, "alice", "a wrong guess!!", "", &[("x-forwarded-for", "203.0.113.7")]).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let same_client =
        sign_in_through(&behind_proxy, &behind_proxy.http, "alice", PASSWORD, "", &[("x-forwarded-for", "198.51.100.1, 203.0.113.7")])
            .await;
    assert_eq!(same_client.status(), StatusCode::TOO_MANY_REQUESTS, "the address the proxy saw is the last one");
    let other_client =
        sign_in_through(&behind_proxy, &behind_proxy.http, "alice", PASSWORD, "", &[("x-forwarded-for", "203.0.113.8")]).await;
    assert_eq!(other_client.status(), StatusCode::SEE_OTHER, "another client behind the same proxy is not locked out");
}

#[tokio::test]
async fn when_every_password_slot_is_taken_password_work_is_refused_at_once_and_the_rest_still_answers() {
    let slots = users::PasswordSlots::new(1);
    let app = app_with(ServerConfig { password_slots: slots.clone(), ..Default::default() }).await;
    let admin = app.session("admin").await;
    let (_, page) = app.page(&admin, "/admin/users").await;
    let csrf = hidden(&page, "csrf").expect("csrf");
    let alice = app.store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice");
    let doc: serde_json::Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("GET").json().await.expect("JSON");
    let documented = pbi_swagger::Swagger::strict(doc);

    // Held by the test, so a request that waited for it would never be answered.
    let held = slots.try_take().expect("the only slot");
    let retry_after = |r: &reqwest::Response| r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    for _ in 0..12 {
        let refused = app.sign_in("alice", "a wrong guess!!", "/").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&refused).as_deref(), Some("1"));
        assert!(refused.text().await.expect("page").contains("The server is busy signing other people in."));
    }
    assert_eq!(app.http.get(app.url("/healthz")).send().await.expect("GET").text().await.expect("body"), "ok", "other requests answer");
    assert_eq!(app.page(&admin, "/").await.0, StatusCode::OK, "and signed-in pages too");

    let added = app
        .http
        .post(app.url("/admin/users"))
        .header("cookie", &admin)
        .form(&[("csrf", csrf.as_str()), ("username", "carol"), ("password", "a long enough password")])
        .send()
        .await
        .expect("POST");
    assert_eq!((added.status(), retry_after(&added).as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("1")), "the Users page");
    let api = |method: reqwest::Method, path: String, body: serde_json::Value| {
        app.http.request(method, app.url(&path)).header("cookie", &admin).header("x-csrf-token", &csrf).json(&body).send()
    };
    for (operation, method, path, body) in [
        (
            "createUser",
            reqwest::Method::POST,
            "/api/v1/admin/users".to_owned(),
            serde_json::json!({"username": "carol", "password": "a long enough password"}),
        ),
        (
            "updateUser",
            reqwest::Method::PATCH,
            format!("/api/v1/admin/users/{}", alice.id),
            serde_json::json!({"password": "a brand new password"}),
        ),
    ] {
        let answer = api(method, path, body).await.expect("request");
        assert_eq!((answer.status(), retry_after(&answer).as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("1")), "{operation}");
        let body: serde_json::Value = answer.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "busy", "{operation}: {body}");
        documented.check_response(operation, 429, &body).expect("as documented");
    }
    assert_eq!(app.store.users().await.expect("users").len(), 3, "nothing was added");

    drop(held);
    assert_eq!(app.sign_in("alice", PASSWORD, "/").await.status(), StatusCode::SEE_OTHER, "refusals when busy count as no failure");
}

/// The row of the Users page for `user`.
fn row(page: &str, user: &str) -> String {
    let start = page.find(&format!(r#"id="user-{user}""#)).expect("row");
    page[start..start + page[start..].find("</tr>").expect("row end")].to_owned()
}

#[tokio::test]
async fn a_new_password_set_by_an_administrator_lifts_the_lock() {
    let app = App::start().await;
    let admin = app.session("admin").await;
    let attacker = client_at(ATTACKER);
    for _ in 0..10 {
        sign_in_through(&app, &attacker, "alice", "a wrong guess!!", "", &[]).await;
    }
    assert_eq!(sign_in_through(&app, &attacker, "alice", PASSWORD, "", &[]).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let (_, page) = app.page(&admin, "/admin/users").await;
    let csrf = hidden(&page, "csrf").expect("csrf");
    let alice = app.store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice");
    let set = app
        .http
        .post(app.url(&format!("/admin/users/{}/password", alice.id)))
        .header("cookie", &admin)
        .form(&[("csrf", csrf.as_str()), ("password", "a brand new password")])
        .send()
        .await
        .expect("POST");
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    let after = sign_in_through(&app, &attacker, "alice", "a brand new password", "", &[]).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the new password works at once, from anywhere");
    let (_, users) = app.page(&admin, "/admin/users").await;
    assert!(!row(&users, "alice").contains("locked"), "and the page says so");
}

#[tokio::test]
async fn administrators_see_who_is_locked_out() {
    let app = App::start().await;
    let admin = app.session("admin").await;
    let attacker = client_at(ATTACKER);
    for _ in 0..10 {
        sign_in_through(&app, &attacker, "alice", "a wrong guess!!", "", &[]).await;
    }
    let (_, page) = app.page(&admin, "/admin/users").await;
    assert!(row(&page, "alice").contains("locked out from 1 address until"), "{}", row(&page, "alice"));
    assert!(!row(&page, "bob").contains("locked"), "{}", row(&page, "bob"));

    let doc: serde_json::Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("GET").json().await.expect("JSON");
    let users: serde_json::Value =
        app.http.get(app.url("/api/v1/admin/users")).header("cookie", &admin).send().await.expect("GET").json().await.expect("JSON");
    pbi_swagger::Swagger::strict(doc).check_response("listUsers", 200, &users).expect("as documented");
    let of = |name: &str| users["users"].as_array().expect("users").iter().find(|u| u["username"] == name).expect("user").clone();
    assert_eq!(of("alice")["signInLock"]["addresses"], 1, "{users}");
    assert_eq!(of("alice")["signInLock"]["allAddresses"], false, "{users}");
    assert!(of("alice")["signInLock"]["until"].is_string(), "{users}");
    assert!(of("bob")["signInLock"].is_null(), "{users}");
}

#[tokio::test]
async fn a_user_name_longer_than_any_account_is_refused_before_its_password_is_checked() {
    let app = App::start().await;
    let long = "x".repeat(60_000);
    let refused = app.sign_in(&long, "a wrong guess!!", "/").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    assert!(page.contains("User name: a user name is 1 to 64 characters"), "names the field: {}", &page[..page.len().min(2000)]);
    assert!(!page.contains(&long[..100]), "and does not echo it");
    let longest = "x".repeat(64);
    assert_eq!(app.sign_in(&longest, "a wrong guess!!", "/").await.status(), StatusCode::UNAUTHORIZED, "64 is still a user name");
}

#[tokio::test]
async fn signing_in_as_someone_else_ends_the_session_it_replaces() {
    let app = App::start().await;
    let alice = app.session("alice").await;
    let bob = sign_in_through(&app, &app.http, "bob", PASSWORD, &alice, &[]).await;
    assert_eq!(bob.status(), StatusCode::SEE_OTHER);
    let bob = session_cookie(&bob);
    assert_ne!(bob, alice);
    let (status, _) = app.page(&alice, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "alice's session ended when the browser signed in as bob");
    let (status, home) = app.page(&bob, "/").await;
    assert!(status == StatusCode::OK && home.contains("Bob Smith"), "{status}");

    let failed = sign_in_through(&app, &app.http, "bob", "a wrong guess!!", &bob, &[]).await;
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.page(&bob, "/").await.0, StatusCode::OK, "a failed sign-in replaces nothing");
}

#[tokio::test]
async fn a_login_csrf_pair_the_server_did_not_issue_is_refused() {
    let app = App::start().await;
    let forged = |value: &str| {
        app.http
            .post(app.url("/login"))
            .header("cookie", format!("pbi_login_csrf={value}"))
            .form(&[("csrf", value), ("username", "alice"), ("password", PASSWORD), ("next", "/")])
            .send()
    };
    assert_eq!(forged("attacker-chosen").await.expect("POST").status(), StatusCode::FORBIDDEN);

    // A pair another server issued (another key) is not this server's either.
    let other = App::start().await;
    let (cookie, csrf) = other.login_form().await;
    let value = cookie.split_once('=').expect("cookie").1.to_owned();
    assert_eq!(value, csrf, "double-submitted");
    assert_eq!(forged(&value).await.expect("POST").status(), StatusCode::FORBIDDEN);
    // Tampering with a genuine one breaks it.
    let (cookie, _) = app.login_form().await;
    let genuine = cookie.split_once('=').expect("cookie").1.to_owned();
    let mut tampered = genuine.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(forged(&String::from_utf8(tampered).expect("ascii")).await.expect("POST").status(), StatusCode::FORBIDDEN);

    // A genuine pair lasts an hour, as its cookie does.
    let (cookie, csrf) = app.login_form().await;
    app.clock.advance(time::Duration::minutes(61)).expect("manual clock");
    let late = app
        .http
        .post(app.url("/login"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("POST");
    assert_eq!(late.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.sign_in("alice", PASSWORD, "/").await.status(), StatusCode::SEE_OTHER, "a fresh form works");
}

/// One HTTP/1.1 answer read off a connection: status, lowercased headers, body.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> Option<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).expect("a length");
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((status, headers, body))
}

#[tokio::test]
async fn a_refused_request_with_a_body_leaves_the_connection_usable() {
    let app = App::start().await;
    let alice = app.session("alice").await;
    let addr = app.server.local_addr();
    let body = br#"{"name": "Sales"}"#;
    // Changes with the session cookie but no CSRF header (refused before the body is read), a form post that
    // must sign in first, and a page: each followed on the same connection by the next, as a client does that
    // sends its whole body even when the answer came early, and that opens a new connection only when told to
    // (`Connection: close`).
    let refused_api = format!(
        "POST /api/v1/workspaces HTTP/1.1\r\nHost: x\r\nCookie: {alice}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let form = b"csrf=whatever&name=Sales";
    let refused_page = format!(
        "POST /workspaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    let requests: Vec<(String, &[u8], u16)> = vec![
        (refused_api.clone(), body, 403),
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".into(), b"", 200),
        (refused_page.clone(), form, 303),
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".into(), b"", 200),
        (refused_api, body, 403),
        (refused_page, form, 303),
        ("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".into(), b"", 200),
    ];
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    for (i, (head, body, expected)) in requests.into_iter().enumerate() {
        stream.write_all(head.as_bytes()).await.expect("write the head");
        // The head alone: the server answers before the body is there.
        let (status, headers, _) = read_answer(&mut stream).await.unwrap_or_else(|| panic!("request {i}: the connection was dropped"));
        assert_eq!(status, expected, "request {i}");
        let closing = headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        if closing {
            stream = tokio::net::TcpStream::connect(addr).await.expect("reconnect");
        } else {
            stream.write_all(body).await.expect("the rest of the body");
        }
    }
}

/// Behind a load balancer, the login form may be drawn by one instance and sent to another: every instance
/// on the database signs it with the same key (kept sealed in the store), so the sign-in goes through.
#[tokio::test]
async fn a_login_form_drawn_by_one_instance_is_accepted_by_another() {
    let app = App::start().await;
    let other = pbi_server::Server::start(ServerConfig::default(), app.store.clone(), app.auth(), app.clock.clone()).await.expect("second");
    let (cookie, csrf) = app.login_form().await;
    let signed_in = app
        .http
        .post(format!("{}/login", other.base_url()))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("POST");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{:?}", signed_in.text().await);
    // The session is in the shared store: the first instance knows it too.
    let (status, _) = app.page(&session_cookie(&signed_in), "/settings").await;
    assert_eq!(status, StatusCode::OK);
}

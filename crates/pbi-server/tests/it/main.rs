//! The server over real HTTP: health, sign-in, sessions, CSRF and redirects.

use pbi_auth::{Auth, AuthSettings};
use pbi_crypto::KeyRing;
use pbi_server::{Server, ServerConfig, ServerHandle, users};
use pbi_store::Store;
use reqwest::StatusCode;
use secrecy::SecretString;
use std::sync::Arc;

mod admin_page;
mod api;
mod apps_page;
mod audit;
mod background;
mod connect;
mod connect_sessions;
mod definitions;
mod frame;
mod fuzz;
mod headers;
mod jobs_page;
mod keepalive;
mod observability;
mod proxy;
mod signin;
mod subscriptions;
mod workspaces;

struct App {
    server: ServerHandle,
    store: Store,
    http: reqwest::Client,
    db: std::path::PathBuf,
    clock: pbi_clock::Clock,
    auth: Arc<Auth>,
    /// The job engine the server runs (`App::start_working`): `None` for a server without background work.
    engine: Option<Arc<pbi_jobs::Engine>>,
}

impl Drop for App {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db.display()));
        }
    }
}

pub(crate) const PASSWORD: &str = "a long enough password";

impl App {
    async fn start() -> Self {
        Self::start_with_clock(pbi_clock::Clock::manual_from_now()).await
    }

    async fn start_with_clock(clock: pbi_clock::Clock) -> Self {
        Self::start_with(ServerConfig::default(), clock).await
    }

    /// A server with this configuration on a fresh SQLite database, with Alice, Bob and an administrator.
    async fn start_with(config: ServerConfig, clock: pbi_clock::Clock) -> Self {
        Self::start_full(config, clock, false).await
    }

    /// A server that runs the background jobs as `serve` does, on `clock`.
    async fn start_working(clock: pbi_clock::Clock) -> Self {
        Self::start_full(ServerConfig::default(), clock, true).await
    }

    async fn start_full(config: ServerConfig, clock: pbi_clock::Clock, working: bool) -> Self {
        let db = std::env::temp_dir().join(format!("pbi-server-{}.db", uuid::Uuid::new_v4()));
        let store = Store::connect(&format!("sqlite://{}", db.display()), KeyRing::parse(&KeyRing::new_key_line(1)).expect("keys"))
            .await
            .expect("store");
        let hash = users::hash_password(&SecretString::from(PASSWORD.to_owned())).expect("hash");
        store.add_user("alice", "Alice Johnson", &hash, false, clock.unix()).await.expect("user");
        store.add_user("bob", "Bob Smith", &hash, false, clock.unix()).await.expect("user");
        store.add_user("admin", "Contoso Admin", &hash, true, clock.unix()).await.expect("user");
        let auth = Arc::new(Auth::new(store.clone(), clock.clone(), AuthSettings::default()));
        let (server, engine) = if working {
            let engine =
                pbi_server::background::start(store.clone(), clock.clone(), auth.clone(), &Default::default()).await.expect("engine");
            (
                Server::start_with_jobs(config, store.clone(), auth.clone(), clock.clone(), engine.clone()).await.expect("server"),
                Some(engine),
            )
        } else {
            (Server::start(config, store.clone(), auth.clone(), clock.clone()).await.expect("server"), None)
        };
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { server, store, http, db, clock, auth, engine }
    }

    /// The job engine the server runs (for an `App::start_working`).
    fn engine(&self) -> Arc<pbi_jobs::Engine> {
        self.engine.clone().expect("a server started with App::start_working")
    }

    /// The server's token broker (what background work refreshes connections through).
    fn auth(&self) -> Arc<Auth> {
        self.auth.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    /// The login form's CSRF cookie and field.
    async fn login_form(&self) -> (String, String) {
        let response = self.http.get(self.url("/login")).send().await.expect("GET");
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .expect("csrf cookie")
            .to_owned();
        let page = response.text().await.expect("page");
        (cookie, hidden(&page, "csrf").expect("csrf field"))
    }

    /// Signs a pbi-bridge user in and returns their session cookie.
    async fn session(&self, username: &str) -> String {
        session_cookie(&self.sign_in(username, PASSWORD, "/").await)
    }

    async fn page(&self, cookie: &str, path: &str) -> (StatusCode, String) {
        let response = self.http.get(self.url(path)).header("cookie", cookie).send().await.expect("GET");
        (response.status(), response.text().await.expect("page"))
    }

    async fn sign_in(&self, username: &str, password: &str, next: &str) -> reqwest::Response {
        let (cookie, csrf) = self.login_form().await;
        self.http
            .post(self.url("/login"))
            .header("cookie", cookie)
            .form(&[("csrf", csrf.as_str()), ("username", username), ("password", password), ("next", next)])
            .send()
            .await
            .expect("POST")
    }
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pbi_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

#[tokio::test]
async fn health_and_readiness() {
    let app = App::start().await;
    assert_eq!(app.http.get(app.url("/healthz")).send().await.expect("GET").text().await.expect("body"), "ok");
    let ready: serde_json::Value = app.http.get(app.url("/readyz")).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_user_name_for_a_while() {
    let app = App::start().await;
    for _ in 0..10 {
        assert_eq!(app.sign_in("alice", "a wrong guess!!", "/").await.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = app.sign_in("alice", PASSWORD, "/").await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(locked.text().await.expect("page").contains("Too many failed sign-ins for this user name. Try again in 15 minute(s)"));
    assert_eq!(app.sign_in("bob", PASSWORD, "/").await.status(), StatusCode::SEE_OTHER, "other users are not affected");
    app.clock.advance(time::Duration::minutes(15)).expect("manual clock");
    assert_eq!(app.sign_in("alice", PASSWORD, "/").await.status(), StatusCode::SEE_OTHER, "the window passed");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = App::start().await;
    let alice = app.session("alice").await;
    for (path, cookie) in [("/login", ""), ("/settings", alice.as_str()), ("/api/v1/me", alice.as_str()), ("/nowhere", "")] {
        let response = app.http.get(app.url(path)).header("cookie", cookie).send().await.expect("GET");
        let headers = response.headers();
        for (name, value) in [
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{path}: {name}");
        }
    }
}

/// The API's description is kept in the repository, so that every change to the API shows in review.
/// `UPDATE_OPENAPI=1 cargo test -p pbi-server --test it openapi` writes it anew.
#[tokio::test]
async fn the_openapi_document_in_the_repository_is_the_one_served() {
    let app = App::start().await;
    let served: serde_json::Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.expect("GET").json().await.expect("JSON");
    let pretty = format!("{}\n", serde_json::to_string_pretty(&served).expect("JSON"));
    let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&kept, &pretty).expect("write docs/openapi.json");
    }
    let on_disk = std::fs::read_to_string(&kept).unwrap_or_default();
    assert!(
        on_disk == pretty,
        "docs/openapi.json is not what the server serves: run UPDATE_OPENAPI=1 cargo test -p pbi-server --test it openapi"
    );
    let page = app.http.get(app.url("/api/docs")).send().await.expect("GET").text().await.expect("page");
    for (path, item) in served["paths"].as_object().expect("paths") {
        for operation in item.as_object().expect("item").values() {
            let id = operation["operationId"].as_str().expect("id");
            assert!(page.contains(&format!(r#"id="{id}""#)) && page.contains(&format!("/api/v1{path}")), "/api/docs describes {id}");
        }
    }
}

#[tokio::test]
async fn signing_in_and_out() {
    let app = App::start().await;
    let anonymous = app.http.get(app.url("/")).send().await.expect("GET");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(anonymous.headers()["location"], "/login?next=/");

    let wrong = app.sign_in("alice", "wrong password!!", "/").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("page").contains("The user name or password is wrong."));
    let unknown = app.sign_in("mallory", PASSWORD, "/").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED, "unknown users get the same answer");

    let signed_in = app.sign_in("alice", PASSWORD, "/").await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let set_cookie = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pbi_session="))
        .expect("cookie")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && !set_cookie.contains("Secure"), "{set_cookie}");
    let cookie = session_cookie(&signed_in);
    let home = app.http.get(app.url("/")).header("cookie", &cookie).send().await.expect("GET").text().await.expect("page");
    assert!(home.contains("Alice Johnson") && home.contains("not connected a Power BI account yet"), "{home}");

    let token = cookie.trim_start_matches("pbi_session=");
    pbi_testlog::DatabaseFiles::read(&app.db).assert_lacks("session token", token);

    let csrf = hidden(&home, "csrf").expect("csrf");
    let forged = app.http.post(app.url("/logout")).header("cookie", &cookie).form(&[("csrf", "forged")]).send().await.expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "every form checks its CSRF token");
    let out = app.http.post(app.url("/logout")).header("cookie", &cookie).form(&[("csrf", csrf.as_str())]).send().await.expect("POST");
    assert_eq!((out.status(), out.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, "/login"));
    assert_eq!(
        app.http.get(app.url("/")).header("cookie", &cookie).send().await.expect("GET").status(),
        StatusCode::SEE_OTHER,
        "the session is gone"
    );
}

#[tokio::test]
async fn the_login_form_needs_its_csrf_cookie_and_redirects_only_to_own_paths() {
    let app = App::start().await;
    let (_, csrf) = app.login_form().await;
    let without_cookie = app
        .http
        .post(app.url("/login"))
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("POST");
    assert_eq!(without_cookie.status(), StatusCode::FORBIDDEN);
    for (next, expected) in [("/workspaces/3", "/workspaces/3"), ("//evil.example/steal", "/"), ("https://evil.example", "/")] {
        let response = app.sign_in("alice", PASSWORD, next).await;
        assert_eq!(response.headers()["location"], expected, "{next}");
    }
    let huge = "x".repeat(100 * 1024);
    let response =
        app.http.post(app.url("/login")).form(&[("csrf", "x"), ("username", huge.as_str()), ("password", "x")]).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

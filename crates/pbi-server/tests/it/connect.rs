//! My settings: Get started through the sandbox, the callback, status, and disconnect.

use crate::{App, hidden};
use pbi_sandbox::{Command, Sandbox, SandboxConfig, demo};
use pbi_store::NewRegistration;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

pub(crate) struct World {
    pub(crate) app: App,
    pub(crate) sandbox: pbi_sandbox::SandboxHandle,
}

/// The delegated permissions the test registration asks for (and its app is granted).
const SCOPES: &[&str] = &["Dashboard.Read.All", "Workspace.Read.All", "Dataset.Read.All"];

/// A sandbox, a server on the sandbox's clock, and a registration of an app whose redirect URI is the
/// server's own callback.
pub(crate) async fn world() -> World {
    world_with_scopes(SCOPES).await
}

/// `world`, with a registration that asks for (and an app granted) only `scopes`.
pub(crate) async fn world_with_scopes(scopes: &[&str]) -> World {
    world_of(scopes, false).await
}

/// `world`, with a server that runs the background jobs as `serve` does.
pub(crate) async fn working_world() -> World {
    world_of(SCOPES, true).await
}

/// `working_world`, with a registration that asks for (and an app granted) `scopes`.
pub(crate) async fn working_world_with_scopes(scopes: &[&str]) -> World {
    world_of(scopes, true).await
}

async fn world_of(scopes: &[&str], working: bool) -> World {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let app =
        if working { App::start_working(sandbox.clock().clone()).await } else { App::start_with_clock(sandbox.clock().clone()).await };
    let callback = app.url("/oauth/callback");
    let tenant = pbi_sandbox::demo_id("tenant:contoso");
    let created = sandbox
        .control(Command::CreateApp {
            client_id: None,
            tenant,
            display_name: "ERP".into(),
            multi_tenant: false,
            redirect_uris: vec![callback.clone()],
            delegated_permissions: scopes.iter().map(|s| (*s).to_owned()).collect(),
        })
        .expect("app");
    let client_id = created["clientId"].as_str().expect("client id").to_owned();
    let secret = sandbox
        .control(Command::AddSecret { client_id: client_id.parse().expect("uuid"), value: None, description: None, expires_in_days: 365 })
        .expect("secret")["value"]
        .as_str()
        .expect("value")
        .to_owned();
    let base = sandbox.base_url().to_owned();
    let now = app.clock.unix();
    let registration = app
        .store
        .add_registration(
            &NewRegistration {
                name: "erp".into(),
                client_id,
                tenant: demo::CONTOSO_DOMAIN.into(),
                cloud: "public".into(),
                redirect_urls: vec![callback],
                scopes: scopes.iter().copied().chain(["offline_access"]).map(str::to_owned).collect(),
                authorize_url: Some(format!("{base}/{}/oauth2/v2.0/authorize", demo::CONTOSO_DOMAIN)),
                token_url: Some(format!("{base}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN)),
                api_base: Some(base.clone()),
                enabled: true,
            },
            now,
        )
        .await
        .expect("registration");
    app.store.add_secret(registration.id, &SecretString::from(secret), now + 365 * 86_400, now).await.expect("secret");
    World { app, sandbox }
}

impl World {
    /// What a restart of the service (or a revoked token) leaves: a stored token for `connection` that has not
    /// expired by our clock, which Power BI refuses, and a fresh server (a restarted pbi-bridge) with nothing in
    /// memory, on the same store.
    pub(crate) async fn restarted_with_a_refused_token(&self, connection: uuid::Uuid) -> pbi_server::ServerHandle {
        let refused = pbi_store::Tokens {
            access: SecretString::from("not-a-token-power-bi-accepts".to_owned()),
            access_expires_at: self.app.clock.unix() + 3000,
            refresh: None,
            refresh_expires_at: None,
        };
        self.app.store.store_tokens(connection, &refused, self.app.clock.unix()).await.expect("stored");
        let auth =
            std::sync::Arc::new(pbi_auth::Auth::new(self.app.store.clone(), self.app.clock.clone(), pbi_auth::AuthSettings::default()));
        pbi_server::Server::start(pbi_server::ServerConfig::default(), self.app.store.clone(), auth, self.app.clock.clone())
            .await
            .expect("server")
    }

    /// Clicks Get started and walks the sandbox's sign-in and consent; returns Entra's redirect to the callback.
    pub(crate) async fn get_started(&self, cookie: &str, upn: &str) -> String {
        self.get_started_and(cookie, upn, "accept").await
    }

    /// Get started, sign in at Entra as `upn`, and answer the consent page with `decision` (`accept` or
    /// `cancel`); returns where Entra sends the browser back to.
    pub(crate) async fn get_started_and(&self, cookie: &str, upn: &str, decision: &str) -> String {
        self.get_started_at(cookie, upn, decision, None).await
    }

    /// `get_started_and`, with Get started clicked on pbi-bridge reached at `host` (its Host header).
    pub(crate) async fn get_started_at(&self, cookie: &str, upn: &str, decision: &str, host: Option<&str>) -> String {
        let (_, settings) = self.app.page(cookie, "/settings").await;
        let csrf = hidden(&settings, "csrf").expect("csrf");
        let mut click = self.app.http.post(self.app.url("/connect")).header("cookie", cookie);
        if let Some(host) = host {
            click = click.header("host", host);
        }
        let to_entra = click.form(&[("csrf", csrf.as_str()), ("reconsent", "false")]).send().await.expect("POST");
        assert_eq!(to_entra.status(), StatusCode::SEE_OTHER);
        let authorize = to_entra.headers()["location"].to_str().expect("ascii").to_owned();
        assert!(authorize.starts_with(self.sandbox.base_url()) && authorize.contains("code_challenge_method=S256"), "{authorize}");
        assert!(authorize.contains("prompt=select_account"), "the person picks the account, never a silent reuse: {authorize}");
        self.sign_in_at_entra(&authorize, upn, decision).await
    }

    /// Opens Entra's `authorize` URL, signs in as `upn` and answers the consent page with `decision`; returns
    /// where Entra sends the browser back to.
    pub(crate) async fn sign_in_at_entra(&self, authorize: &str, upn: &str, decision: &str) -> String {
        let page = self.app.http.get(authorize).send().await.expect("GET").text().await.expect("page");
        let base = self.sandbox.base_url();
        let password = format!("{}-password", upn.split('@').next().unwrap_or_default());
        let ctx = hidden(&page, "ctx").expect("sign-in form");
        let signed_in = self
            .app
            .http
            .post(format!("{base}/{}/login", demo::CONTOSO_DOMAIN))
            .form(&[("ctx", ctx.as_str()), ("login", upn), ("passwd", password.as_str())])
            .send()
            .await
            .expect("POST");
        if signed_in.status() == StatusCode::FOUND {
            // Consent was already given for this account and app: Entra goes straight back.
            return signed_in.headers()["location"].to_str().expect("ascii").to_owned();
        }
        let entra_cookie = signed_in.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("cookie").to_owned();
        let consent = signed_in.text().await.expect("consent page");
        let ctx = hidden(&consent, "ctx").expect("consent form");
        let accepted = self
            .app
            .http
            .post(format!("{base}/{}/consent", demo::CONTOSO_DOMAIN))
            .header("cookie", entra_cookie)
            .form(&[("ctx", ctx.as_str()), ("decision", decision)])
            .send()
            .await
            .expect("POST");
        accepted.headers()["location"].to_str().expect("ascii").to_owned()
    }
}

#[tokio::test]
async fn get_started_connects_the_users_own_power_bi_account() {
    let world = world().await;
    let alice = world.app.session("alice").await;
    let (_, before) = world.app.page(&alice, "/settings").await;
    assert!(before.contains(r#"id="get-started""#), "{before}");

    let back = world.get_started(&alice, "alice@contoso.onmicrosoft.com").await;
    assert!(back.starts_with(&world.app.url("/oauth/callback?code=")), "{back}");
    let landed = world.app.http.get(&back).header("cookie", &alice).send().await.expect("GET");
    assert_eq!((landed.status(), landed.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, "/settings"));
    let (_, after) = world.app.page(&alice, "/settings").await;
    assert!(after.contains("alice@contoso.onmicrosoft.com") && after.contains(r#"id="status">connected"#), "{after}");
    assert!(after.contains("Dashboard.Read.All"));

    // Bob sees none of it.
    let bob = world.app.session("bob").await;
    let (_, bobs) = world.app.page(&bob, "/settings").await;
    assert!(!bobs.contains("alice@contoso.onmicrosoft.com") && bobs.contains(r#"id="get-started""#));
}

#[tokio::test]
async fn a_callback_completes_only_in_the_session_that_started_it() {
    let world = world().await;
    let alice = world.app.session("alice").await;
    let back = world.get_started(&alice, "alice@contoso.onmicrosoft.com").await;
    let bob = world.app.session("bob").await;
    let stolen = world.app.http.get(&back).header("cookie", &bob).send().await.expect("GET");
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert!(stolen.text().await.expect("page").contains("another browser session"));
    assert!(world.app.store.all_connections().await.expect("list").is_empty(), "nobody got Alice's Power BI account");
}

#[tokio::test]
async fn declining_says_what_to_do_and_disconnect_deletes_the_tokens() {
    let world = world().await;
    let alice = world.app.session("alice").await;
    let declined = world.get_started_and(&alice, "alice@contoso.onmicrosoft.com", "cancel").await;
    assert!(declined.contains("error=access_denied"), "{declined}");
    let answer = world.app.http.get(&declined).header("cookie", &alice).send().await.expect("callback");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let told = answer.text().await.expect("page");
    assert!(told.contains("You declined the permissions") && told.contains("again and accept"), "{told}");
    assert!(told.contains(r#"id="get-started""#) && !told.contains(r#"id="status">connected"#), "nothing was connected: {told}");

    let back = world.get_started(&alice, "alice@contoso.onmicrosoft.com").await;
    world.app.http.get(&back).header("cookie", &alice).send().await.expect("connected");
    let (_, settings) = world.app.page(&alice, "/settings").await;
    let connection = hidden(&settings, "connection").expect("a connection");
    let csrf = hidden(&settings, "csrf").expect("csrf");
    let out = world
        .app
        .http
        .post(world.app.url("/disconnect"))
        .header("cookie", &alice)
        .form(&[("csrf", csrf.as_str()), ("connection", connection.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let (_, after) = world.app.page(&alice, "/settings").await;
    assert!(after.contains(r#"id="status">disconnected"#) && after.contains(r#"id="sign-in-again""#), "{after}");
    let (access, refresh) = world.app.store.connection_tokens(connection.parse().expect("uuid")).await.expect("tokens");
    assert!(access.is_none() && refresh.is_none());

    let bob = world.app.session("bob").await;
    let (_, bobs) = world.app.page(&bob, "/settings").await;
    let bob_csrf = hidden(&bobs, "csrf").expect("csrf");
    let foreign = world
        .app
        .http
        .post(world.app.url("/disconnect"))
        .header("cookie", &bob)
        .form(&[("csrf", bob_csrf.as_str()), ("connection", connection.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND, "Bob cannot touch Alice's connection");
}

#[tokio::test]
async fn a_token_power_bi_refuses_is_replaced_once_and_the_call_goes_through() {
    let world = world().await;
    let alice = world.app.session("alice").await;
    let back = world.get_started(&alice, "alice@contoso.onmicrosoft.com").await;
    world.app.http.get(&back).header("cookie", &alice).send().await.expect("connected");
    let user = world.app.store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice");
    let connection = world.app.store.connections_of(&user.as_owner()).await.expect("connections").remove(0);
    // What a restart of the service (or a revoked token) leaves: a stored token that has not expired by our
    // clock, which Power BI refuses. A fresh broker (a restarted pbi-bridge) has nothing in memory.
    let restarted = world.restarted_with_a_refused_token(connection.id).await;
    world.sandbox.clear_requests();

    let tiles = world.app.http.get(format!("{}/api/v1/tiles", restarted.base_url())).header("cookie", &alice).send().await.expect("GET");
    assert_eq!(tiles.status(), StatusCode::OK, "{}", tiles.text().await.unwrap_or_default());
    let log: Vec<(String, u16)> = world.sandbox.requests().iter().map(|r| (r.path.clone(), r.status)).collect();
    let refusals = log.iter().filter(|(_, status)| *status == 403).count();
    let refreshes = log.iter().filter(|(path, _)| path.ends_with("/oauth2/v2.0/token")).count();
    // Calls made at once may each be refused; the broker still refreshes once for all of them.
    assert!(refusals >= 1 && refreshes == 1, "refused, refreshed once, then the calls go through: {log:?}");
    let stored = world.app.store.connection_tokens(connection.id).await.expect("tokens").0.expect("access");
    assert_ne!(stored.expose_secret(), "not-a-token-power-bi-accepts", "the refused token was replaced in the store");
    restarted.shutdown().await.expect("stopped");
}

#[tokio::test]
async fn an_account_already_connected_for_another_user_is_refused_unless_an_admin_allows_it() {
    let world = world().await;
    let alice = world.app.session("alice").await;
    let back = world.get_started(&alice, "alice@contoso.onmicrosoft.com").await;
    world.app.http.get(&back).header("cookie", &alice).send().await.expect("Alice connected");

    // Bob, at the same computer, signs in to Microsoft as Alice.
    let bob = world.app.session("bob").await;
    let back = world.get_started(&bob, "alice@contoso.onmicrosoft.com").await;
    let answer = world.app.http.get(&back).header("cookie", &bob).send().await.expect("callback");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let told = answer.text().await.expect("page");
    assert!(told.contains("already connected for another pbi-bridge user") && told.contains("choose your own"), "{told}");
    let bob_id = world.app.store.users().await.expect("users").into_iter().find(|u| u.username == "bob").expect("bob").id;
    assert!(world.app.store.connections_of(&pbi_store::Owner::User(bob_id)).await.expect("list").is_empty(), "nothing was stored for Bob");

    // An administrator who wants one account shared allows it; Bob can then connect it.
    world.app.store.set_shared_accounts_allowed(true, &[], world.app.clock.unix()).await.expect("allowed");
    let back = world.get_started(&bob, "alice@contoso.onmicrosoft.com").await;
    let answer = world.app.http.get(&back).header("cookie", &bob).send().await.expect("callback");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "allowed now");
    assert_eq!(world.app.store.connections_of(&pbi_store::Owner::User(bob_id)).await.expect("list").len(), 1);
}

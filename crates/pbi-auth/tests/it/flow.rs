//! The consent flow: hop by hop, and every way it can go wrong.

use crate::support::*;
use pbi_auth::{AuthError, StartOptions};
use pbi_sandbox::demo_id;
use secrecy::{ExposeSecret, SecretString};

#[tokio::test]
async fn a_user_consents_once_and_the_connection_records_their_account() {
    let env = Env::start().await;
    let url = env
        .auth
        .start_authorization(
            env.registration.id,
            &owner("user-1"),
            "session-1",
            "/workspaces/7",
            &StartOptions { login_hint: Some("alice@contoso.onmicrosoft.com".into()), ..Default::default() },
        )
        .await
        .expect("start");
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("code_challenge").map(|c| c.len()), Some(43));
    assert!(param("scope").expect("scope").contains("offline_access https://analysis.windows.net/powerbi/api/Content.Create"));
    let callback = env.browse(&url, "alice@contoso.onmicrosoft.com", "accept").await;
    let completed = env.auth.complete_authorization("session-1", &callback, None).await.expect("completed");
    assert_eq!(completed.return_to, "/workspaces/7");
    let account = &completed.connection.account;
    assert_eq!(
        (account.owner, account.upn.as_str(), account.tenant_id.clone()),
        (owner("user-1"), "alice@contoso.onmicrosoft.com", demo_id("tenant:contoso").to_string())
    );
    assert!(completed.connection.scopes.contains(&"Dashboard.Read.All".to_owned()));

    let token = env.auth.access_token(completed.connection.id, Some(&owner("user-1"))).await.expect("a token");
    let groups: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1.0/myorg/groups", env.sandbox.base_url()))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(groups["value"][1]["name"], "Sales Analytics", "the token acts as Alice");
    let code_redemptions: Vec<_> = env.token_requests().into_iter().filter(|r| r.status == 200).collect();
    assert_eq!(code_redemptions.len(), 1, "the PKCE verifier was accepted (the sandbox refuses a code without it)");
}

#[tokio::test]
async fn the_state_is_single_use_short_lived_and_bound_to_the_browser_session() {
    let env = Env::start().await;
    let url = env
        .auth
        .start_authorization(env.registration.id, &owner("user-1"), "session-1", "/", &StartOptions::default())
        .await
        .expect("start");
    let callback = env.browse(&url, "alice@contoso.onmicrosoft.com", "accept").await;
    let stolen = env.auth.complete_authorization("session-of-an-attacker", &callback, None).await;
    assert!(matches!(stolen, Err(AuthError::InvalidState(ref why)) if why.contains("another browser session")), "{:?}", stolen.err());
    // The attempt from the wrong browser did not burn the user's pending sign-in: it still completes, once.
    env.auth.complete_authorization("session-1", &callback, None).await.expect("the user's own browser completes it");
    let replay = env.auth.complete_authorization("session-1", &callback, None).await;
    assert!(matches!(replay, Err(AuthError::InvalidState(ref why)) if why.contains("already used")), "{:?}", replay.err());
    let connected = env.store.all_connections().await.expect("list").len();

    let url = env
        .auth
        .start_authorization(env.registration.id, &owner("user-1"), "session-1", "/", &StartOptions::default())
        .await
        .expect("start");
    let callback = env.browse(&url, "alice@contoso.onmicrosoft.com", "accept").await;
    env.sandbox.clock().advance(time::Duration::minutes(11)).expect("manual clock");
    let late = env.auth.complete_authorization("session-1", &callback, None).await;
    assert!(matches!(late, Err(AuthError::InvalidState(ref why)) if why.contains("expired")), "{:?}", late.err());
    assert_eq!(env.store.all_connections().await.expect("list").len(), connected, "nothing more was connected");
}

#[tokio::test]
async fn a_user_who_declines_is_told_what_to_do() {
    let env = Env::start().await;
    let url = env.auth.start_authorization(env.registration.id, &owner("user-2"), "s", "/", &StartOptions::default()).await.expect("start");
    let callback = env.browse(&url, "bob@contoso.onmicrosoft.com", "cancel").await;
    let Err(AuthError::Refused(explained)) = env.auth.complete_authorization("s", &callback, None).await else { panic!("refused") };
    assert_eq!(explained.code.as_deref(), Some("AADSTS65004"));
    assert!(explained.what_to_do.contains("Get started"), "{explained}");
}

#[tokio::test]
async fn when_users_may_not_consent_the_message_says_an_administrator_must() {
    let env = Env::start().await;
    let tenant = demo_id("tenant:contoso");
    env.sandbox.update_tenant_settings(tenant, |s| s.users_can_consent = false).expect("contoso");
    let url = env.auth.start_authorization(env.registration.id, &owner("user-2"), "s", "/", &StartOptions::default()).await.expect("start");
    let callback = env.browse(&url, "bob@contoso.onmicrosoft.com", "return").await;
    let Err(AuthError::Refused(explained)) = env.auth.complete_authorization("s", &callback, None).await else { panic!("refused") };
    assert!(explained.what_happened.starts_with("Error when authorizing Power BI"), "{explained}");
    assert!(explained.what_to_do.contains("Users can consent to apps accessing company data on their behalf"));
}

#[tokio::test]
async fn a_wrong_secret_and_an_expired_secret_say_what_to_fix() {
    let env = Env::start().await;
    let now = env.sandbox.clock().unix();
    env.store
        .add_secret(env.registration.id, &SecretString::from("the-secret-id-not-its-value".to_owned()), now + 400 * 86_400, now)
        .await
        .expect("a wrong secret, newest");
    let url = env.auth.start_authorization(env.registration.id, &owner("user-1"), "s", "/", &StartOptions::default()).await.expect("start");
    let callback = env.browse(&url, "alice@contoso.onmicrosoft.com", "accept").await;
    let Err(AuthError::Refused(explained)) = env.auth.complete_authorization("s", &callback, None).await else { panic!("refused") };
    assert_eq!(explained.code.as_deref(), Some("AADSTS7000215"));
    assert!(explained.what_happened.contains("The authentication process was not successful"), "{explained}");
    assert!(!explained.to_string().contains("the-secret-id-not-its-value"), "never echoes the secret");

    // A registration whose only secret expires in a minute: the sign-in outlives it.
    let now = env.sandbox.clock().unix();
    let mut details = env.registration.details.clone();
    details.name = "erp-short-secret".into();
    let short = env.store.add_registration(&details, now).await.expect("registration");
    env.store.add_secret(short.id, &SecretString::from(pbi_sandbox::demo::APP_SECRET.to_owned()), now + 60, now).await.expect("secret");
    let url = env.auth.start_authorization(short.id, &owner("user-1"), "s2", "/", &StartOptions::default()).await.expect("start");
    let callback = env.browse(&url, "alice@contoso.onmicrosoft.com", "accept").await;
    env.sandbox.clock().advance(time::Duration::minutes(2)).expect("manual clock");
    let error = env.auth.complete_authorization("s2", &callback, None).await.expect_err("the secret expired");
    let expected_date = time::OffsetDateTime::from_unix_timestamp(now + 60).expect("time").date().to_string();
    assert!(matches!(error, AuthError::SecretExpired { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "the client secret expired on {expected_date}: create a new one in Certificates & secrets and update the registration 'erp-short-secret'"
        )
    );
}

#[tokio::test]
async fn a_redirect_url_the_app_does_not_know_stops_at_entras_error_page() {
    let env = Env::start().await;
    let mut details = env.registration.details.clone();
    details.name = "wrong-redirect".into();
    details.redirect_urls = vec!["https://erp.example/not-registered".into()];
    let registration = env.store.add_registration(&details, 0).await.expect("registration");
    env.store
        .add_secret(registration.id, &SecretString::from(pbi_sandbox::demo::APP_SECRET.to_owned()), i64::MAX / 2, 0)
        .await
        .expect("secret");
    let url = env.auth.start_authorization(registration.id, &owner("user-1"), "s", "/", &StartOptions::default()).await.expect("start");
    let response =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client").get(url).send().await.expect("GET");
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none(), "Entra never redirects to an unknown URL");
    assert!(response.text().await.expect("page").contains("AADSTS50011"));
    let explained = pbi_auth::explain::entra(
        Some(50011),
        "invalid_request",
        "",
        None,
        &pbi_auth::explain::Context { redirect_url: Some("https://erp.example/not-registered".into()), ..Default::default() },
    );
    assert!(explained.what_to_do.contains("Add https://erp.example/not-registered to the app's Redirect URIs"), "{explained}");
}

#[tokio::test]
async fn removing_a_registration_keeps_its_connections_and_they_say_why_they_stopped() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    env.store.remove_registration(env.registration.id, env.sandbox.clock().unix()).await.expect("removed");
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    let error = env.auth.access_token(connection.id, None).await.expect_err("stopped");
    assert!(matches!(error, AuthError::RegistrationRemoved { .. }), "{error}");
    assert!(error.to_string().contains("was removed (unregistered)") && error.to_string().contains("no longer work"), "{error}");
    assert_eq!(env.store.connection(connection.id).await.expect("kept").account.upn, "alice@contoso.onmicrosoft.com");
    let new_sign_in = env.auth.start_authorization(env.registration.id, &owner("user-1"), "s", "/", &StartOptions::default()).await;
    assert!(matches!(new_sign_in, Err(AuthError::RegistrationRemoved { .. })));
}

#[tokio::test]
async fn a_sign_in_returns_to_the_host_it_started_on_through_that_hosts_redirect_url() {
    let env = Env::start().await;
    let mut details = env.registration.details.clone();
    details.redirect_urls.push("http://localhost:8080/oauth/callback".into());
    env.store.update_registration(env.registration.id, &details, env.sandbox.clock().unix()).await.expect("a second redirect URL");
    let on_localhost = StartOptions { host: Some("localhost:8080".into()), ..Default::default() };
    let (env, on_localhost) = (&env, &on_localhost);
    let sign_in = |session: &'static str| async move {
        let url = env.auth.start_authorization(env.registration.id, &owner("user-1"), session, "/", on_localhost).await.expect("start");
        let sent = url.query_pairs().find(|(k, _)| k == "redirect_uri").map(|(_, v)| v.into_owned());
        (sent, env.browse(&url, "alice@contoso.onmicrosoft.com", "accept").await)
    };
    let (sent, callback) = sign_in("s1").await;
    assert_eq!(sent.as_deref(), Some("http://localhost:8080/oauth/callback"));
    env.auth.complete_authorization("s1", &callback, Some("localhost:8080")).await.expect("redeemed with the same redirect URL");
    // Redeemed as if the callback had come to another host: Entra refuses a redirect URL other than the code's.
    let (_, callback) = sign_in("s2").await;
    let Err(AuthError::Refused(explained)) = env.auth.complete_authorization("s2", &callback, None).await else { panic!("refused") };
    assert_eq!(explained.code.as_deref(), Some("AADSTS500112"), "{explained}");
}

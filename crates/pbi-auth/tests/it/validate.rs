//! Registration validation and service principals.

use crate::support::*;
use pbi_auth::{Outcome, explain};
use pbi_powerbi::{Cloud, ErrorKind, PowerBiClient, RetryPolicy};
use pbi_sandbox::demo_id;
use secrecy::SecretString;
use std::sync::Arc;

fn outcome(validation: &pbi_auth::Validation, name: &str) -> Vec<(Outcome, String)> {
    validation.checks.iter().filter(|c| c.name == name).map(|c| (c.outcome, c.message.clone())).collect()
}

#[tokio::test]
async fn a_good_registration_passes_with_a_real_token_request() {
    let env = Env::start().await;
    let callback = env.registration.details.redirect_urls[0].clone();
    let validation = env.auth.validate(env.registration.id, Some(&callback)).await.expect("validated");
    assert!(validation.passed(), "{validation:#?}");
    assert_eq!(outcome(&validation, "credentials")[0].0, Outcome::Passed);
    assert_eq!(outcome(&validation, "consent")[0].0, Outcome::Info, "what cannot be proven is said");
    assert_eq!(env.token_requests().iter().filter(|r| r.status == 200).count(), 1, "the credentials were really tried");
    assert_eq!(outcome(&validation, "scopes")[0].0, Outcome::Passed);

    // Without offline_access no connection could stay signed in: said, with what to do.
    let mut details = env.registration.details.clone();
    details.scopes.retain(|s| s != "offline_access");
    env.store.update_registration(env.registration.id, &details, env.sandbox.clock().unix()).await.expect("saved");
    let validation = env.auth.validate(env.registration.id, Some(&callback)).await.expect("validated");
    let scopes = &outcome(&validation, "scopes")[0];
    assert!(!validation.passed() && scopes.0 == Outcome::Failed, "{validation:#?}");
    assert!(scopes.1.contains("leave out offline_access") && scopes.1.contains("--scope offline_access"), "{}", scopes.1);
}

#[tokio::test]
async fn wrong_secrets_expiring_secrets_and_bad_redirects_are_caught() {
    let env = Env::start().await;
    let now = env.sandbox.clock().unix();
    env.store
        .add_secret(env.registration.id, &SecretString::from("not-the-value".to_owned()), now + 10 * 86_400 + 3600, now)
        .await
        .expect("secret");
    let callback = env.registration.details.redirect_urls[0].clone();
    let validation = env.auth.validate(env.registration.id, Some(&callback)).await.expect("validated");
    // The key entered last is the key in use, though it expires before the first: Entra refuses it.
    let secret = &outcome(&validation, "client secret")[0];
    assert_eq!(secret.0, Outcome::Warning, "the key in use expires in 10 days: {secret:?}");
    let credentials = &outcome(&validation, "credentials")[0];
    assert_eq!(credentials.0, Outcome::Failed, "{validation:#?}");
    assert!(credentials.1.contains("AADSTS7000215") && !credentials.1.contains("not-the-value"), "{}", credentials.1);

    let env = Env::start().await;
    let mut details = env.registration.details.clone();
    details.name = "short".into();
    details.redirect_urls = vec!["http://erp.example/cb".into()];
    let short = env.store.add_registration(&details, now).await.expect("registration");
    env.store
        .add_secret(short.id, &SecretString::from("not-the-value".to_owned()), env.sandbox.clock().unix() + 10 * 86_400 + 3600, 0)
        .await
        .expect("secret");
    let validation = env.auth.validate(short.id, Some("https://erp.example/oauth/callback")).await.expect("validated");
    let secret = &outcome(&validation, "client secret")[0];
    assert_eq!(secret.0, Outcome::Warning);
    assert!(secret.1.contains("in 10 days"), "{}", secret.1);
    let credentials = &outcome(&validation, "credentials")[0];
    assert_eq!(credentials.0, Outcome::Failed);
    assert!(credentials.1.contains("AADSTS7000215") && !credentials.1.contains("not-the-value"), "{}", credentials.1);
    let redirects = outcome(&validation, "redirect URL");
    assert!(redirects.iter().any(|(o, m)| *o == Outcome::Failed && m.contains("must use https")), "{redirects:?}");
    assert!(
        redirects.iter().any(|(o, m)| *o == Outcome::Failed && m.contains("callback https://erp.example/oauth/callback is not among")),
        "{redirects:?}"
    );
}

#[tokio::test]
async fn a_service_principal_calls_power_bi_and_tenant_settings_are_explained() {
    let env = Env::start().await;
    let now = env.sandbox.clock().unix();
    let mut details = env.registration.details.clone();
    details.name = "catalog".into();
    details.client_id = pbi_sandbox::demo_automation_client_id().to_string();
    let registration = env.store.add_registration(&details, now).await.expect("registration");
    env.store
        .add_secret(registration.id, &SecretString::from(pbi_sandbox::demo::AUTOMATION_SECRET.to_owned()), now + 86_400 * 365, now)
        .await
        .expect("secret");
    let source = env.auth.service_principal(registration.id).await.expect("source");
    let client = PowerBiClient::new(&Cloud::custom(url::Url::parse(env.sandbox.base_url()).expect("url")), Arc::new(source))
        .with_retry(RetryPolicy::none());
    let groups = client.groups(None, Default::default()).await.expect("allowed by the tenant settings");
    assert_eq!(groups[0].name, "Sales Analytics");

    env.sandbox.update_tenant_settings(demo_id("tenant:contoso"), |s| s.service_principals_enabled = false).expect("contoso");
    let refused = client.groups(None, Default::default()).await.expect_err("refused");
    let ErrorKind::Unauthorized { code, message } = &refused.kind else { panic!("{refused}") };
    let explained = explain::power_bi(401, code, message, refused.request_id.clone());
    assert!(
        explained.what_happened.starts_with("You can't access the application") && explained.what_to_do.contains("tenant settings"),
        "{explained}"
    );
    assert!(explained.trace_id.is_some(), "the RequestId is kept for support");
}

//! The token broker: refresh ahead of expiry, one refresh for many callers, sign-in needed, outages, secrets.

use crate::support::*;
use pbi_auth::{AuthError, AuthSettings};
use pbi_sandbox::{FaultKind, FaultRule};
use pbi_store::ConnectionStatus;
use secrecy::ExposeSecret;

#[tokio::test]
async fn tokens_are_served_from_memory_and_refreshed_ahead_of_expiry() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    let first = env.auth.access_token(connection.id, Some(&owner("alice@contoso.onmicrosoft.com"))).await.expect("token");
    let again = env.auth.access_token(connection.id, None).await.expect("token");
    assert!(first.expose_secret() == again.expose_secret(), "the cached token");
    assert_eq!(env.token_requests().len(), 1, "only the code redemption so far");

    let expires = env.store.connection(connection.id).await.expect("read").access_expires_at.expect("expiry");
    let until_refresh = expires - env.sandbox.clock().unix() - 299;
    env.sandbox.clock().advance(time::Duration::seconds(until_refresh)).expect("manual clock");
    let refreshed = env.auth.access_token(connection.id, None).await.expect("refreshed");
    assert!(refreshed.expose_secret() != first.expose_secret(), "renewed 5 minutes before expiry");
    assert_eq!(env.token_requests().len(), 2);
    let stored = env.store.connection(connection.id).await.expect("read");
    assert_eq!((stored.status, stored.last_refresh_at), (ConnectionStatus::Active, Some(env.sandbox.clock().unix())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_callers_on_an_expired_token_cause_exactly_one_refresh() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    env.sandbox.clear_requests();
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let auth = env.auth.clone();
            tokio::spawn(async move { auth.access_token(connection.id, None).await.map(|t| t.expose_secret().to_owned()) })
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for caller in callers {
        tokens.insert(caller.await.expect("task").expect("a token"));
    }
    assert_eq!(tokens.len(), 1, "everyone got the same fresh token");
    assert_eq!(env.token_requests().len(), 1, "exactly one token request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_the_store_refresh_once() {
    two_instances_refresh_once(Env::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgresql_refresh_once() {
    let db = PostgresDb::new().await;
    two_instances_refresh_once(Env::start_on(db.url().to_owned(), std::env::temp_dir().join("unused")).await).await;
}

async fn two_instances_refresh_once(env: Env) {
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    let other = env.another_instance();
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    env.sandbox.clear_requests();
    let (a, b) = (env.auth.clone(), other.clone());
    let mut first = tokio::spawn(async move { a.access_token(connection.id, None).await });
    let mut second = tokio::spawn(async move { b.access_token(connection.id, None).await });
    // Whichever took the lease refreshes; the other is then waiting on the lease clock (it can finish
    // without a move only by taking the lease after the first released it, and then finds its token).
    let (done, waiting) = tokio::select! {
        done = &mut first => (done, second),
        done = &mut second => (done, first),
    };
    let done = done.expect("task").expect("token");
    env.lease_clock.advance(time::Duration::milliseconds(250)).expect("manual clock");
    let waited = waiting.await.expect("task").expect("token");
    assert!(done.expose_secret() == waited.expose_secret(), "both instances hand out the same token");
    assert_eq!(env.token_requests().len(), 1, "the store's lease kept the second instance from refreshing too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_died_mid_refresh_blocks_the_others_for_at_most_the_lease() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    // What `kill -9` during a refresh leaves: the dead instance's lease in the row, written a day ahead of
    // where the domain clock now stands (a shifted clock, as `pbi-bridge up` runs, starts over on restart).
    env.lease_clock.advance(time::Duration::days(1)).expect("manual clock");
    let lease = AuthSettings::default().lease_seconds;
    let now = env.lease_clock.unix();
    assert!(env.store.try_lease_refresh(connection.id, "a-killed-instance", now + lease, now).await.expect("lease"));
    env.sandbox.clear_requests();
    let auth = env.auth.clone();
    let waiting = tokio::spawn(async move { auth.access_token(connection.id, None).await });
    // Once the lease's length has passed on the lease clock, the refresh goes ahead; the status is right.
    env.lease_clock.advance(time::Duration::seconds(lease)).expect("manual clock");
    // Not a timed assertion: a guard so that a lease that never ends fails the test instead of hanging it.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), waiting).await.expect("the dead instance's lease ended");
    waited.expect("task").expect("a token after at most the lease's length");
    assert_eq!(env.token_requests().len(), 1, "one refresh, by the living instance");
    let stored = env.store.connection(connection.id).await.expect("read");
    assert_eq!(stored.status, ConnectionStatus::Active);
    assert!(lease <= 15, "a lease lasts seconds, not the token's lifetime: {lease}");
}

#[tokio::test]
async fn after_90_idle_days_the_user_must_sign_in_again_and_it_is_not_retried() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    env.sandbox.clock().advance(time::Duration::days(91)).expect("manual clock");
    let error = env.auth.access_token(connection.id, None).await.expect_err("expired");
    let AuthError::NeedsSignIn { reason, .. } = &error else { panic!("{error}") };
    assert!(reason.contains("expired after 90 days without use") && reason.contains("AADSTS700082"), "{reason}");
    let stored = env.store.connection(connection.id).await.expect("read");
    assert_eq!(stored.status, ConnectionStatus::NeedsSignIn);
    let before = env.token_requests().len();
    assert!(matches!(env.auth.access_token(connection.id, None).await, Err(AuthError::NeedsSignIn { .. })));
    assert_eq!(env.token_requests().len(), before, "a dead grant is never retried");
    // Signing in again revives the same connection.
    let again = env.connect("alice@contoso.onmicrosoft.com").await;
    assert_eq!((again.id, again.status), (connection.id, ConnectionStatus::Active));
}

#[tokio::test]
async fn a_revoked_grant_needs_sign_in() {
    let env = Env::start().await;
    let connection = env.connect("bob@contoso.onmicrosoft.com").await;
    env.sandbox
        .control(pbi_sandbox::Command::RevokeGrants { user: pbi_sandbox::demo_id("user:bob@contoso.onmicrosoft.com"), client_id: None })
        .expect("revoked");
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    let error = env.auth.access_token(connection.id, None).await.expect_err("revoked");
    assert!(matches!(&error, AuthError::NeedsSignIn { reason, .. } if reason.contains("revoked")), "{error}");
}

#[tokio::test]
async fn outages_are_retried_and_never_mark_the_connection() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    env.sandbox.inject(FaultRule::new(Some("POST"), "*/oauth2/v2.0/token", 2, FaultKind::Status { status: 503, retry_after: None }));
    env.auth.access_token(connection.id, None).await.expect("third attempt works");
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    env.sandbox.inject(FaultRule::new(Some("POST"), "*/oauth2/v2.0/token", 5, FaultKind::Drop));
    let error = env.auth.access_token(connection.id, None).await.expect_err("still down");
    assert!(matches!(error, AuthError::Unavailable(_)), "{error}");
    let stored = env.store.connection(connection.id).await.expect("read");
    assert_eq!(stored.status, ConnectionStatus::Active, "an outage is not the user's problem");
    assert!(stored.last_error.is_some());
}

#[tokio::test]
async fn a_user_cannot_use_or_see_another_users_connection() {
    let env = Env::start().await;
    let alices = env.connect("alice@contoso.onmicrosoft.com").await;
    let _ = env.auth.access_token(alices.id, Some(&owner("alice@contoso.onmicrosoft.com"))).await.expect("hers");
    for attempt in [
        env.auth.access_token(alices.id, Some(&owner("bob@contoso.onmicrosoft.com"))).await.err(),
        env.auth.disconnect(alices.id, Some(&owner("bob@contoso.onmicrosoft.com"))).await.err(),
    ] {
        assert!(matches!(attempt, Some(AuthError::NotFound(_))), "{attempt:?}");
    }
    env.auth.disconnect(alices.id, Some(&owner("alice@contoso.onmicrosoft.com"))).await.expect("her own");
    assert!(matches!(env.auth.access_token(alices.id, None).await, Err(AuthError::NeedsSignIn { .. })));
}

#[tokio::test]
async fn no_token_or_secret_is_in_the_logs_or_the_database_file() {
    let logs = pbi_testlog::capture();
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    let first = env.auth.access_token(connection.id, None).await.expect("token");
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    let second = env.auth.access_token(connection.id, None).await.expect("refreshed");
    let (_, refresh) = env.store.connection_tokens(connection.id).await.expect("tokens");
    env.store.close().await;
    let files = pbi_testlog::DatabaseFiles::read(&env.db_path);
    let refresh = refresh.expect("a refresh token");
    assert!(logs.text().contains("refreshed a Power BI token"), "the run was logged at all levels");
    logs.assert_heard_from(&["pbi_auth", "pbi_store", "sqlx"]);
    for (what, secret) in [
        ("first access token", first.expose_secret()),
        ("refreshed access token", second.expose_secret()),
        ("refresh token", refresh.expose_secret()),
        ("client secret", pbi_sandbox::demo::APP_SECRET),
    ] {
        files.assert_lacks(what, secret);
        logs.assert_lacks(what, secret);
    }
}

#[tokio::test]
async fn a_connection_another_instance_disconnected_stops_being_served_within_the_recheck() {
    let env = Env::start().await;
    let connection = env.connect("alice@contoso.onmicrosoft.com").await;
    let here = env.auth.clone();
    let there = env.another_instance();
    here.access_token(connection.id, None).await.expect("served, and now in this instance's memory");
    there.disconnect(connection.id, None).await.expect("disconnected on the other instance");
    // From memory until the recheck is due: a Power BI call made then still goes out with the old token.
    assert!(here.access_token(connection.id, None).await.is_ok());
    env.sandbox.clock().advance(time::Duration::seconds(pbi_auth::HOT_RECHECK_SECONDS)).expect("manual clock");
    let refused = here.access_token(connection.id, None).await.expect_err("the store says it is disconnected");
    assert!(matches!(refused, AuthError::NeedsSignIn { ref reason, .. } if reason.contains("disconnected")), "{refused}");
}

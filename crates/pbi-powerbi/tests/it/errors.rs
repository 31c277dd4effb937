//! Every error kind, token refresh on TokenExpired, Retry-After honoured, 503 retried, the total-wait cap.

use crate::support::*;
use pbi_powerbi::{ErrorKind, RawRequest, RetryPolicy, Workspace};
use pbi_sandbox::{FaultKind, FaultRule, demo_id};
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_succeeds() {
    let env = Env::start().await;
    // The source believes its cached token is good (it reads a clock that does not move) while the
    // sandbox's clock says it expired: the API's 403 TokenExpired must trigger one fresh token.
    let source = env.app_tokens(pbi_clock::Clock::manual_from_now());
    let client = env.client(Arc::new(source), RetryPolicy::none());
    client.groups(None, Default::default()).await.expect("first call");
    env.sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    env.sandbox.clear_requests();
    let groups = client.groups(None, Default::default()).await.expect("refreshed and retried");
    assert_eq!(groups[0].name, "Sales Analytics");
    let log: Vec<(String, u16)> = env.sandbox.requests().iter().map(|r| (r.path.clone(), r.status)).collect();
    assert_eq!(
        log,
        [
            ("/v1.0/myorg/groups".to_owned(), 403),
            ("/contoso.onmicrosoft.com/oauth2/v2.0/token".to_owned(), 200),
            ("/v1.0/myorg/groups".to_owned(), 200)
        ]
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_the_log_proves_the_wait() {
    let env = Env::start().await;
    let client = env.app_client(fixed_retry(5));
    env.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/groups", 2, FaultKind::Throttle { retry_after: 30 }));
    client.groups(None, Default::default()).await.expect("succeeds after two throttles");
    let calls = env.calls_to("/v1.0/myorg/groups");
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [429, 429, 200]);
    assert_eq!(calls[1].at - calls[0].at, time::Duration::seconds(30), "waited Retry-After before the second try");
    assert_eq!(calls[2].at - calls[1].at, time::Duration::seconds(30));
    assert_eq!(*env.sleep.waits.lock().expect("lock"), [Duration::from_secs(30); 2]);
}

#[tokio::test]
async fn service_unavailable_is_retried_with_backoff() {
    let env = Env::start().await;
    let backoff = pbi_powerbi::Backoff::Exponential { base: Duration::from_secs(1), max: Duration::from_secs(30), jitter: false };
    let client = env.app_client(RetryPolicy { backoff, ..fixed_retry(4) });
    env.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 3, FaultKind::Status { status: 503, retry_after: None }));
    client.groups(None, Default::default()).await.expect("fourth time lucky");
    let calls = env.calls_to("/v1.0/myorg/groups");
    assert_eq!(calls.iter().map(|c| c.status).collect::<Vec<_>>(), [503, 503, 503, 200]);
    assert_eq!(*env.sleep.waits.lock().expect("lock"), [1, 2, 4].map(Duration::from_secs), "each wait doubles");
    let gaps: Vec<i64> = calls.windows(2).map(|pair| (pair[1].at - pair[0].at).whole_seconds()).collect();
    assert_eq!(gaps, [1, 2, 4], "the sandbox saw the tries that far apart");
    let env = Env::start().await;
    env.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 5, FaultKind::Status { status: 503, retry_after: None }));
    let error = env.app_client(fixed_retry(2)).groups(None, Default::default()).await.expect_err("gives up");
    assert!(matches!(error.kind, ErrorKind::Service { status: 503, .. }), "{error}");
    assert!(error.request_id.is_some(), "every error carries the RequestId");
    assert_eq!(env.calls_to("/v1.0/myorg/groups").len(), 3, "one try and two retries");
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_returned_for_the_caller_to_park() {
    let env = Env::start().await;
    env.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 1, FaultKind::Throttle { retry_after: 3600 }));
    let error = env.app_client(fixed_retry(5)).groups(None, Default::default()).await.expect_err("too long to wait");
    assert!(matches!(error.kind, ErrorKind::Throttled { retry_after } if retry_after == Duration::from_secs(3600)), "{error}");
    assert!(env.sleep.waits.lock().expect("lock").is_empty(), "no task held asleep");
}

#[tokio::test]
async fn each_error_kind_is_told_apart() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let missing = client.dashboard(Workspace::Group(demo_id("ws:sales")), uuid::Uuid::new_v4()).await.expect_err("unknown id");
    assert!(matches!(&missing.kind, ErrorKind::NotFound { code, .. } if code == "PowerBIEntityNotFound"), "{missing}");
    let unauthorized = client.datasets(Workspace::My).await.expect_err("no My workspace for service principals");
    assert!(
        matches!(&unauthorized.kind, ErrorKind::Unauthorized { code, .. } if code == "PowerBINotAuthorizedException"),
        "{unauthorized}"
    );
    let forbidden = env.static_client("not-a-token").groups(None, Default::default()).await.expect_err("garbled token");
    assert!(
        matches!(&forbidden.kind, ErrorKind::Forbidden { code, .. } if code == "InvalidToken"),
        "the code comes from X-PowerBI-Error-Info: {forbidden}"
    );
    let mut raw = RawRequest::new(Method::POST, "myorg/groups");
    raw.json = Some(serde_json::json!({"nom": "x"}));
    let bad = client.raw(&raw).await.expect_err("unknown field");
    assert!(matches!(&bad.kind, ErrorKind::BadRequest { status: 400, .. }), "{bad}");

    env.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 1, FaultKind::Drop));
    let dropped = client.groups(None, Default::default()).await.expect_err("dropped");
    assert!(matches!(dropped.kind, ErrorKind::Transport(_)), "{dropped}");
    env.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 1, FaultKind::InvalidBody));
    let garbled = client.groups(None, Default::default()).await.expect_err("not JSON");
    assert!(matches!(&garbled.kind, ErrorKind::Decode { raw, .. } if raw.contains("not json")), "the raw body is kept: {garbled}");
    let refused = pbi_powerbi::PowerBiClient::new(
        &pbi_powerbi::Cloud::custom(url::Url::parse("http://127.0.0.1:9").expect("url")),
        Arc::new(pbi_powerbi::StaticToken(pbi_powerbi::AccessToken::new("x"))),
    )
    .with_retry(RetryPolicy::none())
    .groups(None, Default::default())
    .await
    .expect_err("nothing listens on port 9");
    assert!(matches!(refused.kind, ErrorKind::Transport(_)), "{refused}");
}

#[tokio::test]
async fn a_wrong_secret_is_a_token_error_with_entras_message() {
    let env = Env::start().await;
    let authority = env.base().join(pbi_sandbox::demo::CONTOSO_DOMAIN).expect("authority");
    let source = pbi_powerbi::ClientCredentials::new(
        reqwest::Client::new(),
        &authority,
        pbi_sandbox::demo_automation_client_id().to_string(),
        pbi_powerbi::ClientSecret::new("wrong"),
        env.cloud().resource(),
    )
    .expect("source");
    let error = env.client(Arc::new(source), RetryPolicy::none()).groups(None, Default::default()).await.expect_err("refused");
    let ErrorKind::Token(message) = &error.kind else { panic!("{error}") };
    assert!(message.contains("AADSTS7000215") && !message.contains("wrong"), "names the code, never echoes the secret: {message}");
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_a_network_error_not_a_refusal() {
    let env = Env::start().await;
    // Nothing listens on port 9: the token request gets no answer at all.
    let authority = url::Url::parse("http://127.0.0.1:9/contoso.onmicrosoft.com").expect("authority");
    let source = pbi_powerbi::ClientCredentials::new(
        reqwest::Client::new(),
        &authority,
        pbi_sandbox::demo_automation_client_id().to_string(),
        pbi_powerbi::ClientSecret::new(pbi_sandbox::demo::AUTOMATION_SECRET),
        env.cloud().resource(),
    )
    .expect("source");
    let error = env.client(Arc::new(source), RetryPolicy::none()).groups(None, Default::default()).await.expect_err("no answer");
    let ErrorKind::Transport(message) = &error.kind else { panic!("a network error, not {:?}", error.kind) };
    assert!(message.contains("token endpoint could not be reached"), "says which request got no answer: {message}");
    assert!(!message.contains(pbi_sandbox::demo::AUTOMATION_SECRET), "{message}");
}

#[tokio::test]
async fn debug_logs_name_each_call_and_never_the_token_or_secret() {
    let logs = pbi_testlog::capture();
    let env = Env::start().await;
    // The client sends exactly this token, so its absence from the log means something.
    let token = pbi_powerbi::TokenSource::token(&env.app_tokens(env.sandbox.clock().clone()), false).await.expect("token");
    let client = env.client(Arc::new(pbi_powerbi::StaticToken(token.clone())), fixed_retry(1));
    env.sandbox.inject(FaultRule::new(None, "/v1.0/myorg/groups", 1, FaultKind::Status { status: 503, retry_after: None }));
    client.groups(None, Default::default()).await.expect("groups");
    let all = logs.text();
    let port = format!(":{}/", env.sandbox.local_addr().port());
    let mine: Vec<&str> = all.lines().filter(|l| l.contains(&port)).collect();
    assert!(
        mine.iter().any(|l| l.contains("Power BI request") && l.contains("method=GET") && l.contains("/v1.0/myorg/groups")),
        "{mine:#?}"
    );
    assert!(mine.iter().any(|l| l.contains("Power BI answer") && l.contains("status=503")), "{mine:#?}");
    assert!(mine.iter().any(|l| l.contains("retrying")), "{mine:#?}");
    // Tokens are JWTs: not even their signature part may show, anywhere in the log.
    let signature = token.secret().rsplit('.').next().expect("signature");
    logs.assert_heard_from(&["pbi_powerbi", "hyper_util"]);
    for (what, secret) in
        [("token", token.secret()), ("token's signature", signature), ("client secret", pbi_sandbox::demo::AUTOMATION_SECRET)]
    {
        logs.assert_lacks(what, secret);
    }
}

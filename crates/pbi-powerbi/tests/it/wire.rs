//! Exact request bytes where the wire format matters, captured by a bare HTTP server.

use pbi_powerbi::models::{Column, DataType, DatasetDefinition, TableSchema};
use pbi_powerbi::{AccessToken, ClientCredentials, ClientSecret, Cloud, PowerBiClient, RetryPolicy, StaticToken, TokenSource, Workspace};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Answers every request with `answer` and keeps what it received.
async fn capture(answer: &'static str) -> (url::Url, Arc<Mutex<Vec<Captured>>>) {
    let seen: Arc<Mutex<Vec<Captured>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let store = store.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 24).await.unwrap_or_default().to_vec();
            let headers = parts.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned())).collect();
            store.lock().expect("lock").push(Captured { method: parts.method.to_string(), uri: parts.uri.to_string(), headers, body });
            ([("content-type", "application/json")], answer)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = url::Url::parse(&format!("http://{}", listener.local_addr().expect("addr"))).expect("url");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn header<'a>(captured: &'a Captured, name: &str) -> Option<&'a str> {
    captured.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn post_rows_sends_exactly_the_documented_body() {
    let (base, seen) = capture("").await;
    let client = PowerBiClient::new(&Cloud::custom(base), Arc::new(StaticToken(AccessToken::new("tok")))).with_retry(RetryPolicy::none());
    let rows = vec![serde_json::json!({"Id": 1, "Name": "Ann"}).as_object().cloned().expect("object")];
    let group = uuid::Uuid::nil();
    client.post_rows(Workspace::Group(group), "ds-1", "My Table", &rows).await.expect("sent");
    let request = seen.lock().expect("lock")[0].clone();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, format!("/v1.0/myorg/groups/{group}/datasets/ds-1/tables/My%20Table/rows"));
    assert_eq!(String::from_utf8_lossy(&request.body), r#"{"rows":[{"Id":1,"Name":"Ann"}]}"#);
    assert_eq!(header(&request, "authorization"), Some("Bearer tok"));
    assert_eq!(header(&request, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn create_dataset_sends_the_retention_policy_and_canonical_types() {
    let (base, seen) = capture(r#"{"id":"d","name":"Sales"}"#).await;
    let client = PowerBiClient::new(&Cloud::custom(base), Arc::new(StaticToken(AccessToken::new("tok")))).with_retry(RetryPolicy::none());
    let definition = DatasetDefinition {
        name: "Sales".into(),
        default_mode: Some("Push".into()),
        tables: vec![TableSchema {
            name: "T".into(),
            columns: vec![Column { name: "Paid".into(), data_type: DataType::parse("bool").expect("type"), extra: Default::default() }],
            measures: vec![],
            extra: Default::default(),
        }],
        relationships: vec![],
    };
    client.create_dataset(Workspace::My, &definition, true).await.expect("sent");
    let request = seen.lock().expect("lock")[0].clone();
    assert_eq!(request.uri, "/v1.0/myorg/datasets?defaultRetentionPolicy=basicFIFO");
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        r#"{"name":"Sales","defaultMode":"Push","tables":[{"name":"T","columns":[{"name":"Paid","dataType":"Boolean"}]}]}"#
    );
}

#[tokio::test]
async fn client_credentials_posts_the_documented_form() {
    let (base, seen) = capture(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#).await;
    let source = ClientCredentials::new(
        reqwest::Client::new(),
        &base.join("contoso.onmicrosoft.com").expect("url"),
        "app-1",
        ClientSecret::new("s&cret="),
        "https://analysis.windows.net/powerbi/api",
    )
    .expect("source");
    assert_eq!(source.token(false).await.expect("token").secret(), "abc");
    assert_eq!(source.token(false).await.expect("cached").secret(), "abc");
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 1, "the second call was served from the cache");
    assert_eq!(requests[0].uri, "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    assert_eq!(header(&requests[0], "content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        String::from_utf8(requests[0].body.clone()).expect("utf8"),
        "grant_type=client_credentials&client_id=app-1&client_secret=s%26cret%3D&scope=https%3A%2F%2Fanalysis.windows.net%2Fpowerbi%2Fapi%2F.default"
    );
}

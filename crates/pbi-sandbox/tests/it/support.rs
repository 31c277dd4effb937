//! Test helpers that speak the sandbox's language: sign a user in hop by hop, get tokens, call the API.

use base64::Engine as _;
use pbi_sandbox::{Sandbox, SandboxConfig, SandboxHandle, demo};
use pbi_swagger::Swagger;
use reqwest::{Response, StatusCode, header};
use serde_json::Value;
use sha2::Digest as _;
use std::sync::OnceLock;

pub const TENANT: &str = demo::CONTOSO_DOMAIN;
pub const PBI: &str = "https://analysis.windows.net/powerbi/api";
pub const API_SCOPES: &str = "openid profile offline_access https://analysis.windows.net/powerbi/api/Dashboard.Read.All https://analysis.windows.net/powerbi/api/Dataset.ReadWrite.All https://analysis.windows.net/powerbi/api/Workspace.Read.All https://analysis.windows.net/powerbi/api/Report.Read.All";

pub fn swagger() -> &'static Swagger {
    static SWAGGER: OnceLock<Swagger> = OnceLock::new();
    SWAGGER.get_or_init(|| Swagger::load_default().expect("the swagger is in shared/reference"))
}

pub struct TestSandbox {
    pub sandbox: SandboxHandle,
    pub http: reqwest::Client,
}

/// One browser: the cookie the sandbox's sign-in set.
#[derive(Default, Clone)]
pub struct Browser {
    pub cookie: Option<String>,
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = format!("verifier-{}-0123456789abcdefghijklmnopqrstuvwxyz", uuid::Uuid::new_v4());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        Self { verifier, challenge }
    }
}

pub fn location(response: &Response) -> String {
    response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once(['?', '#'])?.1;
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The value of a hidden form field in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].replace("&amp;", "&"))
}

impl TestSandbox {
    pub async fn start() -> Self {
        Self::with(SandboxConfig::default()).await
    }

    pub async fn with(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::start(config).await.expect("the sandbox starts on port 0");
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { sandbox, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub fn redirect_uri(&self) -> String {
        self.url("/_sandbox/callback")
    }

    pub fn client_id(&self) -> String {
        pbi_sandbox::demo_client_id().to_string()
    }

    pub fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let redirect = self.redirect_uri();
        let client = self.client_id();
        let mut params: Vec<(&str, &str)> =
            vec![("client_id", &client), ("response_type", "code"), ("redirect_uri", &redirect), ("scope", API_SCOPES), ("state", "s-123")];
        for (k, v) in extra {
            params.retain(|(name, _)| name != k);
            params.push((k, v));
        }
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        self.url(&format!("/{TENANT}/oauth2/v2.0/authorize?{query}"))
    }

    pub async fn get(&self, browser: &Browser, url: &str) -> Response {
        let mut request = self.http.get(url);
        if let Some(cookie) = &browser.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("GET")
    }

    pub async fn post_form(&self, browser: &Browser, url: &str, form: &[(&str, &str)]) -> Response {
        let mut request = self.http.post(url).form(form);
        if let Some(cookie) = &browser.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.send().await.expect("POST")
    }

    /// Submits the sign-in page; keeps the session cookie in `browser`.
    pub async fn sign_in(&self, browser: &mut Browser, page: &str, upn: &str, password: &str) -> Response {
        let ctx = hidden(page, "ctx").expect("the sign-in page has a ctx field");
        let response =
            self.post_form(browser, &self.url(&format!("/{TENANT}/login")), &[("ctx", &ctx), ("login", upn), ("passwd", password)]).await;
        if let Some(cookie) = response.headers().get(header::SET_COOKIE).and_then(|v| v.to_str().ok()) {
            browser.cookie = cookie.split(';').next().map(str::to_owned);
        }
        response
    }

    pub async fn consent(&self, browser: &Browser, page: &str, decision: &str) -> Response {
        let ctx = hidden(page, "ctx").expect("the consent page has a ctx field");
        self.post_form(browser, &self.url(&format!("/{TENANT}/consent")), &[("ctx", &ctx), ("decision", decision)]).await
    }

    /// Signs `upn` in (password `<name>-password`), accepts consent if asked, and returns the redirect URL.
    pub async fn authorize_as(&self, upn: &str, extra: &[(&str, &str)]) -> String {
        let mut browser = Browser::default();
        let page = self.get(&browser, &self.authorize_url(extra)).await.text().await.expect("sign-in page");
        let password = format!("{}-password", upn.split('@').next().unwrap_or_default());
        let response = self.sign_in(&mut browser, &page, upn, &password).await;
        if response.status() == StatusCode::FOUND {
            return location(&response);
        }
        let page = response.text().await.expect("page");
        assert!(page.contains("Permissions requested"), "expected the consent page, got: {page}");
        let response = self.consent(&browser, &page, "accept").await;
        assert_eq!(response.status(), StatusCode::FOUND);
        location(&response)
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self.http.post(self.url(&format!("/{TENANT}/oauth2/v2.0/token"))).form(form).send().await.expect("token request");
        let status = response.status();
        (status, response.json().await.expect("token endpoint answers JSON"))
    }

    /// A full authorization-code + PKCE sign-in for a demo user; returns the token response.
    pub async fn user_tokens(&self, upn: &str) -> Value {
        self.user_tokens_for(upn, API_SCOPES).await
    }

    /// The same, asking for `scope` (space-separated, as on the wire).
    pub async fn user_tokens_for(&self, upn: &str, scope: &str) -> Value {
        let pkce = Pkce::new();
        let redirect =
            self.authorize_as(upn, &[("code_challenge", &pkce.challenge), ("code_challenge_method", "S256"), ("scope", scope)]).await;
        let code = query_param(&redirect, "code").expect("a code");
        let (status, body) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &self.client_id()),
                ("client_secret", demo::APP_SECRET),
                ("code", &code),
                ("redirect_uri", &self.redirect_uri()),
                ("code_verifier", &pkce.verifier),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn refresh(&self, refresh_token: String) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id()),
            ("client_secret", demo::APP_SECRET),
            ("refresh_token", &refresh_token),
        ])
        .await
    }

    pub async fn user_token(&self, upn: &str) -> String {
        self.user_tokens(upn).await["access_token"].as_str().expect("access token").to_owned()
    }

    pub async fn app_token(&self) -> String {
        let client = pbi_sandbox::demo_automation_client_id().to_string();
        let (status, body) = self
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("client_secret", demo::AUTOMATION_SECRET),
                ("scope", &format!("{PBI}/.default")),
            ])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("access token").to_owned()
    }

    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(&format!("/v1.0/myorg{path}"))).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API call");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, headers, value)
    }

    pub async fn api_get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let (status, _, body) = self.call(token, reqwest::Method::GET, path, None).await;
        (status, body)
    }

    /// The rows the sandbox stores for a push table (Power BI has no API to read them back).
    pub async fn stored_rows(&self, dataset: &str, table: &str, top: usize) -> Value {
        let response =
            self.http.get(self.url(&format!("/_sandbox/datasets/{dataset}/tables/{table}/rows?top={top}"))).send().await.expect("GET");
        response.json().await.expect("JSON")
    }

    pub async fn control(&self, command: Value) -> Value {
        let response = self.http.post(self.url("/_sandbox/commands")).json(&command).send().await.expect("command");
        assert!(response.status().is_success(), "command failed: {}", response.text().await.unwrap_or_default());
        response.json().await.expect("JSON")
    }
}

/// Guards a wait that only a bug would make endless, so the test fails instead of hanging; not a timing check.
pub async fn within_a_minute<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), future).await.expect("waited a minute: it is not going to happen")
}

pub fn names(list: &Value, field: &str) -> Vec<String> {
    list["value"].as_array().map(|items| items.iter().filter_map(|i| i[field].as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

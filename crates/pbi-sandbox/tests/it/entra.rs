//! Entra ID flows: discovery, sign-in, consent, codes, PKCE, refresh, client credentials and their errors.

use crate::support::*;
use base64::Engine as _;
use pbi_sandbox::demo;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

fn header(jwt: &str) -> Value {
    let head = jwt.split('.').next().expect("header");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).expect("base64url")).expect("JSON header")
}

fn parts(jwt: &str) -> [&str; 3] {
    let parts: Vec<&str> = jwt.split('.').collect();
    parts.try_into().unwrap_or_else(|parts: Vec<&str>| panic!("a JWT has three parts, this one {}", parts.len()))
}

/// The RS256 verifier for a JWK's modulus and exponent, built here from the JWKS alone (not the sandbox's code).
fn verifier_of(jwk: &Value) -> rsa::pkcs1v15::VerifyingKey<sha2::Sha256> {
    let number = |name: &str| {
        let text = jwk[name].as_str().unwrap_or_else(|| panic!("the JWK has {name}: {jwk}"));
        rsa::BigUint::from_bytes_be(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).expect("base64url"))
    };
    rsa::pkcs1v15::VerifyingKey::new(rsa::RsaPublicKey::new(number("n"), number("e")).expect("an RSA public key"))
}

/// Checks the signature over `header.payload`, as RFC 7515 defines the JWS signing input.
fn rs256_verifies(verifier: &rsa::pkcs1v15::VerifyingKey<sha2::Sha256>, jwt: &str) -> Result<(), rsa::signature::Error> {
    use rsa::signature::Verifier as _;
    let [head, payload, signature] = parts(jwt);
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).map_err(rsa::signature::Error::from_source)?;
    let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())?;
    verifier.verify(format!("{head}.{payload}").as_bytes(), &signature)
}

fn aadsts(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or_default()
}

#[tokio::test]
async fn discovery_names_the_sandbox_endpoints_and_keys_verify_tokens() {
    let t = TestSandbox::start().await;
    let doc: Value = t
        .http
        .get(t.url(&format!("/{TENANT}/v2.0/.well-known/openid-configuration")))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let tenant_id = pbi_sandbox::demo_id("tenant:contoso");
    assert_eq!(doc["issuer"], format!("{}/{tenant_id}/v2.0", t.sandbox.base_url()));
    assert_eq!(doc["token_endpoint"], t.url(&format!("/{TENANT}/oauth2/v2.0/token")));
    let keys: Value = t.http.get(doc["jwks_uri"].as_str().expect("jwks_uri")).send().await.expect("GET").json().await.expect("JSON");
    let token = t.app_token().await;
    assert_eq!(header(&token)["alg"], "RS256");
    // As a resource server would: pick the JWKS key the header names, and check the RS256 signature with it.
    let key = keys["keys"].as_array().expect("keys").iter().find(|k| k["kid"] == header(&token)["kid"]).expect("the key the token names");
    assert_eq!((key["kty"].as_str(), key["use"].as_str()), (Some("RSA"), Some("sig")), "{key}");
    let verifier = verifier_of(key);
    rs256_verifies(&verifier, &token).expect("the issued token verifies with the published key");
    let user_token = t.user_token("alice@contoso.onmicrosoft.com").await;
    rs256_verifies(&verifier, &user_token).expect("so does a user's");
    // A changed payload (a different audience) under the original signature must not verify.
    let [head, payload, signature] = parts(&token);
    let mut forged_claims = claims(&token);
    forged_claims["aud"] = json!("https://graph.microsoft.com");
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged_claims.to_string());
    assert_ne!(forged_payload, payload);
    assert!(rs256_verifies(&verifier, &format!("{head}.{forged_payload}.{signature}")).is_err(), "a tampered payload");
    // Nor a token signed by another key (one this sandbox does not publish).
    let stranger = pbi_sandbox::SigningKeyPair::generate().sign(&claims(&token), true);
    assert!(rs256_verifies(&verifier, &stranger).is_err(), "another key's signature");
    let common: Value =
        t.http.get(t.url("/organizations/v2.0/.well-known/openid-configuration")).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(common["issuer"], format!("{}/{{tenantid}}/v2.0", t.sandbox.base_url()));
}

#[tokio::test]
async fn sign_in_consent_code_and_pkce_give_entra_shaped_tokens() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    let pkce = Pkce::new();
    let page = t
        .get(&browser, &t.authorize_url(&[("code_challenge", &pkce.challenge), ("code_challenge_method", "S256"), ("nonce", "n-1")]))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("Sign in") && page.contains("pbi-bridge"), "{page}");

    let wrong = t.sign_in(&mut browser, &page, "alice@contoso.onmicrosoft.com", "nope").await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.expect("page").contains("AADSTS50126"));

    let consent_page =
        t.sign_in(&mut browser, &page, "alice@contoso.onmicrosoft.com", "alice-password").await.text().await.expect("consent page");
    for permission in ["Dashboard.Read.All", "Dataset.ReadWrite.All", "Workspace.Read.All", "Report.Read.All", "offline_access"] {
        assert!(consent_page.contains(&format!(r#"data-scope="{permission}""#)), "consent lists {permission}");
    }
    let redirect = location(&t.consent(&browser, &consent_page, "accept").await);
    assert!(redirect.starts_with(&t.redirect_uri()), "{redirect}");
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("s-123"));
    let code = query_param(&redirect, "code").expect("code");

    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &t.client_id()),
            ("client_secret", demo::APP_SECRET),
            ("code", &code),
            ("redirect_uri", &t.redirect_uri()),
            ("code_verifier", &pkce.verifier),
            ("client_info", "1"),
            ("x-client-SKU", "MSAL.Python"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let lifetime = body["expires_in"].as_i64().expect("expires_in");
    assert!((3600..=5400).contains(&lifetime), "access tokens live 60 to 90 minutes, got {lifetime}");
    assert!(body["refresh_token"].is_string() && body["id_token"].is_string() && body["client_info"].is_string());
    let access = claims(body["access_token"].as_str().expect("token"));
    assert_eq!(access["aud"], PBI);
    assert_eq!(access["upn"], "alice@contoso.onmicrosoft.com");
    assert_eq!(access["tid"], pbi_sandbox::demo_id("tenant:contoso").to_string());
    assert_eq!(access["appid"], t.client_id());
    assert_eq!(access["ver"], "1.0");
    assert_eq!(access["exp"].as_i64().expect("exp") - access["iat"].as_i64().expect("iat"), lifetime);
    let scp: Vec<&str> = access["scp"].as_str().expect("scp").split(' ').collect();
    assert!(scp.contains(&"Dashboard.Read.All") && scp.contains(&"Workspace.Read.All"), "{scp:?}");
    let id = claims(body["id_token"].as_str().expect("id token"));
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["aud"], t.client_id());
    assert_eq!(id["preferred_username"], "alice@contoso.onmicrosoft.com");

    // The code is single-use.
    let (status, reused) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &t.client_id()),
            ("client_secret", demo::APP_SECRET),
            ("code", &code),
            ("redirect_uri", &t.redirect_uri()),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    assert_eq!((status, aadsts(&reused), reused["error"].as_str()), (StatusCode::BAD_REQUEST, 54005, Some("invalid_grant")));
    assert!(reused["error_description"].as_str().expect("description").starts_with("AADSTS54005:"));
    for field in ["trace_id", "correlation_id", "timestamp", "error_uri"] {
        assert!(reused[field].is_string(), "error bodies carry {field}");
    }

    // Signed in and consented: the next authorize goes straight back with a code, no pages.
    let again = t.get(&browser, &t.authorize_url(&[])).await;
    assert_eq!(again.status(), StatusCode::FOUND);
    assert!(query_param(&location(&again), "code").is_some());

    // prompt=consent shows the consent page again even though consent exists.
    let forced = t.get(&browser, &t.authorize_url(&[("prompt", "consent")])).await.text().await.expect("page");
    assert!(forced.contains("Permissions requested"));
}

#[tokio::test]
async fn pkce_verifier_must_match_and_codes_expire_after_ten_minutes() {
    let t = TestSandbox::start().await;
    let pkce = Pkce::new();
    let redirect =
        t.authorize_as("alice@contoso.onmicrosoft.com", &[("code_challenge", &pkce.challenge), ("code_challenge_method", "S256")]).await;
    let code = query_param(&redirect, "code").expect("code");
    let base = [
        ("grant_type", "authorization_code"),
        ("client_id", &t.client_id() as &str),
        ("client_secret", demo::APP_SECRET),
        ("code", &code),
        ("redirect_uri", &t.redirect_uri() as &str),
    ];
    let (status, body) = t.token(&[&base[..], &[("code_verifier", "a-wrong-verifier-that-is-long-enough-000000000")]].concat()).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 501481));
    let (status, body) = t.token(&base).await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 501481), "a missing verifier is refused too");

    let redirect = t.authorize_as("alice@contoso.onmicrosoft.com", &[]).await;
    let code = query_param(&redirect, "code").expect("code");
    t.sandbox.clock().advance(time::Duration::minutes(11)).expect("manual clock");
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &t.client_id()),
            ("client_secret", demo::APP_SECRET),
            ("code", &code),
            ("redirect_uri", &t.redirect_uri()),
        ])
        .await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 70008));
}

#[tokio::test]
async fn user_declining_consent_goes_back_with_access_denied() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    let consent = t.sign_in(&mut browser, &page, "bob@contoso.onmicrosoft.com", "bob-password").await.text().await.expect("consent");
    let redirect = location(&t.consent(&browser, &consent, "cancel").await);
    assert_eq!(query_param(&redirect, "error").as_deref(), Some("access_denied"));
    assert!(query_param(&redirect, "error_description").expect("description").starts_with("AADSTS65004:"));
    assert_eq!(query_param(&redirect, "state").as_deref(), Some("s-123"));
}

#[tokio::test]
async fn when_users_may_not_consent_an_admin_must() {
    let t = TestSandbox::start().await;
    let tenant = pbi_sandbox::demo_id("tenant:contoso");
    t.sandbox.update_tenant_settings(tenant, |s| s.users_can_consent = false).expect("contoso");

    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    let approval = t.sign_in(&mut browser, &page, "alice@contoso.onmicrosoft.com", "alice-password").await.text().await.expect("page");
    assert!(approval.contains("Need admin approval") && approval.contains("AADSTS90094"), "{approval}");
    let redirect = location(&t.consent(&browser, &approval, "return").await);
    assert!(query_param(&redirect, "error_description").expect("description").starts_with("AADSTS90094:"));

    // The admin consents for the whole organisation through the admin-consent endpoint...
    let mut admin = Browser::default();
    let url = t.url(&format!("/{TENANT}/v2.0/adminconsent?client_id={}&redirect_uri={}&state=adm", t.client_id(), t.redirect_uri()));
    let page = t.get(&admin, &url).await.text().await.expect("page");
    let consent = t.sign_in(&mut admin, &page, "admin@contoso.onmicrosoft.com", "admin-password").await.text().await.expect("consent");
    let redirect = location(&t.consent(&admin, &consent, "accept").await);
    assert_eq!(query_param(&redirect, "admin_consent").as_deref(), Some("True"));
    assert_eq!(query_param(&redirect, "tenant"), Some(tenant.to_string()));

    // ...after which Alice gets a code without any consent page.
    let mut browser = Browser::default();
    let page = t
        .get(&browser, &t.authorize_url(&[("scope", "openid offline_access https://analysis.windows.net/powerbi/api/.default")]))
        .await
        .text()
        .await
        .expect("page");
    let response = t.sign_in(&mut browser, &page, "alice@contoso.onmicrosoft.com", "alice-password").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(query_param(&location(&response), "code").is_some());
}

#[tokio::test]
async fn a_wrong_redirect_uri_or_unknown_app_stays_on_an_error_page() {
    let t = TestSandbox::start().await;
    let response = t.get(&Browser::default(), &t.authorize_url(&[("redirect_uri", "https://evil.example/cb")])).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none(), "never redirects to an unregistered URI");
    assert!(response.text().await.expect("page").contains("AADSTS50011"));

    let response = t.get(&Browser::default(), &t.authorize_url(&[("client_id", "6f1c4a8e-0000-4000-8000-000000000001")])).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("page").contains("AADSTS700016"));

    // A single-tenant app cannot use /organizations.
    let url = t.authorize_url(&[]).replace(&format!("/{TENANT}/"), "/organizations/");
    assert!(t.get(&Browser::default(), &url).await.text().await.expect("page").contains("AADSTS50194"));
}

#[tokio::test]
async fn bad_scopes_come_back_as_redirected_errors() {
    let t = TestSandbox::start().await;
    let response = t.get(&Browser::default(), &t.authorize_url(&[("scope", "openid Dashboard.Read.All")])).await;
    let redirect = location(&response);
    assert_eq!(query_param(&redirect, "error").as_deref(), Some("invalid_scope"));
    assert!(query_param(&redirect, "error_description").expect("description").starts_with("AADSTS70011:"));
    let response = t.get(&Browser::default(), &t.authorize_url(&[("resource", PBI)])).await;
    assert!(query_param(&location(&response), "error_description").expect("description").starts_with("AADSTS901002:"));
}

#[tokio::test]
async fn a_user_of_another_tenant_cannot_sign_in_here() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    let response = t.sign_in(&mut browser, &page, "dave@fabrikam.onmicrosoft.com", "dave-password").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("page").contains("AADSTS50020"));
}

#[tokio::test]
async fn prompt_none_needs_a_session_and_consent() {
    let t = TestSandbox::start().await;
    let response = t.get(&Browser::default(), &t.authorize_url(&[("prompt", "none")])).await;
    assert_eq!(query_param(&location(&response), "error").as_deref(), Some("login_required"));

    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    t.sign_in(&mut browser, &page, "bob@contoso.onmicrosoft.com", "bob-password").await;
    let response = t.get(&browser, &t.authorize_url(&[("prompt", "none")])).await;
    let redirect = location(&response);
    assert_eq!(query_param(&redirect, "error").as_deref(), Some("consent_required"));
    assert!(query_param(&redirect, "error_description").expect("description").starts_with("AADSTS65001:"));
}

#[tokio::test]
async fn form_post_response_mode_posts_the_code() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    t.control(json!({"op": "grantConsent", "tenant": pbi_sandbox::demo_id("tenant:contoso"), "clientId": t.client_id(), "user": pbi_sandbox::demo_id("user:alice@contoso.onmicrosoft.com"), "scopes": ["Dashboard.Read.All", "Dataset.ReadWrite.All", "Workspace.Read.All", "Report.Read.All"]})).await;
    let page = t.get(&browser, &t.authorize_url(&[("response_mode", "form_post")])).await.text().await.expect("page");
    let page =
        t.sign_in(&mut browser, &page, "alice@contoso.onmicrosoft.com", "alice-password").await.text().await.expect("auto-post page");
    assert!(page.contains(&format!(r#"action="{}""#, t.redirect_uri())), "{page}");
    assert!(hidden(&page, "code").is_some() && hidden(&page, "state").as_deref() == Some("s-123"));
}

#[tokio::test]
async fn client_authentication_errors_are_entras() {
    let t = TestSandbox::start().await;
    let client = pbi_sandbox::demo_automation_client_id().to_string();
    let scope = format!("{PBI}/.default");
    let cases: [(&[(&str, &str)], u64); 3] = [
        (&[("client_secret", "wrong")], 7000215),
        (&[], 7000218),
        (&[("client_id", &t.client_id()), ("client_secret", demo::EXPIRED_APP_SECRET)], 7000222),
    ];
    for (extra, code) in cases {
        let mut form = vec![("grant_type", "client_credentials"), ("client_id", client.as_str()), ("scope", scope.as_str())];
        for (k, v) in extra {
            form.retain(|(name, _)| name != k);
            form.push((k, v));
        }
        let (status, body) = t.token(&form).await;
        assert_eq!((status, aadsts(&body), body["error"].as_str()), (StatusCode::UNAUTHORIZED, code, Some("invalid_client")), "{body}");
        assert!(!body.to_string().contains("wrong") && !body.to_string().contains(demo::EXPIRED_APP_SECRET), "errors never echo a secret");
    }
    let (status, body) = t
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "6f1c4a8e-0000-4000-8000-000000000001"),
            ("client_secret", "x"),
            ("scope", &scope),
        ])
        .await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 700016));
}

#[tokio::test]
async fn client_credentials_needs_a_tenant_and_a_default_scope_and_accepts_basic_auth() {
    let t = TestSandbox::start().await;
    let client = pbi_sandbox::demo_automation_client_id().to_string();
    let (status, body) = t
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client),
            ("client_secret", demo::AUTOMATION_SECRET),
            ("scope", &format!("{PBI}/Dataset.Read.All")),
        ])
        .await;
    assert_eq!((status, aadsts(&body)), (StatusCode::BAD_REQUEST, 1002012));
    let response = t
        .http
        .post(t.url("/organizations/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client),
            ("client_secret", demo::AUTOMATION_SECRET),
            ("scope", &format!("{PBI}/.default")),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(aadsts(&response.json().await.expect("JSON")), 50059);

    let response = t
        .http
        .post(t.url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .basic_auth(&client, Some(demo::AUTOMATION_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", &format!("{PBI}/.default"))])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store, no-cache");
    let body: Value = response.json().await.expect("JSON");
    let access = claims(body["access_token"].as_str().expect("token"));
    assert_eq!((access["idtyp"].as_str(), access["appid"].as_str()), (Some("app"), Some(client.as_str())));
    assert!(access.get("scp").is_none() && body.get("refresh_token").is_none());
}

#[tokio::test]
async fn refresh_tokens_rotate_expire_after_90_idle_days_and_die_with_revocation() {
    let t = TestSandbox::start().await;
    let first = t.user_tokens("alice@contoso.onmicrosoft.com").await;
    let refresh = |token: String| t.refresh(token);
    let (status, second) = refresh(first["refresh_token"].as_str().expect("rt").to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"], "a new refresh token on every use");
    assert_ne!(second["access_token"], first["access_token"]);

    t.sandbox.clock().advance(time::Duration::days(89)).expect("manual clock");
    let (status, third) = refresh(second["refresh_token"].as_str().expect("rt").to_owned()).await;
    assert_eq!(status, StatusCode::OK, "used within 90 days");
    t.sandbox.clock().advance(time::Duration::days(91)).expect("manual clock");
    let (status, expired) = refresh(third["refresh_token"].as_str().expect("rt").to_owned()).await;
    assert_eq!((status, aadsts(&expired)), (StatusCode::BAD_REQUEST, 700082));

    let fresh = t.user_tokens("bob@contoso.onmicrosoft.com").await;
    t.control(json!({"op": "revokeGrants", "user": pbi_sandbox::demo_id("user:bob@contoso.onmicrosoft.com")})).await;
    let (status, revoked) = refresh(fresh["refresh_token"].as_str().expect("rt").to_owned()).await;
    assert_eq!((status, aadsts(&revoked)), (StatusCode::BAD_REQUEST, 50173));
}

#[tokio::test]
async fn v1_endpoints_take_resource_and_answer_with_string_numbers() {
    let t = TestSandbox::start().await;
    let client = pbi_sandbox::demo_automation_client_id().to_string();
    let response = t
        .http
        .post(t.url(&format!("/{TENANT}/oauth2/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client),
            ("client_secret", demo::AUTOMATION_SECRET),
            ("resource", PBI),
        ])
        .send()
        .await
        .expect("POST");
    let body: Value = response.json().await.expect("JSON");
    assert!(body["expires_in"].is_string() && body["expires_on"].is_string() && body["not_before"].is_string(), "{body}");
    assert_eq!(body["resource"], PBI);

    let url = t.url(&format!(
        "/{TENANT}/oauth2/authorize?client_id={}&response_type=code&redirect_uri={}&resource={PBI}",
        t.client_id(),
        t.redirect_uri()
    ));
    let page = t.get(&Browser::default(), &url).await.text().await.expect("page");
    assert!(page.contains("Sign in"), "{page}");
}

#[tokio::test]
async fn a_multi_tenant_app_is_consented_in_the_users_own_tenant() {
    let t = TestSandbox::start().await;
    let contoso = pbi_sandbox::demo_id("tenant:contoso");
    let app = t.control(json!({"op": "createApp", "tenant": contoso, "displayName": "Catalog SaaS", "multiTenant": true, "redirectUris": [t.redirect_uri()], "delegatedPermissions": ["Workspace.Read.All"]})).await;
    let client = app["clientId"].as_str().expect("client id").to_owned();
    let secret =
        t.control(json!({"op": "addSecret", "clientId": client, "expiresInDays": 30})).await["value"].as_str().expect("secret").to_owned();

    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client.as_str()),
            ("response_type", "code"),
            ("redirect_uri", &t.redirect_uri()),
            ("scope", "offline_access https://analysis.windows.net/powerbi/api/Workspace.Read.All"),
        ])
        .finish();
    let mut browser = Browser::default();
    let page = t.get(&browser, &t.url(&format!("/organizations/oauth2/v2.0/authorize?{query}"))).await.text().await.expect("page");
    let ctx = hidden(&page, "ctx").expect("ctx");
    let response = t
        .post_form(
            &browser,
            &t.url("/organizations/login"),
            &[("ctx", &ctx), ("login", "dave@fabrikam.onmicrosoft.com"), ("passwd", "dave-password")],
        )
        .await;
    let set_cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("a session cookie").to_owned();
    // Browsers drop SameSite=None cookies that are not Secure: over http the sandbox's session cookie is Lax.
    assert!(set_cookie.contains("SameSite=Lax") && !set_cookie.contains("SameSite=None"), "{set_cookie}");
    browser.cookie = set_cookie.split(';').next().map(str::to_owned);
    let consent = response.text().await.expect("consent page");
    assert!(consent.contains("Catalog SaaS"), "{consent}");
    let ctx = hidden(&consent, "ctx").expect("ctx");
    let redirect = location(&t.post_form(&browser, &t.url("/organizations/consent"), &[("ctx", &ctx), ("decision", "accept")]).await);
    let code = query_param(&redirect, "code").expect("code");

    // Redeeming at the wrong tenant is refused; at the user's tenant (or /organizations) it works.
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("client_secret", secret.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", &t.redirect_uri()),
    ];
    let wrong: Value =
        t.http.post(t.url(&format!("/{TENANT}/oauth2/v2.0/token"))).form(&form).send().await.expect("POST").json().await.expect("JSON");
    assert_eq!(aadsts(&wrong), 700005, "{wrong}");
    let tokens: Value = t
        .http
        .post(t.url("/fabrikam.onmicrosoft.com/oauth2/v2.0/token"))
        .form(&form)
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let access = claims(tokens["access_token"].as_str().expect("token"));
    assert_eq!(access["tid"], pbi_sandbox::demo_id("tenant:fabrikam").to_string());
    let (status, groups) = t.api_get(tokens["access_token"].as_str().expect("token"), "/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&groups, "name"), ["Fabrikam Sales"], "Dave sees his own tenant's content, never Contoso's");
    let sps =
        t.sandbox.directory()["servicePrincipals"].as_array().expect("list").iter().filter(|sp| sp["clientId"] == client.as_str()).count();
    assert_eq!(sps, 2, "one service principal in the home tenant, one provisioned in Fabrikam by consent");
}

/// Every hidden field of a page's forms, as a browser would send them (escapes undone).
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let unescape =
        |v: &str| v.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    page.split(r#"<input type="hidden" name=""#)
        .skip(1)
        .filter_map(|rest| {
            let (name, rest) = rest.split_once('"')?;
            let value = rest.strip_prefix(r#" value=""#)?.split('"').next()?;
            Some((name.to_owned(), unescape(value)))
        })
        .collect()
}

#[tokio::test]
async fn the_consent_page_says_permissions_requested_once() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    let consent = t.sign_in(&mut browser, &page, "bob@contoso.onmicrosoft.com", "bob-password").await.text().await.expect("consent");
    assert!(consent.contains(r#"id="permissions""#), "the consent page: {consent}");
    let body = consent.split("<body>").nth(1).expect("a body");
    assert_eq!(body.matches("Permissions requested").count(), 1, "one heading, not two: {body}");
}

#[tokio::test]
async fn a_consent_sent_again_after_its_sign_in_ended_links_back_to_the_application() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    let consent = t.sign_in(&mut browser, &page, "bob@contoso.onmicrosoft.com", "bob-password").await.text().await.expect("consent");
    let mut form = hidden_fields(&consent);
    form.push(("decision".into(), "accept".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let consent_url = t.url(&format!("/{TENANT}/consent"));
    let accepted = t.post_form(&browser, &consent_url, &form).await;
    assert_eq!(accepted.status(), StatusCode::FOUND, "the first Accept goes back with a code");

    // Back, then Accept again: the sign-in it belonged to is over.
    let again = t.post_form(&browser, &consent_url, &form).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let error_page = again.text().await.expect("page");
    assert!(error_page.contains("AADSTS50058"), "{error_page}");
    let marker = r#"<a id="back-to-app" href=""#;
    let start = error_page.find(marker).unwrap_or_else(|| panic!("a link back to the application: {error_page}")) + marker.len();
    let link = error_page[start..].split('"').next().expect("href").replace("&amp;", "&");
    assert!(link.starts_with(&format!("{}?", t.redirect_uri())), "to the app's own redirect URI: {link}");
    assert_eq!(query_param(&link, "error").as_deref(), Some("login_required"));
    assert!(query_param(&link, "error_description").is_some_and(|d| d.starts_with("AADSTS50058:")), "{link}");
    assert_eq!(query_param(&link, "state").as_deref(), Some("s-123"), "the app can tell which sign-in it was");
    assert!(error_page.contains("Back to pbi-bridge"), "named for the app: {error_page}");

    // The way back is offered only to a redirect URI the app registered: a forged one gets the page alone.
    let forged: Vec<(&str, &str)> =
        form.iter().map(|&(k, v)| if k == "redirect_uri" { (k, "https://evil.example/cb") } else { (k, v) }).collect();
    let forged_page = t.post_form(&browser, &consent_url, &forged).await.text().await.expect("page");
    assert!(forged_page.contains("AADSTS50058") && !forged_page.contains("back-to-app"), "{forged_page}");
    assert!(!forged_page.contains("evil.example"), "{forged_page}");
}

#[tokio::test]
async fn an_expired_form_post_sign_in_goes_back_with_a_button() {
    let t = TestSandbox::start().await;
    let mut browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[("response_mode", "form_post")])).await.text().await.expect("page");
    let mut form = hidden_fields(&page);
    form.extend([("login".to_owned(), "bob@contoso.onmicrosoft.com".to_owned()), ("passwd".to_owned(), "bob-password".to_owned())]);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let login_url = t.url(&format!("/{TENANT}/login"));
    let consent = t.sign_in(&mut browser, &page, "bob@contoso.onmicrosoft.com", "bob-password").await.text().await.expect("consent");
    let posted = t.consent(&browser, &consent, "accept").await.text().await.expect("the page that posts the code");
    assert!(hidden_fields(&posted).iter().any(|(k, _)| k == "code"), "{posted}");
    // Back to the sign-in page, and Sign in again: that sign-in is over.
    let stale = t.post_form(&browser, &login_url, &form).await.text().await.expect("page");
    assert!(stale.contains("AADSTS50058"), "{stale}");
    assert!(stale.contains(&format!(r#"<form method="POST" action="{}">"#, t.redirect_uri())), "a form, since a link cannot post: {stale}");
    let back = hidden_fields(&stale);
    let value = |name: &str| back.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!((value("error"), value("state")), (Some("login_required"), Some("s-123")), "{stale}");
    assert!(!stale.contains("onload"), "it waits for the person: no script");
}

#[tokio::test]
async fn a_sign_in_page_left_open_over_an_hour_has_expired_and_links_back() {
    let t = TestSandbox::start().await;
    let browser = Browser::default();
    let page = t.get(&browser, &t.authorize_url(&[])).await.text().await.expect("page");
    t.sandbox.clock().advance(time::Duration::minutes(61)).expect("a manual clock");
    let mut form = hidden_fields(&page);
    form.extend([("login".to_owned(), "bob@contoso.onmicrosoft.com".to_owned()), ("passwd".to_owned(), "bob-password".to_owned())]);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let late = t.post_form(&browser, &t.url(&format!("/{TENANT}/login")), &form).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    let late = late.text().await.expect("page");
    assert!(late.contains("AADSTS50058") && late.contains(r#"id="back-to-app""#), "{late}");
}

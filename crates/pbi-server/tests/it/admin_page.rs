//! The "Power BI configuration" page: administrators only, errors by field, the key never shown again,
//! and a Validate button that asks Entra ID for real.

use crate::{App, hidden};
use pbi_sandbox::{Command, Sandbox, SandboxConfig, demo};
use reqwest::StatusCode;

#[tokio::test]
async fn only_administrators_configure_power_bi_and_validation_is_real() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let app = App::start_with_clock(sandbox.clock().clone()).await;
    let alice = app.session("alice").await;
    let (status, _) = app.page(&alice, "/admin/powerbi").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let admin = app.session("admin").await;
    let (status, page) = app.page(&admin, "/admin/powerbi").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!(r#"id="redirect-url">{}/oauth/callback"#, app.server.base_url())),
        "the redirect URL to copy into the portal"
    );
    assert!(page.contains("<li>Dashboard.Read.All</li>") && page.contains("No application key is set."));
    let csrf = hidden(&page, "csrf").expect("csrf");

    let bad = app
        .http
        .post(app.url("/admin/powerbi"))
        .header("cookie", &admin)
        .form(&[
            ("csrf", csrf.as_str()),
            ("enabled", "true"),
            ("client_id", "not-a-guid"),
            ("secret", "s3cret-value"),
            ("secret_expires", "next year"),
            ("tenant", ""),
            ("cloud", "public"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let text = bad.text().await.expect("page");
    for field in ["Application ID:", "Tenant:", "Application key expires:"] {
        assert!(text.contains(field), "names {field}: {text}");
    }
    assert!(!text.contains("s3cret-value"), "never echoes the key");
    assert!(app.store.registrations(true).await.expect("list").is_empty(), "nothing was saved");

    let client_id = pbi_sandbox::demo_client_id();
    sandbox.control(Command::AddRedirectUri { client_id, uri: app.url("/oauth/callback") }).expect("redirect");
    let base = sandbox.base_url();
    let saved = app
        .http
        .post(app.url("/admin/powerbi"))
        .header("cookie", &admin)
        .form(&[
            ("csrf", csrf.as_str()),
            ("enabled", "true"),
            ("client_id", &client_id.to_string()),
            ("secret", demo::APP_SECRET),
            ("secret_expires", "2099-12-31"),
            ("tenant", demo::CONTOSO_DOMAIN),
            ("cloud", "public"),
            ("authorize_url", &format!("{base}/{}/oauth2/v2.0/authorize", demo::CONTOSO_DOMAIN)),
            ("token_url", &format!("{base}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN)),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(saved.status(), StatusCode::SEE_OTHER, "Post/Redirect/Get");
    let (_, text) = app.page(&admin, "/admin/powerbi").await;
    assert!(text.contains("Saved.") && text.contains("it expires on 2099-12-31"), "{text}");
    assert!(!text.contains(demo::APP_SECRET), "the key is write-only");

    let validate = app.http.post(app.url("/admin/powerbi/validate")).header("cookie", &admin).form(&[("csrf", csrf.as_str())]);
    assert_eq!(validate.send().await.expect("POST").status(), StatusCode::SEE_OTHER);
    let (_, validated) = app.page(&admin, "/admin/powerbi").await;
    assert!(validated.contains("Entra ID accepted the Application ID and the client secret"), "{validated}");
    assert!(validated.contains("The configuration works."), "{validated}");

    let (_, settings) = app.page(&alice, "/settings").await;
    assert!(settings.contains(r#"id="get-started""#), "users can now connect");
}

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

/// Posts one of the configuration page's forms as `cookie`; gives the page it leads back to.
pub(crate) async fn post_form(app: &App, cookie: &str, path: &str, fields: &[(&str, &str)]) -> String {
    let (_, page) = app.page(cookie, "/admin/powerbi").await;
    let csrf = hidden(&page, "csrf").expect("csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let answer = app.http.post(app.url(path)).header("cookie", cookie).form(&form).send().await.expect("POST");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{path}");
    app.page(cookie, "/admin/powerbi").await.1
}

#[tokio::test]
async fn a_redirect_url_for_another_host_is_added_on_the_page_and_a_sign_in_there_comes_back_there() {
    let world = crate::connect::world().await;
    let app = &world.app;
    let admin = app.session("admin").await;
    let (_, page) = app.page(&admin, "/admin/powerbi").await;
    let own = app.url("/oauth/callback");
    assert!(
        page.contains(&format!(r#"<code id="redirect-url">{own}</code> <span class="badge badge-neutral">pbi-bridge's own</span>"#)),
        "{page}"
    );
    assert!(page.contains(r#"data-copy="registration-tenant""#) && page.contains(r#"data-copy="redirect-url""#), "Copy buttons");
    assert!(page.contains("0 active subscriptions pause at their next delivery"), "{page}");

    // The same server, reached by another name (as behind a second DNS name or a proxy that keeps Host).
    let port = url::Url::parse(app.server.base_url()).expect("url").port().expect("port");
    let host = format!("localhost:{port}");
    let other = format!("http://{host}/oauth/callback");
    let page = post_form(app, &admin, "/admin/powerbi/redirect-urls", &[("url", "http://bi.contoso.com/oauth/callback")]).await;
    assert!(page.contains("must use https (Entra ID allows http for localhost only)"), "{page}");
    let page = post_form(app, &admin, "/admin/powerbi/redirect-urls", &[("url", &other)]).await;
    assert!(page.contains(&format!("Added {other}. Add it to the app&#39;s Redirect URIs")), "{page}");
    assert!(page.contains(&format!(r#"id="redirect-url-2">{other}</code>"#)), "{page}");
    let page = post_form(app, &admin, "/admin/powerbi/redirect-urls/remove", &[("url", &own)]).await;
    assert!(page.contains("is pbi-bridge&#39;s own callback"), "{page}");
    let (audit, _) = app.store.audit_entries(None, 20).await.expect("audit");
    assert!(audit.iter().any(|e| e.entry.new_value.as_deref().is_some_and(|v| v.contains(&other))), "the change is audited: {audit:?}");

    // Alice opens pbi-bridge at that host: Entra is asked to come back there, and the sign-in completes there.
    world.sandbox.control(Command::AddRedirectUri { client_id: registered_client(app).await, uri: other.clone() }).expect("in Entra");
    let alice = app.session("alice").await;
    let back = world.get_started_at(&alice, "alice@contoso.onmicrosoft.com", "accept", Some(&host)).await;
    assert!(back.starts_with(&format!("{other}?")), "Entra sends the browser back to the host it came from: {back}");
    let callback = back.replacen(&format!("http://{host}"), app.server.base_url(), 1);
    let landed = app.http.get(&callback).header("cookie", &alice).header("host", &host).send().await.expect("callback");
    assert_eq!(landed.status(), StatusCode::SEE_OTHER, "the code is redeemed with the redirect URL it was issued for");
    assert_eq!(app.store.all_connections().await.expect("connections").len(), 1);

    let page = post_form(app, &admin, "/admin/powerbi/redirect-urls/remove", &[("url", &other)]).await;
    assert!(page.contains(&format!("Removed {other}.")) && !page.contains(&format!(">{other}</code>")), "{page}");
}

async fn registered_client(app: &App) -> uuid::Uuid {
    let registration = app.store.registrations(false).await.expect("registrations").remove(0);
    registration.details.client_id.parse().expect("a GUID")
}

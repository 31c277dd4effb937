//! The frame every page is drawn in, error pages included, and Post/Redirect/Get: an action answers 303,
//! the next page says what it did once, and a reload repeats nothing.

use crate::{App, PASSWORD, hidden};
use reqwest::StatusCode;

/// Which area a page belongs to: `Some("brand")` for the home page, `None` for a page of no area.
fn assert_framed(page: &str, what: &str, user: Option<(&str, bool)>, current: Option<&str>) {
    assert!(page.contains(r#"id="topbar""#) && page.contains(r#"id="brand""#) && page.contains("pbi-bridge</a>"), "{what}: a top bar");
    assert!(page.contains(r#"href="/static/pbi-bridge.css""#), "{what}: the stylesheet");
    match user {
        Some((name, admin)) => {
            assert!(page.contains(r#"id="areas""#), "{what}: the areas");
            for area in ["workspaces", "settings"] {
                assert!(page.contains(&format!(r#"id="area-{area}""#)), "{what}: the {area} area");
            }
            for area in ["powerbi", "users", "audit"] {
                assert_eq!(page.contains(&format!(r#"id="area-{area}""#)), admin, "{what}: the {area} area is for admins only");
            }
            assert!(page.contains(&format!(r#"id="user">{name}<"#)), "{what}: who is signed in");
            assert!(page.contains(r#"id="sign-out""#) && page.contains(r#"action="/logout""#), "{what}: Sign out");
        }
        None => {
            assert!(!page.contains(r#"id="areas""#) && !page.contains(r#"id="sign-out""#), "{what}: no user menu without a session");
            assert!(page.contains(r#"id="sign-in-link""#), "{what}: a way to sign in");
        }
    }
    assert!(page.matches(r#"aria-current="page""#).count() <= 1, "{what}: one current area at most");
    if let Some(current) = current {
        let marked = if current == "brand" {
            r#"id="brand" aria-current="page""#.to_owned()
        } else {
            format!(r#"id="area-{current}" aria-current="page""#)
        };
        assert!(page.contains(&marked), "{what}: {current} is marked as the current area");
    } else {
        assert!(!page.contains(r#"aria-current="page""#), "{what}: no area is current");
    }
}

#[tokio::test]
async fn every_page_and_every_error_page_has_the_frame() {
    let app = App::start().await;
    let alice = app.session("alice").await;
    let admin = app.session("admin").await;

    // The pages each reaches.
    let (_, workspaces) = app.page(&alice, "/workspaces").await;
    let csrf = hidden(&workspaces, "csrf").expect("csrf");
    let created = app
        .http
        .post(app.url("/workspaces"))
        .header("cookie", &alice)
        .form(&[("csrf", csrf.as_str()), ("name", "Sales")])
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let workspace = created.headers()["location"].to_str().expect("ascii").to_owned();
    for (path, current) in [
        ("/", Some("brand")),
        ("/workspaces", Some("workspaces")),
        (workspace.as_str(), Some("workspaces")),
        ("/settings", Some("settings")),
        ("/api/docs", None),
    ] {
        let (status, page) = app.page(&alice, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_framed(&page, path, Some(("Alice Johnson", false)), current);
    }
    for (path, current) in [
        ("/", "brand"),
        ("/workspaces", "workspaces"),
        ("/settings", "settings"),
        ("/admin/powerbi", "powerbi"),
        ("/admin/users", "users"),
        ("/admin/audit", "audit"),
        ("/admin/apps", "apps"),
    ] {
        let (status, page) = app.page(&admin, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_framed(&page, path, Some(("Contoso Admin", true)), Some(current));
    }
    let (_, login) = app.page("", "/login").await;
    assert_framed(&login, "the sign-in page", None, None);

    // Error pages, signed in: each in the frame, with its status and a way home.
    let other = format!("/workspaces/{}", uuid::Uuid::new_v4());
    let pin = format!("{workspace}/pin");
    for (path, status, current) in [
        ("/nowhere/at/all", StatusCode::NOT_FOUND, None),
        (other.as_str(), StatusCode::NOT_FOUND, Some("workspaces")),
        // Not an area of hers: none is marked.
        ("/admin/powerbi", StatusCode::FORBIDDEN, None),
        ("/admin/users", StatusCode::FORBIDDEN, None),
        (pin.as_str(), StatusCode::OK, Some("workspaces")),
        ("/workspaces/not-an-id", StatusCode::BAD_REQUEST, Some("workspaces")),
    ] {
        let (answered, page) = app.page(&alice, path).await;
        assert_eq!(answered, status, "{path}: {page}");
        assert_framed(&page, path, Some(("Alice Johnson", false)), current);
        assert!(page.contains(r#"id="go-home""#) || page.contains(r#"id="problem""#), "{path}: a way home: {page}");
    }
    // Not yet connected to Power BI: pinning is refused with 409.
    let pinned = app
        .http
        .post(app.url(&pin))
        .header("cookie", &alice)
        .form(&[("csrf", csrf.as_str()), ("tile", "me|00000000-0000-0000-0000-000000000001|00000000-0000-0000-0000-000000000002")])
        .send()
        .await
        .expect("POST");
    assert_eq!(pinned.status(), StatusCode::CONFLICT);
    assert_framed(&pinned.text().await.expect("page"), "a 409", Some(("Alice Johnson", false)), Some("workspaces"));
    // A CSRF refusal ("form expired") and "Check what you entered".
    let expired = app
        .http
        .post(app.url("/settings/tokens"))
        .header("cookie", &alice)
        .form(&[("csrf", "stale"), ("name", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    let page = expired.text().await.expect("page");
    assert!(page.contains("This form expired"), "{page}");
    assert_framed(&page, "the CSRF refusal", Some(("Alice Johnson", false)), Some("settings"));
    let refused = app
        .http
        .post(app.url("/admin/users/not-an-id/disable"))
        .header("cookie", &admin)
        .form(&[("csrf", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.expect("page");
    assert!(page.contains("Check what you entered"), "{page}");
    assert_framed(&page, "a malformed address", Some(("Contoso Admin", true)), Some("users"));

    // Without a session: the frame without the user menu; the API keeps its JSON 404.
    let (status, page) = app.page("", "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("Page not found") && page.contains(r#"id="go-home""#), "{page}");
    assert_framed(&page, "an unknown address without a session", None, None);
    let api = app.http.get(app.url("/api/v1/nowhere")).send().await.expect("GET");
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = api.json().await.expect("the API answers JSON");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}

/// The message bar a page shows once (`id="message"`), or nothing.
fn message(page: &str) -> Option<String> {
    let start = page.find(r#"id="message"><p>"#)? + r#"id="message"><p>"#.len();
    Some(page[start..start + page[start..].find("</p>")?].to_owned())
}

#[tokio::test]
async fn a_reload_after_an_action_repeats_nothing_and_the_message_is_shown_once() {
    let app = App::start().await;
    let alice = app.session("alice").await;
    let admin = app.session("admin").await;

    // Make a token: 303; the next GET shows the token and says so; a reload shows neither and makes none.
    let (_, settings) = app.page(&alice, "/settings").await;
    let csrf = hidden(&settings, "csrf").expect("csrf");
    let made = app
        .http
        .post(app.url("/settings/tokens"))
        .header("cookie", &alice)
        .form(&[("csrf", csrf.as_str()), ("name", "nightly"), ("expires_in_days", "30")])
        .send()
        .await
        .expect("POST");
    assert_eq!((made.status(), made.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, "/settings#api-tokens"));
    let location_and_cookies = format!("{:?}", made.headers());
    let (_, first) = app.page(&alice, "/settings").await;
    let start = first.find(r#"id="new-token-value">"#).expect("the token is shown") + r#"id="new-token-value">"#.len();
    let token = &first[start..start + first[start..].find('<').expect("end")];
    assert!(token.starts_with("pbb_") && !location_and_cookies.contains(token), "never in the redirect or a cookie");
    assert_eq!(message(&first).as_deref(), Some("Made the API token “nightly”."));
    assert!(first.contains("expires in 30 days"), "how long it lasts, in words");
    let (_, again) = app.page(&alice, "/settings").await;
    assert!(!again.contains(token) && !again.contains(r#"id="new-token""#) && message(&again).is_none(), "shown once");
    assert_eq!(again.matches(r#"<tr class="token">"#).count(), 1, "a reload made no second token");

    // A form with a mistake keeps what was typed and names the field next to it.
    let wrong = app
        .http
        .post(app.url("/settings/tokens"))
        .header("cookie", &alice)
        .form(&[("csrf", csrf.as_str()), ("name", "weekly"), ("expires_in_days", "999")])
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let page = wrong.text().await.expect("page");
    assert!(page.contains(r#"value="weekly""#) && page.contains(r#"value="999""#), "kept what was typed");
    assert!(page.contains(r#"id="token-days-error">A token lives 1 to 366 days"#), "the error sits by its field");

    // Validate (nothing saved yet: its refusal) and Set password: 303, said once on the next page.
    let (_, config) = app.page(&admin, "/admin/powerbi").await;
    let csrf = hidden(&config, "csrf").expect("csrf");
    let validated = app
        .http
        .post(app.url("/admin/powerbi/validate"))
        .header("cookie", &admin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!((validated.status(), validated.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, "/admin/powerbi"));
    let (_, first) = app.page(&admin, "/admin/powerbi").await;
    assert_eq!(message(&first).as_deref(), Some("Save a configuration first."));
    let (_, again) = app.page(&admin, "/admin/powerbi").await;
    assert!(message(&again).is_none(), "said once");

    let alice_id = app.store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice").id;
    let set = app
        .http
        .post(app.url(&format!("/admin/users/{alice_id}/password")))
        .header("cookie", &admin)
        .form(&[("csrf", csrf.as_str()), ("password", "a brand new password")])
        .send()
        .await
        .expect("POST");
    assert_eq!((set.status(), set.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, "/admin/users"));
    let (_, first) = app.page(&admin, "/admin/users").await;
    assert_eq!(message(&first).as_deref(), Some("Set a new password for alice; they are signed out everywhere."));
    let (_, again) = app.page(&admin, "/admin/users").await;
    assert!(message(&again).is_none(), "said once");

    // Adding a user with a mistake keeps the name typed; a wrong password keeps the user name.
    let added = app
        .http
        .post(app.url("/admin/users"))
        .header("cookie", &admin)
        .form(&[("csrf", csrf.as_str()), ("username", "Alice"), ("display_name", "Another Alice"), ("password", PASSWORD)])
        .send()
        .await
        .expect("POST");
    assert_eq!(added.status(), StatusCode::BAD_REQUEST);
    let page = added.text().await.expect("page");
    assert!(page.contains(r#"value="Alice""#) && page.contains(r#"value="Another Alice""#), "kept what was typed");
    assert!(page.contains(r#"id="new-username-error">A user named"#), "the error sits by its field: {page}");
    let wrong = app.sign_in("bob", "not bob's password", "/").await;
    assert!(wrong.text().await.expect("page").contains(r#"value="bob""#), "the user name stays after a wrong password");

    // Signing out says so on the sign-in page, once.
    let bob = app.session("bob").await;
    let (_, home) = app.page(&bob, "/").await;
    let csrf = hidden(&home, "csrf").expect("csrf");
    let out = app.http.post(app.url("/logout")).header("cookie", &bob).form(&[("csrf", csrf.as_str())]).send().await.expect("POST");
    let signed_out = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("pbi_signed_out=1"))
        .and_then(|c| c.split(';').next())
        .expect("a note for the sign-in page")
        .to_owned();
    let (_, login) = app.page(&signed_out, "/login").await;
    assert_eq!(message(&login).as_deref(), Some("You are signed out."));
    let (_, login) = app.page("", "/login").await;
    assert!(message(&login).is_none());
}

#[tokio::test]
async fn the_api_documentation_renders_its_markdown_and_says_each_shared_error_once() {
    let app = App::start().await;
    let (status, page) = app.page("", "/api/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<code>Authorization: Bearer &lt;token&gt;</code>"), "code spans are rendered");
    assert!(!page.contains('`'), "no Markdown shows literally");
    assert!(page.contains("$PBI_BRIDGE_API_TOKEN") && !page.contains("$PBI_BRIDGE_TOKEN "), "the API token's variable");
    assert_eq!(page.matches("No valid API token or session.").count(), 1, "a shared error is described once");
    assert!(page.contains(r##"<a href="#error-401">401</a>"##), "and linked from each operation");
}

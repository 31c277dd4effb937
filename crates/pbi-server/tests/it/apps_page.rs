//! The Apps pages (seed 002): administrators only; an app's secret key shown once, on the page the answer
//! leads to; a refused form keeps what was typed; a rotation shows the new key once and dates the old one.

use reqwest::StatusCode;

/// Posts a form of the Apps pages as `cookie`; gives the answer.
async fn submit(app: &crate::App, cookie: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (_, page) = app.page(cookie, "/admin/apps").await;
    let csrf = crate::hidden(&page, "csrf").expect("csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    app.http.post(app.url(path)).header("cookie", cookie).form(&form).send().await.expect("POST")
}

/// The secret key a page shows, if it shows one.
fn shown_key(page: &str) -> Option<String> {
    let start = page.find(r#"id="new-key-value">"#)? + r#"id="new-key-value">"#.len();
    Some(page[start..start + page[start..].find('<')?].to_owned())
}

#[tokio::test]
async fn an_admin_makes_an_app_sees_its_key_once_and_rotates_it() {
    let world = crate::connect::world().await;
    let app = &world.app;
    let alice = app.session("alice").await;
    assert_eq!(app.page(&alice, "/admin/apps").await.0, StatusCode::FORBIDDEN);
    let admin = app.session("admin").await;
    let (status, page) = app.page(&admin, "/admin/apps").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="no-apps""#) && page.contains(r#"aria-current="page""#) && page.contains(">Apps<"), "{page}");
    let registration = app.store.registrations(false).await.expect("registrations").remove(0).id.to_string();

    let refused =
        submit(app, &admin, "/admin/apps", &[("name", "ERP"), ("registration", &registration), ("origins", "http://erp.example.com")])
            .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused = refused.text().await.expect("page");
    assert!(refused.contains("must use https") && refused.contains(r#"value="ERP""#), "keeps what was typed: {refused}");

    let origins = "https://erp.example.com\n\nhttp://localhost:3000";
    let made = submit(app, &admin, "/admin/apps", &[("name", "ERP"), ("registration", &registration), ("origins", origins)]).await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let location = made.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(!location.contains("pbs_"), "never in a URL");
    let (_, page) = app.page(&admin, &location).await;
    let key = shown_key(&page).expect("the key, once");
    assert!(key.starts_with("pbs_") && page.contains("Made the app &#39;ERP&#39;."), "{page}");
    assert!(page.contains("https://erp.example.com http://localhost:3000") && page.contains("In use"), "{page}");
    let (_, again) = app.page(&admin, &location).await;
    assert_eq!(shown_key(&again), None, "a reload shows it no more");
    assert!(!again.contains(&key[8..]));
    let (_, list) = app.page(&admin, "/admin/apps").await;
    assert!(list.contains(&format!(r#"<a href="{location}">ERP</a>"#)), "{list}");

    let rotated = submit(app, &admin, &format!("{location}/keys"), &[("overlap_hours", "2")]).await;
    assert_eq!(rotated.status(), StatusCode::SEE_OTHER);
    let (_, page) = app.page(&admin, &location).await;
    let second = shown_key(&page).expect("the new key, once");
    assert_ne!(second, key);
    assert!(page.contains("the older keys keep working 2 more hours") && page.matches(r#"class="key""#).count() == 2, "{page}");
    let bad = submit(app, &admin, &format!("{location}/keys"), &[("overlap_hours", "1000")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.expect("page").contains("0 to 720 hours"));

    let bad = submit(app, &admin, &location, &[("name", "ERP 2"), ("registration", &registration), ("origins", "ftp://erp")]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad = bad.text().await.expect("page");
    assert!(bad.contains("must use https") && bad.contains(r#"value="ERP 2""#), "keeps what was typed: {bad}");
    let fields = [("name", "ERP 2"), ("registration", registration.as_str()), ("origins", "https://erp2.example.com")];
    let saved = submit(app, &admin, &location, &fields).await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let (_, page) = app.page(&admin, &location).await;
    assert!(
        page.contains("Saved the app &#39;ERP 2&#39;.") && page.contains("<h1>ERP 2</h1>") && page.contains("https://erp2.example.com"),
        "{page}"
    );
    let deleted = submit(app, &admin, &format!("{location}/delete"), &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let (_, list) = app.page(&admin, "/admin/apps").await;
    assert!(list.contains("Deleted the app") && list.contains(r#"id="no-apps""#), "{list}");
    assert_eq!(app.page(&admin, &location).await.0, StatusCode::NOT_FOUND);
}

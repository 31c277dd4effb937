//! The Power BI service's pages for what only a person does, at the API's `webUrl`s: sign in on the page,
//! open a dataset, Create report, build a visual and pin it to a dashboard; what others may not do there.

use crate::clones::{alices_pin_target, id, ok, token};
use crate::support::*;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

/// Signs `upn` in on the pages' own form (coming back to `back`); the session cookie.
async fn signed_in(t: &TestSandbox, upn: &str, back: &str) -> String {
    let password = format!("{}-password", upn.split('@').next().unwrap_or(upn));
    let answer = t
        .http
        .post(t.url("/sandbox-web/sign-in"))
        .form(&[("login", upn), ("passwd", &password), ("back", back)])
        .send()
        .await
        .expect("POST");
    assert_eq!((answer.status(), location(&answer)), (StatusCode::SEE_OTHER, back.to_owned()));
    let cookie = answer.headers()[header::SET_COOKIE].to_str().expect("ascii");
    cookie.split(';').next().expect("name=value").to_owned()
}

async fn page(t: &TestSandbox, cookie: Option<&str>, path: &str) -> (StatusCode, String) {
    let mut request = t.http.get(t.url(path));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let answer = request.send().await.expect("GET");
    (answer.status(), answer.text().await.expect("page"))
}

async fn post(t: &TestSandbox, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    t.http.post(t.url(path)).header(header::COOKIE, cookie).form(form).send().await.expect("POST")
}

#[tokio::test]
async fn a_person_creates_a_report_on_a_dataset_and_pins_a_visual_from_its_page() {
    let t = TestSandbox::start().await;
    let alice = token(&t, "alice@contoso.onmicrosoft.com").await;
    let (ws, ds) = alices_pin_target(&t, &alice).await;
    let dashboard = id(&ok(&t, &alice, Method::POST, &format!("/groups/{ws}/dashboards"), json!({"name": "Templates"})).await);
    let (_, dataset) = t.api_get(&alice, &format!("/groups/{ws}/datasets/{ds}")).await;
    let dataset_url = dataset["webUrl"].as_str().expect("webUrl").to_owned();
    let dataset_path = dataset_url.strip_prefix(t.sandbox.base_url()).expect("on the sandbox").to_owned();

    // Not signed in: the page asks; a wrong password is refused.
    let (status, asked) = page(&t, None, &dataset_path).await;
    assert!(status == StatusCode::OK && asked.contains(r#"id="sign-in""#), "{asked}");
    let wrong = t
        .http
        .post(t.url("/sandbox-web/sign-in"))
        .form(&[("login", "alice@contoso.onmicrosoft.com"), ("passwd", "nope"), ("back", dataset_path.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("page").contains("Your account or password is incorrect."));
    let cookie = signed_in(&t, "alice@contoso.onmicrosoft.com", &dataset_path).await;

    // The dataset's page; Create report opens the new report's page.
    let (status, shown) = page(&t, Some(&cookie), &dataset_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(shown.contains("<b>Sales</b>: <code>Amount</code>, <code>Region</code>, <code>Date</code>"), "{shown}");
    let created = post(&t, &cookie, &dataset_path, &[]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let report_path = location(&created);
    let report = report_path.rsplit('/').next().expect("id").to_owned();
    assert_eq!(report_path, format!("/groups/{ws}/reports/{report}"));
    let (_, api_report) = t.api_get(&alice, &format!("/groups/{ws}/reports/{report}")).await;
    assert_eq!((api_report["datasetId"].as_str(), api_report["webUrl"].as_str()), (Some(ds.as_str()), Some(t.url(&report_path).as_str())));
    let (_, shown) = page(&t, Some(&cookie), &report_path).await;
    assert!(shown.contains(&format!(r#"<option value="{dashboard}">Templates (Pins)</option>"#)), "{shown}");

    // A visual on a column the dataset lacks is refused; the bar chart is pinned.
    let bar =
        |value: &'static str| vec![("visual", "bar"), ("table", "Sales"), ("value", value), ("category", "Region"), ("title", "By region")];
    let mut wrong = bar("Nope");
    wrong.push(("dashboard", dashboard.as_str()));
    let refused = post(&t, &cookie, &report_path, &wrong).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("page").contains("no column &#39;Nope&#39;"));
    let mut good = bar("Amount");
    good.push(("dashboard", dashboard.as_str()));
    let pinned = post(&t, &cookie, &report_path, &good).await;
    assert_eq!((pinned.status(), location(&pinned)), (StatusCode::SEE_OTHER, format!("{report_path}?pinned=Templates")));
    let (_, shown) = page(&t, Some(&cookie), &location(&pinned)).await;
    assert!(shown.contains("Pinned to Templates."), "{shown}");
    let (_, tiles) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}/tiles")).await;
    let tiles = tiles["value"].as_array().expect("tiles").clone();
    assert_eq!(tiles.len(), 1, "{tiles:?}");
    assert_eq!(
        (tiles[0]["reportId"].as_str(), tiles[0]["datasetId"].as_str(), tiles[0]["title"].as_str()),
        (Some(report.as_str()), Some(ds.as_str()), Some("By region"))
    );

    // The dashboard's page draws the tile from the dataset's rows as they are now.
    let (_, board) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}")).await;
    let board_path = board["webUrl"].as_str().and_then(|u| u.strip_prefix(t.sandbox.base_url())).expect("webUrl").to_owned();
    let (status, drawn) = page(&t, Some(&cookie), &board_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        drawn.contains(r#"<section class="tile" data-title="By region"><h2>By region</h2><ul class="points"><li data-label="East" data-value="5">East: 5</li><li data-label="West" data-value="7">"#),
        "{drawn}"
    );
    ok(
        &t,
        &alice,
        Method::POST,
        &format!("/groups/{ws}/datasets/{ds}/tables/Sales/rows"),
        json!({"rows": [{"Amount": 1.5, "Region": "East", "Date": "2026-12-03T00:00:00Z"}]}),
    )
    .await;
    let (_, drawn) = page(&t, Some(&cookie), &board_path).await;
    assert!(drawn.contains(r#"data-label="East" data-value="6.5""#), "new rows are drawn at once: {drawn}");

    // Bob is not in Alice's workspace: her dataset and report do not exist for him, and he pins nothing.
    let bob = signed_in(&t, "bob@contoso.onmicrosoft.com", &report_path).await;
    assert_eq!(page(&t, Some(&bob), &dataset_path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&t, Some(&bob), &report_path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(page(&t, Some(&bob), &board_path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(post(&t, &bob, &dataset_path, &[]).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(post(&t, &bob, &report_path, &good).await.status(), StatusCode::BAD_REQUEST);
    // Another site's page cannot post these forms in Alice's name.
    let forged = t
        .http
        .post(t.url(&report_path))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "https://evil.example")
        .form(&good)
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let (_, tiles) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}/tiles")).await;
    assert_eq!(tiles["value"].as_array().map(Vec::len), Some(1), "nothing more was pinned");
}

//! Workspaces and pinned tiles: each user pins from their own Power BI content and sees only their own pages.

use crate::connect::{World, world};
use crate::hidden;
use reqwest::StatusCode;

impl World {
    /// Signs `user` in, connects their Power BI account through the sandbox and returns their session cookie.
    pub(crate) async fn connected(&self, user: &str) -> String {
        let cookie = self.app.session(user).await;
        let back = self.get_started(&cookie, &format!("{user}@contoso.onmicrosoft.com")).await;
        let landed = self.app.http.get(&back).header("cookie", &cookie).send().await.expect("GET");
        assert_eq!(landed.status(), StatusCode::SEE_OTHER, "{user} connected");
        cookie
    }

    pub(crate) async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.app.http.post(self.app.url(path)).header("cookie", cookie).form(form).send().await.expect("POST")
    }

    /// Creates a workspace and returns its path.
    pub(crate) async fn new_workspace(&self, cookie: &str, name: &str) -> String {
        let (_, page) = self.app.page(cookie, "/workspaces").await;
        let csrf = hidden(&page, "csrf").expect("csrf");
        let created = self.post(cookie, "/workspaces", &[("csrf", csrf.as_str()), ("name", name)]).await;
        assert_eq!(created.status(), StatusCode::SEE_OTHER);
        created.headers()["location"].to_str().expect("ascii").to_owned()
    }
}

/// The (key, title) of every tile offered on a pin page.
pub(crate) fn offered(page: &str) -> Vec<(String, String)> {
    page.split(r#"name="tile" value=""#)
        .skip(1)
        .map(|rest| {
            let key = rest[..rest.find('"').expect("end of key")].to_owned();
            let label = &rest[rest.find("<label").expect("label")..];
            let title = label[label.find('>').expect(">") + 1..label.find("</label>").expect("</label>")].to_owned();
            (key, title)
        })
        .collect()
}

pub(crate) fn key_of<'a>(tiles: &'a [(String, String)], title: &str) -> &'a str {
    &tiles.iter().find(|(_, t)| t == title).unwrap_or_else(|| panic!("{title} is offered in {tiles:?}")).0
}

#[tokio::test]
async fn a_user_pins_their_own_tiles_and_the_workspace_draws_them() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Sales floor").await;

    let (status, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    assert_eq!(status, StatusCode::OK);
    let tiles = offered(&pin_page);
    let titles: Vec<&str> = tiles.iter().map(|(_, t)| t.as_str()).collect();
    for expected in ["Total Sales", "Sales by Region", "Sales by Month", "Recent Sales"] {
        assert!(titles.contains(&expected), "Alice is an admin of Sales Analytics: {titles:?}");
    }
    assert!(!titles.contains(&"Actual Spend"), "Finance is Bob's workspace, not Alice's: {titles:?}");
    assert!(pin_page.contains("Sales Overview") && pin_page.contains("Sales Analytics"), "dashboard and workspace are named");

    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    let form = [("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Total Sales")), ("tile", key_of(&tiles, "Sales by Month"))];
    let pinned = world.post(&alice, &format!("{workspace}/pin"), &form).await;
    assert_eq!((pinned.status(), pinned.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, workspace.as_str()));

    let (status, page) = world.app.page(&alice, &workspace).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="workspace-name">Sales floor<"#), "{page}");
    let total = page.find(r#"data-title="Total Sales""#).expect("Total Sales drawn");
    let by_month = page.find(r#"data-title="Sales by Month""#).expect("Sales by Month drawn");
    assert!(total < by_month, "tiles are drawn in the order they were pinned");
    assert!(page.contains(r#"data-rows="2" data-cols="3""#), "a tile keeps its Power BI size");
    assert_eq!(page.matches(r#"<iframe class="tile-frame""#).count(), 2);
    assert!(
        page.contains(&format!(r#"data-src="{}/embed?dashboardId="#, world.sandbox.base_url())),
        "the frame is the tile's embed URL: {page}"
    );

    let pin = hidden_attribute(&page, "data-pin").expect("a pin id");
    let token = world
        .app
        .http
        .get(world.app.url(&format!("/api/v1{workspace}/pins/{pin}/token")))
        .header("cookie", &alice)
        .send()
        .await
        .expect("GET");
    assert_eq!(token.status(), StatusCode::OK);
    assert_eq!(token.headers()["cache-control"], "no-store");
    let body: serde_json::Value = token.json().await.expect("JSON");
    assert!(body["accessToken"].as_str().is_some_and(|t| t.split('.').count() == 3), "a JWT for drawing the tile");
    assert!(body["renewInSeconds"].as_i64().is_some_and(|s| s >= 60));
}

fn hidden_attribute(html: &str, attribute: &str) -> Option<String> {
    let marker = format!(r#"{attribute}=""#);
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

#[tokio::test]
async fn another_user_cannot_see_use_or_change_a_workspace_that_is_not_theirs() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let bob = world.connected("bob").await;
    let workspace = world.new_workspace(&alice, "Alice's page").await;
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Total Sales"))]).await;
    let (_, page) = world.app.page(&alice, &workspace).await;
    let pin = hidden_attribute(&page, "data-pin").expect("pin");

    let (_, bobs_list) = world.app.page(&bob, "/workspaces").await;
    assert!(!bobs_list.contains("Alice&#x27;s page") && !bobs_list.contains("Alice's page"), "{bobs_list}");
    for path in [workspace.clone(), format!("{workspace}/pin"), format!("/api/v1{workspace}/pins/{pin}/token")] {
        let (status, body) = world.app.page(&bob, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(!body.contains("Total Sales") && !body.contains("accessToken"), "{path}: {body}");
    }
    let (_, bobs_page) = world.app.page(&bob, "/workspaces").await;
    let bob_csrf = hidden(&bobs_page, "csrf").expect("csrf");
    for (path, extra) in [
        (format!("{workspace}/pins/{pin}/remove"), None),
        (format!("{workspace}/pins/{pin}/move"), Some(("direction", "up"))),
        (format!("{workspace}/filter"), Some(("company", "USMF"))),
        (format!("{workspace}/pin"), Some(("tile", key_of(&tiles, "Sales by Region")))),
    ] {
        let mut form = vec![("csrf", bob_csrf.as_str())];
        form.extend(extra);
        assert_eq!(world.post(&bob, &path, &form).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let (_, unchanged) = world.app.page(&alice, &workspace).await;
    assert_eq!(unchanged.matches(r#"<iframe class="tile-frame""#).count(), 1, "Alice's pin is still there and nothing was added");
    assert!(unchanged.contains(r#"id="company" name="company" value="""#), "the filter was not set");

    // A key Bob makes up for a tile he cannot see in Power BI is refused by Power BI, as Bob.
    let bobs_workspace = world.new_workspace(&bob, "Bob's page").await;
    let (_, bob_pin_page) = world.app.page(&bob, &format!("{bobs_workspace}/pin")).await;
    let bob_tiles = offered(&bob_pin_page);
    assert!(bob_tiles.iter().any(|(_, t)| t == "Actual Spend"), "{bob_tiles:?}");
    let operations = pbi_sandbox::demo_id("ws:operations");
    let (alice_only, _) = tiles.iter().find(|(k, _)| k.starts_with(&operations.to_string())).expect("an Operations tile Alice can see");
    let refused = world.post(&bob, &format!("{bobs_workspace}/pin"), &[("csrf", bob_csrf.as_str()), ("tile", alice_only)]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("page").contains("cannot be pinned"));
    let (_, bobs) = world.app.page(&bob, &bobs_workspace).await;
    assert!(bobs.contains(r#"id="no-pins""#), "nothing was pinned: {bobs}");
}

#[tokio::test]
async fn unpinning_filtering_and_bad_input() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Filtered").await;
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Recent Sales"))]).await;

    for bad in ["not-a-tile", "me|x|y", "nope|00000000-0000-0000-0000-000000000000|00000000-0000-0000-0000-000000000000"] {
        let response = world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", bad)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let forged = world.post(&alice, &format!("{workspace}/pin"), &[("csrf", "forged"), ("tile", key_of(&tiles, "Total Sales"))]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let filtered = world.post(&alice, &format!("{workspace}/filter"), &[("csrf", csrf.as_str()), ("company", " USMF ")]).await;
    assert_eq!(filtered.status(), StatusCode::SEE_OTHER);
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert!(page.contains(r#"id="company" name="company" value="USMF""#), "{page}");

    let pin = hidden_attribute(&page, "data-pin").expect("pin");
    let removed = world.post(&alice, &format!("{workspace}/pins/{pin}/remove"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert!(page.contains(r#"id="no-pins""#));
    let again = world.post(&alice, &format!("{workspace}/pins/{pin}/remove"), &[("csrf", csrf.as_str())]).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    let (_, list) = world.app.page(&alice, "/workspaces").await;
    for name in ["", "   ", &"x".repeat(101)] {
        let response = world.post(&alice, "/workspaces", &[("csrf", hidden(&list, "csrf").expect("csrf").as_str()), ("name", name)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name:?}");
    }
    let (status, _) = world.app.page(&alice, "/workspaces/not-a-uuid").await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn pinning_before_connecting_says_what_to_do() {
    let world = world().await;
    let alice = world.app.session("alice").await;
    let workspace = world.new_workspace(&alice, "Before connecting").await;
    let (status, page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="problem""#) && page.contains("open My settings and click Get started"), "{page}");
}

/// The titles of the drawn tiles, in page order.
fn drawn(page: &str) -> Vec<&str> {
    page.split(r#"class="tile dash-tile" id="pin-"#).skip(1).filter_map(|t| t.split(r#"data-title=""#).nth(1)?.split('"').next()).collect()
}

#[tokio::test]
async fn tiles_are_reordered_one_place_at_a_time() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Ordered").await;
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend(["Total Sales", "Sales by Region", "Recent Sales"].map(|t| ("tile", key_of(&tiles, t))));
    world.post(&alice, &format!("{workspace}/pin"), &form).await;
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert_eq!(drawn(&page), ["Total Sales", "Sales by Region", "Recent Sales"]);

    let pin_of = |page: &str, title: &str| {
        let at = page.find(&format!(r#"data-title="{title}""#)).expect("tile");
        let start = page[..at].rfind(r#"id="pin-"#).expect("pin id") + r#"id="pin-"#.len();
        page[start..start + 36].to_owned()
    };
    let recent = pin_of(&page, "Recent Sales");
    let moved = world.post(&alice, &format!("{workspace}/pins/{recent}/move"), &[("csrf", csrf.as_str()), ("direction", "up")]).await;
    assert_eq!(moved.status(), StatusCode::SEE_OTHER);
    world.post(&alice, &format!("{workspace}/pins/{recent}/move"), &[("csrf", csrf.as_str()), ("direction", "up")]).await;
    world.post(&alice, &format!("{workspace}/pins/{recent}/move"), &[("csrf", csrf.as_str()), ("direction", "up")]).await;
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert_eq!(drawn(&page), ["Recent Sales", "Total Sales", "Sales by Region"], "moving past the top stays at the top");

    let bad = world.post(&alice, &format!("{workspace}/pins/{recent}/move"), &[("csrf", csrf.as_str()), ("direction", "sideways")]).await;
    assert!(bad.status().is_client_error());
    let unknown = uuid::Uuid::new_v4();
    let missing = world.post(&alice, &format!("{workspace}/pins/{unknown}/move"), &[("csrf", csrf.as_str()), ("direction", "up")]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// A pbi-bridge user with the tests' password, for a Power BI user the demo seed or the test made.
async fn add_user(world: &World, name: &str) {
    let hash = pbi_server::users::hash_password(&secrecy::SecretString::from(crate::PASSWORD.to_owned())).expect("hash");
    world.app.store.add_user(name, name, &hash, false, world.app.clock.unix()).await.expect("user");
}

#[tokio::test]
async fn seed_000_troubleshooting_an_account_without_dashboards_and_one_without_a_license() {
    let world = world().await;
    world
        .sandbox
        .control(pbi_sandbox::Command::CreateUser {
            id: None,
            tenant: pbi_sandbox::demo_id("tenant:contoso"),
            upn: "erin@contoso.onmicrosoft.com".into(),
            display_name: Some("Erin Empty".into()),
            password: "erin-password".into(),
            power_bi_licensed: true,
            power_bi_admin: false,
            directory_admin: false,
        })
        .expect("user");
    add_user(&world, "erin").await;
    let erin = world.connected("erin").await;
    let workspace = world.new_workspace(&erin, "Nothing to pin").await;
    let (status, page) = world.app.page(&erin, &format!("{workspace}/pin")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="empty""#) && page.contains("might not have a dashboard or any tiles"), "{page}");

    add_user(&world, "carol").await;
    let carol = world.connected("carol").await;
    let workspace = world.new_workspace(&carol, "Unlicensed").await;
    let (status, page) = world.app.page(&carol, &format!("{workspace}/pin")).await;
    assert_eq!(status, StatusCode::OK);
    let problem = page.split(r#"id="problem"><p>"#).nth(1).and_then(|p| p.split("</p>").next()).unwrap_or_else(|| panic!("{page}"));
    assert!(problem.contains("no Power BI license") && problem.contains("Microsoft 365 admin center"), "{problem}");
    assert!(!page.contains("eyJ"), "no token on the page");
}

/// HTML text with the apostrophes the templates escape put back.
fn unescaped(html: &str) -> String {
    html.replace("&#x27;", "'").replace("&#39;", "'")
}

/// The message bar's text on a page (`id="message"`), if it shows one.
fn message(page: &str) -> Option<String> {
    let start = page.find(r#"id="message""#)?;
    let text = &page[start..];
    let text = &text[text.find("<p>")? + 3..];
    Some(unescaped(&text[..text.find("</p>")?]))
}

/// POSTs a form, expects 303, follows it once and returns (where it went, the message it showed); a second GET
/// of the same page (a reload) must show no message and change nothing.
async fn act(world: &World, cookie: &str, path: &str, form: &[(&str, &str)]) -> (String, String) {
    let answered = world.post(cookie, path, form).await;
    assert_eq!(answered.status(), StatusCode::SEE_OTHER, "{path}: {}", answered.text().await.unwrap_or_default());
    let to = answered.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(!to.contains('?'), "the message is not in the URL: {to}");
    let (status, page) = world.app.page(cookie, &to).await;
    assert_eq!(status, StatusCode::OK);
    let said = message(&page).unwrap_or_else(|| panic!("{path} says what it did: {page}"));
    let (_, reloaded) = world.app.page(cookie, &to).await;
    assert_eq!(message(&reloaded), None, "a reload shows the message no more");
    assert_eq!(drawn(&reloaded), drawn(&page), "and changes nothing");
    (to, said)
}

/// The body of a refused form post, with its status.
async fn refused(world: &World, cookie: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let answered = world.post(cookie, path, form).await;
    let status = answered.status();
    (status, unescaped(&answered.text().await.expect("page")))
}

#[tokio::test]
async fn every_workspace_action_answers_303_and_the_next_page_says_what_it_did_once() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let (_, list) = world.app.page(&alice, "/workspaces").await;
    let csrf = hidden(&list, "csrf").expect("csrf");
    let csrf = csrf.as_str();
    let (workspace, said) = act(&world, &alice, "/workspaces", &[("csrf", csrf), ("name", "Board")]).await;
    assert_eq!(said, "Workspace 'Board' created: pin Power BI tiles to it.");

    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let form = [("csrf", csrf), ("tile", key_of(&tiles, "Total Sales")), ("tile", key_of(&tiles, "Sales by Region"))];
    let (to, said) = act(&world, &alice, &format!("{workspace}/pin"), &form).await;
    assert_eq!((to.as_str(), said.as_str()), (workspace.as_str(), "Pinned 'Total Sales' and 'Sales by Region'."));
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert_eq!(drawn(&page), ["Total Sales", "Sales by Region"], "pinned once, however often the page was loaded");
    let region = page[page.find(r#"data-title="Sales by Region""#).expect("tile")..]
        .split(r#"data-pin=""#)
        .nth(1)
        .and_then(|p| p.split('"').next())
        .expect("pin id")
        .to_owned();

    let (_, said) = act(&world, &alice, &format!("{workspace}/pins/{region}/move"), &[("csrf", csrf), ("direction", "up")]).await;
    assert_eq!(said, "Moved 'Sales by Region' earlier.");
    let (_, said) = act(&world, &alice, &format!("{workspace}/pins/{region}/move"), &[("csrf", csrf), ("direction", "up")]).await;
    assert_eq!(said, "'Sales by Region' is already first.");
    let (_, said) = act(&world, &alice, &format!("{workspace}/filter"), &[("csrf", csrf), ("company", "USMF")]).await;
    assert_eq!(said, "Showing company USMF only.");
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert!(page.contains(r#"id="filter-badge">Filtered: company USMF<"#), "the page shows the filter is on: {page}");
    let (_, said) = act(&world, &alice, &format!("{workspace}/filter"), &[("csrf", csrf), ("company", "")]).await;
    assert_eq!(said, "Showing all companies.");
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert!(!page.contains(r#"id="filter-badge""#), "and when it is off");
    let (_, said) = act(&world, &alice, &format!("{workspace}/pins/{region}/remove"), &[("csrf", csrf)]).await;
    assert_eq!(said, "Unpinned 'Sales by Region'.");
    let (_, said) = act(&world, &alice, &format!("{workspace}/rename"), &[("csrf", csrf), ("name", "Board room")]).await;
    assert_eq!(said, "Renamed to 'Board room'.");
    let (to, said) = act(&world, &alice, &format!("{workspace}/delete"), &[("csrf", csrf)]).await;
    assert_eq!((to.as_str(), said.as_str()), ("/workspaces", "Workspace 'Board room' deleted, with its pinned tiles."));
}

#[tokio::test]
async fn a_workspace_name_is_refused_when_another_of_the_users_has_it_whatever_its_case() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let bob = world.app.session("bob").await;
    let board = world.new_workspace(&alice, "Board").await;
    let (_, list) = world.app.page(&alice, "/workspaces").await;
    let csrf = hidden(&list, "csrf").expect("csrf");
    for again in ["Board", " board ", "BOARD"] {
        let (status, page) = refused(&world, &alice, "/workspaces", &[("csrf", csrf.as_str()), ("name", again)]).await;
        let name = again.trim();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{again:?}");
        assert!(page.contains(&format!("A workspace named '{name}' already exists: choose another name.")), "{again:?}: {page}");
    }
    let other = world.new_workspace(&alice, "Floor").await;
    let (status, page) = refused(&world, &alice, &format!("{other}/rename"), &[("csrf", csrf.as_str()), ("name", "bOARD")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("A workspace named 'bOARD' already exists"), "{page}");
    let (_, page) = world.app.page(&alice, &other).await;
    assert!(page.contains(r#"id="workspace-name">Floor<"#), "the refused rename changed nothing");
    let (_, list) = world.app.page(&alice, "/workspaces").await;
    assert_eq!(list.matches("<li><a href=\"/workspaces/").count(), 2, "{list}");
    act(&world, &alice, &format!("{board}/rename"), &[("csrf", csrf.as_str()), ("name", "BOARD")]).await;
    world.new_workspace(&bob, "Board").await;

    // The JSON API says the same, naming the field.
    let api = crate::api::Api::of(&world).await;
    let as_alice = crate::api::Auth::Session { cookie: &alice, csrf: Some(&csrf) };
    let (status, body) =
        api.call(&world, as_alice, reqwest::Method::POST, "/api/v1/workspaces", Some(serde_json::json!({"name": "board"}))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("name")), "{body}");
    let said = body["error"]["message"].as_str().unwrap_or_default();
    assert!(said.ends_with("A workspace named 'board' already exists: choose another name."), "{body}");
}

#[tokio::test]
async fn a_tile_is_refused_when_it_is_already_pinned_to_the_workspace() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Once").await;
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    let (total, region) = (key_of(&tiles, "Total Sales"), key_of(&tiles, "Sales by Region"));

    let twice = [("csrf", csrf.as_str()), ("tile", region), ("tile", total), ("tile", total)];
    let (status, page) = refused(&world, &alice, &format!("{workspace}/pin"), &twice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("'Total Sales' is already pinned here."), "{page}");
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert!(drawn(&page).is_empty(), "nothing of the refused request was pinned: {page}");

    act(&world, &alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", total)]).await;
    let (status, page) =
        refused(&world, &alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", region), ("tile", total)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("'Total Sales' is already pinned here."), "{page}");
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert_eq!(drawn(&page), ["Total Sales"]);
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let row = &pin_page[pin_page.find(&format!(r#"value="{total}""#)).expect("still listed")..];
    assert!(row[..row.find("</tr>").expect("row")].contains("disabled") && row.contains("already pinned"), "{row}");
    let other = world.new_workspace(&alice, "Elsewhere").await;
    act(&world, &alice, &format!("{other}/pin"), &[("csrf", csrf.as_str()), ("tile", total)]).await;

    // The JSON API names the tile at fault.
    let api = crate::api::Api::of(&world).await;
    let as_alice = crate::api::Auth::Session { cookie: &alice, csrf: Some(&csrf) };
    let (_, listed) = api.call(&world, as_alice, reqwest::Method::GET, "/api/v1/tiles", None).await;
    let reference = |title: &str| {
        let t = listed["tiles"].as_array().expect("tiles").iter().find(|t| t["title"] == title).expect("listed");
        serde_json::json!({"groupId": t["groupId"], "dashboardId": t["dashboardId"], "tileId": t["tileId"]})
    };
    let path = format!("/api/v1{workspace}/pins");
    for (tiles, field) in
        [(vec![reference("Total Sales")], "tiles[0]"), (vec![reference("Recent Sales"), reference("Recent Sales")], "tiles[1]")]
    {
        let body = serde_json::json!({ "tiles": tiles });
        let (status, answer) = api.call(&world, as_alice, reqwest::Method::POST, &path, Some(body)).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| m.ends_with("is already pinned here.")), "{answer}");
    }
    let (_, page) = world.app.page(&alice, &workspace).await;
    assert_eq!(drawn(&page), ["Total Sales"], "Recent Sales was not pinned either");
}

async fn companies_of(world: &World, cookie: &str, workspace: &str) -> (StatusCode, serde_json::Value) {
    let response =
        world.app.http.get(world.app.url(&format!("/api/v1{workspace}/companies"))).header("cookie", cookie).send().await.expect("GET");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn the_company_filter_offers_the_companies_in_the_tiles_and_says_when_it_matches_none() {
    let world = world().await;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "Companies").await;
    let (status, empty) = companies_of(&world, &alice, &workspace).await;
    assert_eq!((status, &empty["companies"]), (StatusCode::OK, &serde_json::json!([])), "{empty}");

    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    // Two tiles of Retail Sales (Company[ID] in USMF, DEMF, GBSI) and one of Inventory, which has no Company table.
    let form = [
        ("csrf", csrf.as_str()),
        ("tile", key_of(&tiles, "Total Sales")),
        ("tile", key_of(&tiles, "Sales by Region")),
        ("tile", key_of(&tiles, "Stock on Hand")),
    ];
    assert_eq!(world.post(&alice, &format!("{workspace}/pin"), &form).await.status(), StatusCode::SEE_OTHER);
    world.sandbox.clear_requests();
    let (status, found) = companies_of(&world, &alice, &workspace).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["companies"], serde_json::json!(["DEMF", "GBSI", "USMF"]), "{found}");
    assert_eq!(
        (&found["companyFilter"], &found["filterFound"], &found["notAsked"]),
        (&serde_json::Value::Null, &serde_json::Value::Null, &serde_json::json!([]))
    );
    let queries: Vec<String> =
        world.sandbox.requests().into_iter().filter(|r| r.path.ends_with("/executeQueries")).map(|r| r.path).collect();
    assert_eq!(queries.len(), 2, "one query per dataset, not per tile: {queries:?}");

    for (filter, matches) in [("usmf", true), ("ZZ", false)] {
        let set = world.post(&alice, &format!("{workspace}/filter"), &[("csrf", csrf.as_str()), ("company", filter)]).await;
        assert_eq!(set.status(), StatusCode::SEE_OTHER);
        let (_, found) = companies_of(&world, &alice, &workspace).await;
        assert_eq!((&found["companyFilter"], &found["filterFound"]), (&serde_json::json!(filter), &serde_json::json!(matches)), "{found}");
    }

    let bob = world.connected("bob").await;
    let (status, refused) = companies_of(&world, &bob, &workspace).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "Bob cannot list the companies of Alice's workspace: {refused}");
    assert!(refused.get("companies").is_none());
}

#[tokio::test]
async fn tiles_whose_datasets_power_bi_will_not_query_are_named_with_the_reason() {
    // A registration without Dataset.Read.All: Power BI refuses executeQueries, and the tiles still draw.
    let world = crate::connect::world_with_scopes(&["Dashboard.Read.All", "Workspace.Read.All"]).await;
    let alice = world.connected("alice").await;
    let workspace = world.new_workspace(&alice, "No dataset access").await;
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let tiles = offered(&pin_page);
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&tiles, "Total Sales"))]).await;
    let (status, found) = companies_of(&world, &alice, &workspace).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["companies"], serde_json::json!([]));
    let not_asked = found["notAsked"].as_array().expect("notAsked");
    assert_eq!(not_asked.len(), 1, "{found}");
    assert_eq!(not_asked[0]["title"], "Total Sales");
    assert!(not_asked[0]["reason"].as_str().is_some_and(|r| r.contains("permissions granted do not cover this call")), "{found}");
}

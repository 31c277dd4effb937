//! Seed 000's whole story in a real headless Chromium against `pbi-bridge up`: the admin validates the
//! Power BI configuration; Alice and Bob each sign in, click Get started, sign in at the sandbox's Entra ID,
//! accept consent, see their own tiles, pin some, and see them drawn. Neither sees the other's. And seed
//! 001's: the admin registers a data source and an item and completes the templates in the sandbox's Power
//! BI pages; Alice pins the item and sees it drawn; new data an hour later; consent withdrawn, paused, signed
//! in again, delivered.
//!
//! `tests/browser/walkthrough.mjs` and `seed001.mjs` drive Chromium through puppeteer-core (`./scripts/test`
//! runs `npm ci` there and installs Debian's Chromium). Screenshots land in `<target>/tmp/walkthrough/` and
//! `<target>/tmp/seed001/`.

use crate::up_cli::up;
use serde_json::Value;
use std::path::Path;

fn walk(base: &str, shots: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/walkthrough.mjs");
    let output = std::process::Command::new("node")
        .arg(&script)
        .arg(base)
        .arg(shots)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); ./scripts/test installs what the browser test needs"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the walkthrough failed:\n{}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// One browser walkthrough at a time: each runs `up` and a Chromium, more than two cores share well.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_in_a_browser_admin_configures_users_connect_pin_and_see_only_their_own_tiles() {
    let _alone = ONE_BROWSER.lock().await;
    let dir = std::env::temp_dir().join(format!("pbi-walkthrough-{}", uuid::Uuid::new_v4()));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("walkthrough");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let running = up(&dir).await;
    let base = running.base.clone();
    let shots_for_task = shots.clone();
    let report = tokio::task::spawn_blocking(move || walk(&base, &shots_for_task)).await.expect("walkthrough task");
    framed_pages(&report, &shots);

    let admin = &report["admin"];
    assert_eq!(admin["redirectUrl"].as_str(), Some(format!("{}/oauth/callback", running.base).as_str()));
    assert!(admin["appKey"].as_str().is_some_and(|k| k.starts_with("pbs_") && k.len() == 47), "the app's key, shown once: {admin}");
    assert_eq!(
        (admin["copied"].clone(), admin["copyButtonSays"].clone()),
        (admin["redirectUrl"].clone(), serde_json::json!("Copied")),
        "{admin}"
    );
    let checks: Vec<Vec<&str>> = admin["checks"]
        .as_array()
        .expect("validation checks")
        .iter()
        .map(|row| row.as_array().expect("a row").iter().map(|cell| cell.as_str().unwrap_or_default()).collect())
        .collect();
    assert!(checks.iter().any(|row| row[..2] == ["credentials", "passed"]), "Entra accepted the key: {checks:?}");
    for row in &checks {
        // Passed, or (for what cannot be proven before a user consents) said so with a reason.
        assert!(row[1] == "passed" || (row[1] == "info" && !row[2].is_empty()), "every check passed: {checks:?}");
    }
    assert!(admin["validated"].as_str().is_some_and(|m| m.starts_with("The configuration works")), "{admin}");
    assert!(admin["added"].as_str().is_some_and(|m| m.starts_with("Added dana")), "{admin}");
    assert_eq!(admin["danaSeesHerName"], "Dana Lee", "the new user signs in with what the admin set: {admin}");
    let end_user = &admin["endUser"];
    assert_eq!(end_user["heading"], "Connect your Power BI account to Contoso ERP", "the connect page names the app: {end_user}");
    assert_eq!((end_user["status"].as_str(), end_user["urlHasNoToken"].as_bool()), (Some("consent_declined"), Some(true)), "{end_user}");

    let alice = &report["alice"];
    assert_eq!(alice["status"], "connected", "{alice}");
    let offered = strings(&alice["offered"]);
    assert!(offered.contains(&"Total Sales") && offered.contains(&"Stock on Hand"), "Alice's own tiles: {offered:?}");
    assert!(!offered.contains(&"Actual Spend"), "Finance is Bob's: {offered:?}");
    let tiles = alice["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 2, "{alice}");
    for (tile, title) in tiles.iter().zip(["Total Sales", "Sales by Region"]) {
        assert_eq!((tile["title"].as_str(), tile["state"].as_str()), (Some(title), Some("rendered")), "{tile}");
    }
    assert!(tiles[1]["height"].as_i64() > tiles[0]["height"].as_i64(), "Sales by Region is 2 rows high, Total Sales 1: {tiles:?}");
    // Token renewal: each tile scheduled one renewal ahead of its token's expiry (60-90 minute tokens, renewed
    // 10 minutes early); firing it fetched a fresh token, handed it to the frame, and scheduled the next.
    let delays = alice["renewalDelays"].as_array().expect("renewal delays");
    assert_eq!(delays.len(), 2, "{alice}");
    assert!(delays.iter().all(|ms| ms.as_i64().is_some_and(|ms| (40 * 60_000..=80 * 60_000).contains(&ms))), "{delays:?}");
    assert_eq!(strings(&alice["renewals"]), ["1", "1"], "{alice}");
    assert_eq!(alice["rescheduled"].as_array().map(Vec::len), Some(2), "{alice}");
    let drawn = alice["drawn"].as_array().expect("frames");
    assert_eq!(drawn.len(), 2);
    for frame in drawn {
        assert_eq!((frame["state"].as_str(), frame["errors"].as_i64()), (Some("rendered"), Some(0)), "{frame}");
    }
    assert_eq!(strings(&alice["workspaces"]), ["alice's dashboard"]);

    // Seed 000's company filter: Total Sales for one company is less than for all of them.
    let total_sales = |frames: &Value| -> f64 {
        let frames = frames.as_array().expect("frames");
        let card = frames.iter().find(|f| f["title"] == "Total Sales").unwrap_or_else(|| panic!("Total Sales drawn: {frames:?}"));
        card["card"].as_str().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("a card value: {card}"))
    };
    let (all, usmf) = (total_sales(&report["aliceFiltered"]["before"]), total_sales(&report["aliceFiltered"]["after"]));
    assert!(usmf > 0.0 && usmf < all, "filtered to USMF: {usmf} of {all}");
    // The filter offers the companies in Alice's tiles, asked of Power BI, and says when one has no data.
    let filtered = &report["aliceFiltered"];
    assert_eq!(strings(&filtered["offered"]), ["DEMF", "GBSI", "USMF"], "{filtered}");
    assert_eq!(filtered["badge"], "Filtered: company USMF", "{filtered}");
    assert!(filtered["noteWhenFound"].is_null(), "no warning for a company the tiles hold: {filtered}");
    assert_eq!(
        filtered["noteWhenMissing"], "No tile here has data for company NOPE. The companies in these tiles: DEMF, GBSI, USMF.",
        "{filtered}"
    );
    let missing = filtered["missing"].as_array().expect("frames");
    let card = missing.iter().find(|f| f["title"] == "Total Sales").expect("Total Sales drawn");
    assert_eq!((&card["card"], &card["cardText"]), (&"".into(), &"(Blank)".into()), "a card over no rows, as Power BI draws it: {card}");
    assert_eq!(filtered["cleared"], "", "{filtered}");

    // The tile script aims every message (each carries Alice's Power BI token) at the embed URL's origin.
    let token_posts = &report["aliceTokenPosts"];
    let posts = token_posts["posts"].as_array().expect("posts");
    assert_eq!(token_posts["frames"], 2, "{token_posts}");
    assert_eq!(posts.len(), 4, "a load and a renewal per tile: {token_posts}");
    for post in posts {
        assert_eq!(post["carriesToken"], true, "{post}");
        assert!(post["embedOrigin"].as_str().is_some_and(|o| o.starts_with("http://127.0.0.1:")), "{post}");
        assert_eq!(post["targetOrigin"], post["embedOrigin"], "posted to the embed URL's origin only: {post}");
    }
    // Every page, Entra's and the tiles' included, works under pbi-bridge's Content-Security-Policy.
    assert_eq!(report["cspViolations"], serde_json::json!([]), "nothing was refused by the policy");

    let bob = &report["bob"];
    assert_eq!(bob["status"], "connected", "{bob}");
    let bobs = strings(&bob["offered"]);
    assert!(bobs.contains(&"Actual Spend") && !bobs.contains(&"Stock on Hand"), "Operations is not Bob's: {bobs:?}");
    assert_eq!(strings(&bob["workspaces"]), ["bob's dashboard"], "Bob does not see Alice's workspace");
    assert_eq!(report["bobOnAlicesWorkspace"]["status"], 404, "{}", report["bobOnAlicesWorkspace"]);
    assert!(!report["bobOnAlicesWorkspace"]["text"].as_str().unwrap_or_default().contains("Total Sales"));

    // Alice's script: a token made in My settings (shown once) lists her workspaces through the JSON API.
    let api = &report["aliceApi"];
    assert_eq!((api["status"].as_u64(), strings(&api["workspaces"])), (Some(200), vec!["alice's dashboard"]), "{api}");
    assert_eq!(api["tokenShownOnce"], true, "the token is not shown again: {api}");
    assert_eq!(strings(&api["listed"]), ["walkthrough script"]);
    assert!(api["operations"].as_u64().is_some_and(|n| n >= 15), "/api/docs lists the operations: {api}");
    // Seed 000's troubleshooting rows in the browser: consent declined, then an account without a license.
    let trouble = &report["troubleshooting"];
    assert!(trouble["declined"].as_str().is_some_and(|t| t.contains("You declined the permissions")), "{trouble}");
    assert_eq!(trouble["status"], "connected", "{trouble}");
    assert!(trouble["unlicensed"].as_str().is_some_and(|t| t.contains("no Power BI license")), "{trouble}");
    dashboard(&report["aliceBoard"]);
    keyboard_only(&report["keyboard"]);
    for shot in ["12-alice-dashboard-1366.png", "12-alice-dashboard-390.png", "12-alice-pin-1366.png", "12-alice-pin-390.png"] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "screenshot {shot}");
    }
    for shot in ["1-admin-validate.png", "4-alice-settings.png", "6-alice-workspace.png", "6-bob-workspace.png", "8-alice-api-token.png"] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "screenshot {shot}");
    }
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

/// Every pbi-bridge page the walkthrough visited, error pages included: drawn in the frame with its current
/// area, free of axe-core's WCAG 2.1 A and AA violations, without horizontal scroll at 390 px, screenshot at
/// 1366 px and 390 px; and each action left a message bar on the page after it.
fn framed_pages(report: &Value, shots: &Path) {
    let pages = report["pages"].as_array().expect("pages");
    // Kept beside the screenshots, to read what axe-core said about each page.
    let _ = std::fs::write(shots.join("pages.json"), serde_json::to_string_pretty(&report["pages"]).unwrap_or_default());
    assert!(pages.len() >= 18, "the walkthrough checks every page it visits: {}", pages.len());
    for page in pages {
        let file = page["file"].as_str().expect("file");
        let frame = &page["frame"];
        assert_eq!(frame["topbar"], true, "{file}: the top bar: {frame}");
        let signed_in = !file.contains("anonymous") && !file.contains("signed-out");
        let current = strings(&frame["current"]);
        if signed_in {
            let areas = strings(&frame["areas"]);
            assert!(areas.starts_with(&["Workspaces", "My subscriptions", "My settings"]), "{file}: the areas: {frame}");
            let admin = file.starts_with("p-admin");
            assert_eq!(areas.contains(&"Audit log"), admin, "{file}: administration is for admins: {frame}");
            assert!(
                frame["user"].as_str().is_some_and(|u| !u.is_empty()) && frame["signOut"] == true,
                "{file}: the user and Sign out: {frame}"
            );
        } else {
            assert!(frame["user"].is_null() && frame["signOut"] == false, "{file}: no user menu without a session: {frame}");
        }
        let expected: &[&str] = match file {
            f if f.starts_with("p-admin-powerbi") || f.starts_with("p-admin-validated") => &["Power BI configuration"],
            "p-admin-users" => &["Users"],
            "p-admin-audit" => &["Audit log"],
            "p-admin-jobs" => &["Background jobs"],
            "p-admin-apps" | "p-admin-app" => &["Apps"],
            f if f.contains("settings") || f.contains("form-expired") => &["My settings"],
            f if f.contains("workspace") || f.ends_with("-pin") => &["Workspaces"],
            f if f.ends_with("-home") => &["pbi-bridge"],
            _ => &[],
        };
        assert_eq!(current, expected, "{file}: the current area: {frame}");
        assert_eq!(frame["times"], frame["localTimes"], "{file}: every time is shown in the reader's zone: {frame}");
        assert_eq!(page["violations"], serde_json::json!([]), "{file}: axe-core finds no WCAG 2.1 A/AA violation at {}", page["url"]);
        let phone = &page["phone"];
        assert!(phone["scrollWidth"].as_i64() <= phone["clientWidth"].as_i64(), "{file}: no horizontal scroll at 390 px: {phone}");
        for width in ["1366", "390"] {
            let shot = shots.join(format!("{file}-{width}.png"));
            assert!(shot.metadata().is_ok_and(|m| m.len() > 1000), "screenshot {}", shot.display());
        }
    }
    let messages = &report["messages"];
    for (action, starts) in [
        ("validate", "The configuration works"),
        ("addUser", "Added dana"),
        ("aliceConnected", "Connected your Power BI account alice@"),
        ("bobConnected", "Connected your Power BI account bob@"),
        ("token", "Made the API token"),
        ("signOut", "You are signed out."),
    ] {
        assert!(messages[action].as_str().is_some_and(|m| m.starts_with(starts)), "{action} said so: {messages}");
    }
    let times: i64 = pages.iter().filter_map(|p| p["frame"]["times"].as_i64()).sum();
    assert!(times >= 10, "the pages show times (users added, tokens made, the audit log): {times}");
    let frames = &report["frames"];
    assert_eq!((frames["notFound"].as_u64(), frames["anonymousMissing"].as_u64()), (Some(404), Some(404)), "{frames}");
    assert_eq!(frames["expired"], "This form expired", "{frames}");
}

/// The workspace page as a dashboard: every action said what it did, once; the same name and the same tile
/// were refused; the tiles are packed without overlaps or holes at 1366 px and in one column at 390 px.
fn dashboard(board: &Value) {
    assert_eq!(board["created"], "Workspace 'Board' created: pin Power BI tiles to it.", "{board}");
    assert_eq!(board["reloaded"], Value::Null, "a reload shows the message no more: {board}");
    assert!(
        board["sameName"].as_str().is_some_and(|t| t.contains("A workspace named 'BOARD' already exists: choose another name.")),
        "{board}"
    );
    assert!(
        board["pinned"].as_str().is_some_and(|t| t.starts_with("Pinned '") && t.contains("'Total Sales'") && t.contains(" and ")),
        "{board}"
    );
    assert_eq!(board["moved"], "Moved 'Total Sales' later.", "{board}");

    let wide = &board["wide"];
    let tiles = wide["tiles"].as_array().expect("tiles");
    assert_eq!(tiles.len(), 6, "every tile Alice has: {wide}");
    assert_eq!(board["alreadyPinned"], 6, "the pin page offers none of them again: {board}");
    assert!(strings(&wide["states"]).iter().all(|s| *s == "rendered"), "{wide}");
    let columns = wide["columns"].as_i64().expect("columns");
    assert!(columns >= 3, "a dashboard at 1366 px has several columns: {wide}");
    let n = |t: &Value, k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k} in {t}"));
    let b = |t: &Value, k: &str| n(&t["box"], k);
    for (i, one) in tiles.iter().enumerate() {
        assert_eq!(n(one, "titlesShown"), 0.0, "the title is the tile's own (drawn in its frame), not repeated: {one}");
        assert_eq!(
            (n(one, "rowSpan"), n(one, "columnSpan")),
            (n(one, "rows"), n(one, "cols").min(columns as f64)),
            "each tile at its Power BI size: {one}"
        );
        for other in &tiles[i + 1..] {
            let apart = b(one, "x") + b(one, "width") <= b(other, "x") + 0.5
                || b(other, "x") + b(other, "width") <= b(one, "x") + 0.5
                || b(one, "y") + b(one, "height") <= b(other, "y") + 0.5
                || b(other, "y") + b(other, "height") <= b(one, "y") + 0.5;
            assert!(apart, "no two tiles overlap: {one} and {other}");
        }
    }
    // No holes a tile could fill: no tile placed after an empty cell (in reading order) would fit there with
    // the others where they are. (A full rectangle is not always possible: Alice's six tiles are 2 rows high,
    // 2 or 3 columns wide, and one 1x1.)
    let rows = tiles.iter().map(|t| n(t, "row") + n(t, "rowSpan")).fold(0.0, f64::max) as usize;
    let cells = |t: &Value| {
        let (r, c, h, w) = (n(t, "row") as usize, n(t, "column") as usize, n(t, "rowSpan") as usize, n(t, "columnSpan") as usize);
        (r..r + h).flat_map(move |r| (c..c + w).map(move |c| (r, c)))
    };
    let mut owner = vec![vec![None; columns as usize]; rows];
    for (i, t) in tiles.iter().enumerate() {
        for (r, c) in cells(t) {
            owner[r][c] = Some(i);
        }
    }
    let area: f64 = tiles.iter().map(|t| n(t, "rowSpan") * n(t, "columnSpan")).sum();
    let filled = owner.iter().flatten().filter(|o| o.is_some()).count();
    assert_eq!(filled as f64, area, "the filled area is the sum of the tiles' areas: {owner:?}");
    for (r, c) in (0..rows).flat_map(|r| (0..columns as usize).map(move |c| (r, c))).filter(|(r, c)| owner[*r][*c].is_none()) {
        for (i, t) in tiles.iter().enumerate().filter(|(_, t)| (n(t, "row") as usize, n(t, "column") as usize) > (r, c)) {
            let (h, w) = (n(t, "rowSpan") as usize, n(t, "columnSpan") as usize);
            let fits = c + w <= columns as usize
                && (r..r + h).all(|rr| (c..c + w).all(|cc| owner.get(rr).is_none_or(|row| row[cc].is_none() || row[cc] == Some(i))));
            assert!(!fits, "a hole at row {r}, column {c} that {} would fill: {owner:?}", t["title"]);
        }
    }

    let phone = &board["phone"];
    assert_eq!(phone["columns"], 1, "{phone}");
    assert!(n(phone, "scrollWidth") <= n(phone, "innerWidth"), "no horizontal scroll at 390 px: {phone}");
    for t in phone["tiles"].as_array().expect("tiles") {
        assert!((b(t, "width") - n(phone, "gridWidth")).abs() < 1.0, "each tile the full width: {t}");
    }
    let phone_pin = &board["phonePin"];
    assert!(n(phone_pin, "scrollWidth") <= n(phone_pin, "innerWidth"), "the pin page fits a phone: {phone_pin}");
}

/// Seed 000's story with the keyboard only (Tab, Enter, Space and typing): Erin signs in, connects, makes a
/// workspace, pins two tiles, filters them to a company and back, unpins one through its menu and signs out.
fn keyboard_only(steps: &Value) {
    assert_eq!(steps["signedIn"], "Erin Park", "{steps}");
    assert_eq!(steps["connected"], "connected", "{steps}");
    assert_eq!(steps["created"], "Workspace 'Keyboard board' created: pin Power BI tiles to it.", "{steps}");
    assert_eq!(steps["ticked"], 2, "Space ticks a tile: {steps}");
    assert!(steps["pinned"].as_str().is_some_and(|m| m.starts_with("Pinned '") && m.contains("' and '")), "{steps}");
    assert_eq!(steps["drawn"], serde_json::json!(["rendered", "rendered"]), "{steps}");
    assert!(steps["filtered"].as_str().is_some_and(|b| b.starts_with("Filtered: company ")), "{steps}");
    assert_eq!(steps["cleared"], true, "{steps}");
    let unpinned = &steps["unpinned"];
    assert_eq!(unpinned["message"], format!("Unpinned '{}'.", unpinned["title"].as_str().unwrap_or_default()), "{steps}");
    assert_eq!(unpinned["left"], 1, "{steps}");
    assert_eq!(steps["signedOut"], "You are signed out.", "{steps}");
}

/// Runs `seed001.mjs`: answers each `{"waiting": …}` line by doing it (`act`) and writing `done`; gives the
/// report (the last line).
fn walk_seed_001(base: &str, shots: &Path, database: &Path, mut act: impl FnMut(&str)) -> Value {
    use std::io::{BufRead, Write};
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/seed001.mjs");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .arg(base)
        .arg(shots)
        .arg(database)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); ./scripts/test installs what the browser test needs"));
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut last = Value::Null;
    for line in stdout.lines() {
        let line = line.expect("a line");
        let Ok(value) = serde_json::from_str::<Value>(&line) else { continue };
        if let Some(waiting) = value["waiting"].as_str() {
            act(waiting);
            writeln!(stdin, "done").expect("answered");
        } else {
            last = value;
        }
    }
    drop(stdin);
    let output = child.wait_with_output().expect("node ended");
    assert!(output.status.success(), "the seed 001 walkthrough failed:\n{}", String::from_utf8_lossy(&output.stderr));
    last
}

/// The application's data changes: more IT spend for USMF.
fn more_it_spend(database: &Path) {
    let url = format!("sqlite://{}", database.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        use pbi_store::sqlx::Connection as _;
        let mut db = pbi_store::sqlx::SqliteConnection::connect(&url).await.expect("the demo database");
        pbi_store::sqlx::query("UPDATE spend SET amount = amount + 1000 WHERE company = 'USMF' AND department = 'IT'")
            .execute(&mut db)
            .await
            .expect("updated");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_in_a_browser_templates_a_pin_new_data_an_hour_later_and_a_pause_until_signing_in_again() {
    let _alone = ONE_BROWSER.lock().await;
    let dir = std::env::temp_dir().join(format!("pbi-seed001-{}", uuid::Uuid::new_v4()));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("seed001");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot directory");
    let running = up(&dir).await;
    let database = dir.join("demo-reports.db").canonicalize().expect("up wrote the demo database");
    let (base, shots_for_task) = (running.base.clone(), shots.clone());
    let report = tokio::task::spawn_blocking(move || {
        walk_seed_001(&base, &shots_for_task, &database, |waiting| match waiting {
            "new-data" => more_it_spend(&database),
            other => panic!("the walkthrough waits for {other}, which this test does not do"),
        })
    })
    .await
    .expect("walkthrough task");
    let _ = std::fs::write(shots.join("report.json"), serde_json::to_string_pretty(&report).unwrap_or_default());

    // The admin: a data source and an item, the templates made again and built in Power BI, then ready.
    let messages = &report["messages"];
    assert!(messages["source"].as_str().is_some_and(|m| m.contains("Finance (walkthrough)")), "{messages}");
    assert!(messages["item"].as_str().is_some_and(|m| m.contains("Spend by department (walkthrough)")), "{messages}");
    let admin = &report["admin"];
    assert_eq!(admin["status"], "connected", "{admin}");
    assert_eq!(strings(&admin["notPinned"]), ["not pinned yet"; 4], "{admin}");
    assert_eq!(admin["pinnedInPowerBi"].as_array().map(Vec::len), Some(4), "{admin}");
    assert!(strings(&admin["pinnedInPowerBi"]).iter().all(|m| *m == "Pinned to pbi-bridge templates."), "{admin}");
    assert_eq!(messages["checked"], "Every template is ready: users can pin items of every kind.", "{messages}");
    assert_eq!(strings(&admin["ready"]), ["ready"; 4], "{admin}");

    // Alice pins the item to a new dashboard, watches the first delivery, and sees it drawn in Power BI.
    let pin = &report["pin"];
    assert!(messages["pinned"].as_str().is_some_and(|m| m.contains("and delivered: the tile shows")), "{messages}");
    assert_eq!(pin["deliveries"], serde_json::json!([{"outcome": "delivered", "rows": "4"}]), "{pin}");
    let spend =
        |drawn: &Value, department: &str| drawn[0]["points"][department].as_f64().unwrap_or_else(|| panic!("{department} in {drawn}"));
    // USMF's IT spend over the demo's three months: 182,000 + 176,500 + 191,250.
    assert_eq!(spend(&pin["drawn"], "IT"), 549_750.0, "{pin}");
    assert_eq!(spend(&pin["drawn"], "HR"), 147_500.0, "{pin}");

    // The data changed; an hour later the scheduled delivery drew the new figures.
    let refreshed = &report["refreshed"];
    assert_eq!(spend(&refreshed["drawn"], "IT"), 552_750.0, "three rows of 1,000 more: {refreshed}");
    assert_eq!(spend(&refreshed["drawn"], "HR"), 147_500.0, "{refreshed}");
    assert_eq!(refreshed["deliveries"][0]["outcome"], "delivered", "{refreshed}");

    // Consent withdrawn: paused with the reason, a banner; signing in again resumes it and it delivers.
    let expired = &report["expired"];
    assert_eq!(expired["state"], "paused", "{expired}");
    assert!(expired["banner"].as_str().is_some_and(|b| b.contains("1 subscription(s) are paused")), "{expired}");
    assert!(expired["reason"].as_str().is_some_and(|r| r.starts_with("Sign in to Power BI again")), "{expired}");
    assert!(messages["needsSignIn"].as_str().is_some_and(|m| m.contains("needs you to sign in again")), "{messages}");
    assert!(messages["signedInAgain"].as_str().is_some_and(|m| m.contains("resumed")), "{messages}");
    let again = &report["again"];
    assert_eq!(again["state"], "active", "{again}");
    assert_eq!(again["deliveries"][0]["outcome"], "delivered", "{again}");
    assert_eq!(again["deliveries"][1]["outcome"], "paused", "{again}");
    assert_eq!(spend(&again["drawn"], "IT"), 552_750.0, "{again}");

    // Every pbi-bridge page of the story: no WCAG 2.1 A/AA violation, no horizontal scroll on a phone.
    let pages = report["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 8, "{pages:?}");
    for page in pages {
        let file = page["file"].as_str().unwrap_or_default();
        assert_eq!(page["violations"], serde_json::json!([]), "{file}: axe-core finds no WCAG 2.1 A/AA violation at {}", page["url"]);
        let phone = &page["phone"];
        assert!(phone["scrollWidth"].as_i64() <= phone["clientWidth"].as_i64(), "{file}: no horizontal scroll at 390 px: {phone}");
    }
    for shot in ["s4-sandbox-pin-visual.png", "s9-sandbox-dashboard.png", "s8-alice-subscription-1366.png"] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "screenshot {shot}");
    }
    drop(running);
    let _ = std::fs::remove_dir_all(dir);
}

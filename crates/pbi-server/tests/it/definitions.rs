//! Seed 001's definitions over HTTP: administrators register data sources (the credential write-only and
//! encrypted, a location with a password refused) and define report items (the query checked, its parameters
//! declared, who may pin them), in the API and the pages; everyone else is refused; each change is audited
//! without the credential.

use crate::connect::{World, world};
use crate::subscriptions::{call, submit};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PG_PASSWORD: &str = "pg-Secret-Value-81";

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("id").to_owned()
}

fn sqlite_file() -> String {
    std::env::temp_dir().join(format!("pbi-bridge-it-{}.db", uuid::Uuid::new_v4())).display().to_string()
}

fn chart(source: &str, data_source: Option<&str>, query: Option<&str>, parameters: Value) -> Value {
    json!({
        "name": "Chart2", "description": "Spend by department", "kind": "category-series",
        "columns": [{"name": "Department", "type": "text"}, {"name": "Amount", "type": "decimal"}],
        "category": "Department", "value": "Amount",
        "source": source, "dataSourceId": data_source, "query": query, "parameters": parameters,
    })
}

async fn names_alice_may_pin(world: &World, token: &str) -> Vec<String> {
    let (_, items) = call(world, token, Method::GET, "/items", None).await;
    items["items"].as_array().expect("items").iter().map(|i| i["name"].as_str().expect("name").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_api_admins_define_sources_and_items_and_nobody_else_can() {
    let world = world().await;
    let admin = world.api_token(&world.app.session("admin").await, "definitions").await;
    let alice = world.api_token(&world.app.session("alice").await, "pins").await;
    let bob = world.api_token(&world.app.session("bob").await, "pins").await;

    for (method, path, body) in [
        (Method::GET, "/admin/data-sources", None),
        (Method::POST, "/admin/data-sources", Some(json!({"name": "X", "kind": "sqlite", "location": "/x.db"}))),
        (Method::GET, "/admin/items", None),
        (Method::POST, "/admin/items", Some(chart("pushed", None, None, json!({})))),
    ] {
        let (status, answer) = call(&world, &alice, method.clone(), path, body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("admin_only")), "{method} {path}");
    }

    // A location with a password is refused, naming the field, and the password is not echoed.
    let leaky = json!({"name": "Finance", "kind": "postgres", "location": format!("postgres://app:{PG_PASSWORD}@db.example.com/finance")});
    let (status, refused) = call(&world, &admin, Method::POST, "/admin/data-sources", Some(leaky)).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (400, Some("location")), "{refused}");
    assert!(!refused.to_string().contains(PG_PASSWORD));
    let finance = json!({"name": "Finance", "kind": "postgres", "location": "postgres://db.example.com/finance", "username": "reporting", "credential": PG_PASSWORD});
    let (status, made) = call(&world, &admin, Method::POST, "/admin/data-sources", Some(finance.clone())).await;
    assert_eq!((status, made["hasCredential"].as_bool()), (201, Some(true)), "{made}");
    assert!(!made.to_string().contains(PG_PASSWORD), "the credential is write-only");
    let finance_id = id_of(&made);
    let (status, _) = call(&world, &admin, Method::POST, "/admin/data-sources", Some(finance)).await;
    assert_eq!(status, 409, "the name is taken");
    let file = sqlite_file();
    let (status, sqlite) =
        call(&world, &admin, Method::POST, "/admin/data-sources", Some(json!({"name": "Reports", "kind": "sqlite", "location": file})))
            .await;
    assert_eq!((status, sqlite["hasCredential"].as_bool()), (201, Some(false)), "{sqlite}");
    let reports_id = id_of(&sqlite);

    // An update keeps the credential unless it says otherwise.
    let path = format!("/admin/data-sources/{finance_id}");
    let moved = json!({"name": "Finance", "kind": "postgres", "location": "postgres://db2.example.com/finance", "username": "reporting"});
    let (_, kept) = call(&world, &admin, Method::PUT, &path, Some(moved.clone())).await;
    assert_eq!((kept["location"].as_str(), kept["hasCredential"].as_bool()), (Some("postgres://db2.example.com/finance"), Some(true)));
    let mut cleared = moved.clone();
    cleared["clearCredential"] = json!(true);
    let (_, cleared) = call(&world, &admin, Method::PUT, &path, Some(cleared)).await;
    assert_eq!(cleared["hasCredential"], false, "{cleared}");
    assert!(world.app.store.data_source_credential(finance_id.parse().expect("id")).await.expect("read").is_none());

    // Items: the query is checked and its parameters declared; each fault names its field.
    let sql = "SELECT department AS Department, SUM(amount) AS Amount FROM spend WHERE company = :company GROUP BY department";
    for (body, field) in [
        (chart("query", Some(&reports_id), Some("DELETE FROM spend"), json!({})), "query"),
        (chart("query", Some(&reports_id), Some(sql), json!({})), "parameters"),
        (chart("query", Some(&reports_id), Some(sql), json!({"company": "USMF", "year": 2026})), "parameters.year"),
        (chart("query", None, Some(sql), json!({"company": "USMF"})), "dataSourceId"),
        (chart("http", Some(&reports_id), Some("spend.csv"), json!({})), "dataSourceId"),
        (
            chart("pushed", None, None, json!({}))
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("kind".into(), json!("pie"));
                    Value::Object(o)
                })
                .expect("body"),
            "kind",
        ),
        (
            chart("pushed", None, None, json!({}))
                .as_object()
                .cloned()
                .map(|mut o| {
                    o.insert("colums".into(), json!([]));
                    Value::Object(o)
                })
                .expect("body"),
            "colums",
        ),
    ] {
        let (status, answer) = call(&world, &admin, Method::POST, "/admin/items", Some(body)).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{answer}");
    }
    assert!(names_alice_may_pin(&world, &alice).await.is_empty(), "nothing was kept");
    let (status, item) =
        call(&world, &admin, Method::POST, "/admin/items", Some(chart("query", Some(&reports_id), Some(sql), json!({"company": "USMF"}))))
            .await;
    assert_eq!(status, 201, "{item}");
    assert_eq!((item["definition"]["name"].as_str(), item["subscriptions"].as_i64()), (Some("Chart2"), Some(0)));
    let item_id = id_of(&item);
    assert_eq!(names_alice_may_pin(&world, &alice).await, ["Chart2"], "everyone may pin it");

    // Named pinners: only they see the item.
    let mut only_bob = chart("pushed", None, None, json!({}));
    only_bob["name"] = json!("Open orders");
    only_bob["everyone"] = json!(false);
    only_bob["pinners"] = json!(["carol"]);
    let (status, answer) = call(&world, &admin, Method::POST, "/admin/items", Some(only_bob.clone())).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("pinners[0]")), "{answer}");
    only_bob["pinners"] = json!(["bob"]);
    let (status, orders) = call(&world, &admin, Method::POST, "/admin/items", Some(only_bob)).await;
    assert_eq!((status, orders["definition"]["pinners"].clone()), (201, json!(["bob"])), "{orders}");
    assert_eq!(names_alice_may_pin(&world, &alice).await, ["Chart2"]);
    assert_eq!(names_alice_may_pin(&world, &bob).await, ["Chart2", "Open orders"]);

    // An item's rows may be large (here over 64 KiB, the limit of every other body).
    let rows: Vec<Value> = (0..3000).map(|i| json!({"Department": format!("Department {i}"), "Amount": i})).collect();
    let rows = json!({"rows": rows});
    assert!(rows.to_string().len() > 64 * 1024);
    let (status, kept) = call(&world, &admin, Method::PUT, &format!("/items/{}/rows", id_of(&orders)), Some(rows.clone())).await;
    assert_eq!((status, kept["rows"].as_i64()), (200, Some(3000)), "{kept}");
    let (status, refused) = call(&world, &admin, Method::POST, "/admin/items", Some(rows)).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (413, Some("too_large")), "{refused}");

    // An update replaces the definition; what is used cannot be deleted.
    let mut renamed = chart("query", Some(&reports_id), Some(sql), json!({"company": "DEMF"}));
    renamed["name"] = json!("Spend by department");
    let (status, updated) = call(&world, &admin, Method::PUT, &format!("/admin/items/{item_id}"), Some(renamed)).await;
    assert_eq!((status, updated["definition"]["parameters"].clone()), (200, json!({"company": "DEMF"})), "{updated}");
    let (status, busy) = call(&world, &admin, Method::DELETE, &format!("/admin/data-sources/{reports_id}"), None).await;
    assert_eq!((status, busy["error"]["code"].as_str()), (409, Some("conflict")), "{busy}");
    let (status, _) = call(&world, &admin, Method::DELETE, &format!("/admin/items/{item_id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&world, &admin, Method::DELETE, &format!("/admin/data-sources/{reports_id}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&world, &admin, Method::GET, &format!("/admin/items/{item_id}"), None).await;
    assert_eq!(status, 404);

    // Each change is in the audit log, and the credential nowhere in it.
    let (_, audit) = call(&world, &admin, Method::GET, "/admin/audit", None).await;
    let actions: Vec<&str> = audit["entries"].as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    for action in [
        "data_source.added",
        "data_source.updated",
        "data_source.credential.cleared",
        "item.added",
        "item.updated",
        "item.deleted",
        "data_source.deleted",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(!audit.to_string().contains(PG_PASSWORD), "no credential in the audit log");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pages_an_admin_registers_a_source_and_defines_an_item_users_then_find() {
    let world = world().await;
    let admin = world.app.session("admin").await;
    let alice = world.app.session("alice").await;
    let (status, page) = world.app.page(&admin, "/admin/data-sources").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="no-sources""#) && page.contains(r#"aria-current="page">Report items"#), "{page}");
    for path in ["/admin/data-sources", "/admin/items", "/admin/items/new"] {
        assert_eq!(world.app.page(&alice, path).await.0, StatusCode::FORBIDDEN, "{path}");
    }

    // A refused form comes back with what was typed, the field named, and never the credential.
    let leaky = [("name", "Finance"), ("kind", "postgres"), ("location", "postgres://db/finance?password=x1"), ("credential", PG_PASSWORD)];
    let answer = submit(&world, &admin, "/admin/data-sources", &leaky).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let page = answer.text().await.expect("page");
    assert!(page.contains("Location: Remove the password from the URL") && page.contains(r#"value="Finance""#), "{page}");
    assert!(!page.contains(PG_PASSWORD), "the credential typed is not sent back");

    let file = sqlite_file();
    let answer = submit(&world, &admin, "/admin/data-sources", &[("name", "Reports"), ("kind", "sqlite"), ("location", &file)]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (_, page) = world.app.page(&admin, "/admin/data-sources").await;
    assert!(page.contains("without a credential") && page.contains("Reports") && page.contains("badge-warning\">none"), "{page}");
    let source = world.app.store.data_sources().await.expect("sources").remove(0);
    let edit = format!("/admin/data-sources/{}", source.id);
    let answer =
        submit(&world, &admin, &edit, &[("name", "Reports"), ("kind", "sqlite"), ("location", &file), ("credential", PG_PASSWORD)]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (_, page) = world.app.page(&admin, &edit).await;
    assert!(page.contains("A credential is stored") && !page.contains(PG_PASSWORD), "{page}");

    // The item form: columns and parameters one a line.
    let source_id = source.id.to_string();
    let mut fields = vec![
        ("name", "Chart2"),
        ("kind", "category-series"),
        ("columns", "Department text"),
        ("category", "Department"),
        ("value", "Amount"),
        ("source", "query"),
        ("data_source", source_id.as_str()),
        ("query", "SELECT department AS Department, amount AS Amount FROM spend WHERE company = :company"),
        ("parameters", "company = USMF"),
        ("everyone", "on"),
    ];
    let answer = submit(&world, &admin, "/admin/items", &fields).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let page = answer.text().await.expect("page");
    assert!(page.contains("Columns: Line 1: write a column as Name: type") && page.contains(r#"value="Chart2""#), "{page}");
    fields[2] = ("columns", "Department: text\nAmount: decimal");
    let answer = submit(&world, &admin, "/admin/items", &fields).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (_, page) = world.app.page(&admin, "/admin/items").await;
    assert!(page.contains("Chart2") && page.contains("a query on Reports") && page.contains("everyone"), "{page}");
    let (_, page) = world.app.page(&alice, "/items").await;
    assert!(page.contains("Chart2"), "Alice may pin it: {page}");

    let item = world.app.store.items().await.expect("items").remove(0);
    let (_, page) = world.app.page(&admin, &format!("/admin/items/{}", item.id)).await;
    assert!(
        page.contains("Department: text\nAmount: decimal") && page.contains("company = USMF"),
        "the form shows the item as typed: {page}"
    );
    let answer = submit(&world, &admin, &format!("/admin/data-sources/{}/delete", source.id), &[]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "refused with a message: the item uses it");
    assert_eq!(world.app.store.data_sources().await.expect("sources").len(), 1);
    let answer = submit(&world, &admin, &format!("/admin/items/{}/delete", item.id), &[]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(world.app.store.items().await.expect("items").is_empty());
    let _ = std::fs::remove_file(&file);
}

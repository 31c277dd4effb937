//! Signing in under attack: throttling per user name and client address, a lock no one else can impose,
//! sessions a new sign-in replaces, the login form's CSRF cookie, and connections that stay usable after a
//! refusal.

use crate::{App, PASSWORD};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_login_csrf_pair_the_server_did_not_issue_is_refused() {
    let app = App::start().await;
    let forged = |value: &str| {
        app.http
            .post(app.url("/login"))
            .header("cookie", format!("pbi_login_csrf={value}"))
            .form(&[("csrf", value), ("username", "alice"), ("password", PASSWORD), ("next", "/")])
            .send()
    };
    assert_eq!(forged("attacker-chosen").await.expect("POST").status(), StatusCode::FORBIDDEN);

    // A pair another server issued (another key) is not this server's either.
    let other = App::start().await;
    let (cookie, csrf) = other.login_form().await;
    let value = cookie.split_once('=').expect("cookie").1.to_owned();
    assert_eq!(value, csrf, "double-submitted");
    assert_eq!(forged(&value).await.expect("POST").status(), StatusCode::FORBIDDEN);
    // Tampering with a genuine one breaks it.
    let (cookie, _) = app.login_form().await;
    let genuine = cookie.split_once('=').expect("cookie").1.to_owned();
    let mut tampered = genuine.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(forged(&String::from_utf8(tampered).expect("ascii")).await.expect("POST").status(), StatusCode::FORBIDDEN);

    // A genuine pair lasts an hour, as its cookie does.
    let (cookie, csrf) = app.login_form().await;
    app.clock.advance(time::Duration::minutes(61)).expect("manual clock");
    let late = app
        .http
        .post(app.url("/login"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("username", "alice"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .expect("POST");
    assert_eq!(late.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.sign_in("alice", PASSWORD, "/").await.status(), StatusCode::SEE_OTHER, "a fresh form works");
}

/// One HTTP/1.1 answer read off a connection: status, lowercased headers, body.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> Option<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let length: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).expect("a length");
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((status, headers, body))
}

#[tokio::test]
async fn a_refused_request_with_a_body_leaves_the_connection_usable() {
    let app = App::start().await;
    let alice = app.session("alice").await;
    let addr = app.server.local_addr();
    let body = br#"{"name": "Sales"}"#;
    // Changes with the session cookie but no CSRF header (refused before the body is read), a form post that
    // must sign in first, and a page: each followed on the same connection by the next, as a client does that
    // sends its whole body even when the answer came early, and that opens a new connection only when told to
    // (`Connection: close`).
    let refused_api = format!(
        "POST /api/v1/workspaces HTTP/1.1\r\nHost: x\r\nCookie: {alice}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let form = b"csrf=whatever&name=Sales";
    let refused_page = format!(
        "POST /workspaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        form.len()
    );
    let requests: Vec<(String, &[u8], u16)> = vec![
        (refused_api.clone(), body, 403),
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".into(), b"", 200),
        (refused_page.clone(), form, 303),
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".into(), b"", 200),
        (refused_api, body, 403),
        (refused_page, form, 303),
        ("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n".into(), b"", 200),
    ];
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    for (i, (head, body, expected)) in requests.into_iter().enumerate() {
        stream.write_all(head.as_bytes()).await.expect("write the head");
        // The head alone: the server answers before the body is there.
        let (status, headers, _) = read_answer(&mut stream).await.unwrap_or_else(|| panic!("request {i}: the connection was dropped"));
        assert_eq!(status, expected, "request {i}");
        let closing = headers.iter().any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"));
        if closing {
            stream = tokio::net::TcpStream::connect(addr).await.expect("reconnect");
        } else {
            stream.write_all(body).await.expect("the rest of the body");
        }
    }
}

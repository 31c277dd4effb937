//! The few HTML pages the sandbox serves: Entra's sign-in, consent and error pages, and the Power BI
//! service's pages for what only a person does (`web.rs`). Plain forms, no script.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    framed(status, "Microsoft Entra ID emulator", title, body)
}

/// A page of the Power BI service's emulator.
pub fn service_page(status: StatusCode, title: &str, body: &str) -> Response {
    framed(status, "Power BI service emulator", title, body)
}

fn framed(status: StatusCode, service: &str, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - pbi-bridge sandbox</title>
<style>
body{{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0;display:flex;justify-content:center;padding-top:8vh}}
main{{background:#fff;padding:44px;width:440px;box-shadow:0 2px 6px rgba(0,0,0,.2)}}
h1{{font-size:1.5rem;font-weight:600;margin:0 0 16px}} .sandbox{{color:#666;font-size:.8rem;margin-bottom:24px}}
label{{display:block;margin-top:12px}} input[type=text],input[type=password],input[type=email]{{width:100%;padding:6px 0;border:0;border-bottom:1px solid #666;font-size:1rem}}
button{{margin-top:24px;padding:6px 24px;font-size:1rem;border:1px solid #0067b8;background:#0067b8;color:#fff}}
button.secondary{{background:#ccc;border-color:#ccc;color:#000}} .error{{color:#e81123;margin-top:12px}} .ok{{color:#107c10}}
select{{width:100%;padding:4px 0;font-size:1rem}}
.tile{{border:1px solid #e1dfdd;padding:8px 12px;margin:12px 0}} .tile h2{{font-size:1rem;margin:0 0 6px}}
ul.perms li{{margin:6px 0}} code{{font-size:.85rem;word-break:break-all}}
pre.wrap{{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:8px;font-size:.85rem}}
</style></head>
<body><main><div class="sandbox">pbi-bridge sandbox &middot; {service}</div>
<h1>{title}</h1>
{body}
</main></body></html>"#,
        title = esc(title),
        service = esc(service)
    );
    (status, Html(html)).into_response()
}

/// A page that posts `fields` to `action` as soon as it loads (`response_mode=form_post`).
pub fn auto_post(action: &str, fields: &[(&str, String)]) -> Response {
    let inputs: String =
        fields.iter().map(|(name, value)| format!(r#"<input type="hidden" name="{}" value="{}">"#, esc(name), esc(value))).collect();
    let html = format!(
        r#"<!doctype html><html><head><title>Working...</title></head><body onload="document.forms[0].submit()">
<form method="POST" action="{}">{inputs}<noscript><button type="submit">Continue</button></noscript></form></body></html>"#,
        esc(action)
    );
    Html(html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}

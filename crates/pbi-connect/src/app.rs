//! An app as an administrator defines it, checked before anything is stored: each fault names its field.

use crate::AppError;
use pbi_store::NewApp;
use uuid::Uuid;

/// The most origins an app may list.
pub const MAX_ORIGINS: usize = 20;

/// An app as an edge received it (a form, the API, the CLI).
#[derive(Debug, Clone, Default)]
pub struct AppSpec {
    /// The name end users see on the connect page.
    pub name: String,
    /// The registration its end users connect through.
    pub registration_id: Uuid,
    /// Where the app's connect page and SDK may be used from (`https://erp.example.com`).
    pub allowed_origins: Vec<String>,
}

/// A checked app, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedApp(pub NewApp);

impl AppSpec {
    pub fn check(&self) -> Result<CheckedApp, AppError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AppError::invalid("name", "name the app (1 to 100 characters) as its users know it; the connect page shows it"));
        }
        if self.allowed_origins.len() > MAX_ORIGINS {
            return Err(AppError::invalid("allowedOrigins", format!("at most {MAX_ORIGINS} origins")));
        }
        let mut origins: Vec<String> = Vec::new();
        for (i, text) in self.allowed_origins.iter().enumerate() {
            let origin = parse_origin(text).map_err(|message| AppError::invalid(&format!("allowedOrigins[{i}]"), message))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(CheckedApp(NewApp { name: name.to_owned(), registration_id: self.registration_id, allowed_origins: origins }))
    }
}

/// Whether a URL a browser is sent to is https, or http on this machine (what Entra ID and browsers allow
/// without TLS).
pub fn secure_or_local(url: &url::Url) -> bool {
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    url.scheme() == "https" || (url.scheme() == "http" && local)
}

/// An origin the app's pages are served from, as a browser sends it in `Origin`: `scheme://host[:port]`
/// (lower-case, the default port left out), https except on this machine. The message says what to give.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    let example = "give the scheme, host and port the app's pages are served from, such as https://erp.example.com";
    let url = url::Url::parse(text).map_err(|e| format!("'{text}' is not an origin ({e}): {example}"))?;
    if !secure_or_local(&url) {
        return Err(format!("'{text}' must use https (http only for localhost): {example}"));
    }
    let bare =
        url.path() == "/" && url.query().is_none() && url.fragment().is_none() && url.username().is_empty() && url.password().is_none();
    if !bare || text.ends_with('/') {
        return Err(format!("'{text}' has more than an origin (a path, a query or a user): {example}"));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_app_is_named_and_its_origins_are_https_origins() {
        let spec = |name: &str, origins: &[&str]| AppSpec {
            name: name.into(),
            registration_id: Uuid::nil(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        };
        let checked =
            spec(" ERP ", &["https://ERP.example.com:443", "http://localhost:3000", "https://erp.example.com"]).check().expect("fits");
        assert_eq!(checked.0.name, "ERP");
        assert_eq!(checked.0.allowed_origins, ["https://erp.example.com", "http://localhost:3000"], "one of each, as browsers send them");
        let field = |s: AppSpec| s.check().expect_err("refused").field().map(str::to_owned);
        assert_eq!(field(spec("", &[])).as_deref(), Some("name"));
        assert_eq!(field(spec("ERP", &["https://ok.example", "http://erp.example.com"])).as_deref(), Some("allowedOrigins[1]"));
        assert_eq!(field(spec("ERP", &["https://erp.example.com/app"])).as_deref(), Some("allowedOrigins[0]"));
        assert_eq!(field(spec("ERP", &["erp.example.com"])).as_deref(), Some("allowedOrigins[0]"));
    }

    proptest! {
        /// Whatever is typed is refused, or is an origin that reads back as itself (https, or http on this machine).
        #[test]
        fn any_text_is_refused_or_an_origin_that_reads_back_as_itself(
            scheme in prop::sample::select(vec!["https", "http", "ftp", ""]),
            host in prop::sample::select(vec!["erp.example.com", "LOCALHOST", "127.0.0.1", "a b", "", "[::1]", "x@y"]),
            port in prop::option::of(0u16..),
            tail in "(/[a-z?#]{0,3})?",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            if let Ok(origin) = parse_origin(&format!("{scheme}://{host}{port}{tail}")) {
                let url = url::Url::parse(&origin).expect("a URL");
                prop_assert!(url.scheme() == "https" || ["localhost", "127.0.0.1", "[::1]"].contains(&url.host_str().unwrap_or_default()));
                prop_assert_eq!(parse_origin(&origin), Ok(origin.clone()));
                prop_assert_eq!(url.origin().ascii_serialization(), origin);
            }
        }
    }
}

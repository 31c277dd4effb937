//! Where a pinned tile may be drawn from. The workspace page hands each tile frame the user's Power BI token,
//! so a frame may only show an embed page of the configured Power BI: the cloud's web host
//! (`app.powerbi.com` and its sovereign siblings) or, when the registration names an API base (the sandbox,
//! a proxy), that host. A tile whose `embedUrl` is elsewhere is not pinned, not framed, and gets no token;
//! the same origins are the page's `frame-src`.

use pbi_powerbi::Cloud;
use pbi_store::Registration;
use url::{Origin, Url};

/// The origins tile frames may load from, for one configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedOrigins(Vec<Origin>);

impl EmbedOrigins {
    /// The registration's cloud's embed host, and its API base's host when it names one; none without a
    /// registration (Power BI is not configured).
    pub fn of(registration: Option<&Registration>) -> Self {
        let Some(registration) = registration else { return Self::default() };
        let mut origins: Vec<Origin> = Cloud::parse(&registration.details.cloud).map(|c| c.embed_base().origin()).into_iter().collect();
        // An API base that does not parse is refused where Power BI is called; here it just allows nothing.
        if let Some(base) = registration.details.api_base.as_deref().and_then(|b| Url::parse(b).ok()) {
            let origin = base.origin();
            if origin.is_tuple() && !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Self(origins)
    }

    /// The embed URL's origin when it is one of these, else why not.
    pub fn check(&self, embed_url: &str) -> Result<Origin, Refusal> {
        let allowed = if self.0.is_empty() {
            "none while Power BI is not configured".to_owned()
        } else {
            self.0.iter().map(Origin::ascii_serialization).collect::<Vec<_>>().join(" or ")
        };
        let origin = Url::parse(embed_url).ok().map(|url| url.origin());
        match origin {
            Some(origin) if self.0.contains(&origin) => Ok(origin),
            // An opaque origin (`data:`, `javascript:`) reads "null": say that there is no host at all.
            Some(origin) if origin.is_tuple() => Err(Refusal { at: Some(origin.ascii_serialization()), allowed }),
            _ => Err(Refusal { at: None, allowed }),
        }
    }

    /// The CSP `frame-src` source list: these origins, or `'none'`.
    pub fn frame_src(&self) -> String {
        if self.0.is_empty() {
            return "'none'".to_owned();
        }
        self.0.iter().map(Origin::ascii_serialization).collect::<Vec<_>>().join(" ")
    }
}

/// A tile's embed URL that is not on the configured Power BI's embed host, in words for each place it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The URL's origin; `None` when it has no host (not a URL, `data:`, …).
    at: Option<String>,
    /// The allowed origins, for a person to read.
    allowed: String,
}

impl Refusal {
    fn where_it_is(&self) -> String {
        match &self.at {
            Some(origin) => format!("is on {origin}"),
            None => "names no web host".to_owned(),
        }
    }

    /// For a pinned tile: why it is not drawn, and what to do.
    pub fn drawing(&self) -> String {
        format!(
            "This tile's embed URL {}, not the configured Power BI's embed host ({}), so it is not drawn and your Power BI \
             token is not sent there. Unpin it; if your Power BI really is there, ask your administrator to check the Power \
             BI configuration (cloud and API URL).",
            self.where_it_is(),
            self.allowed
        )
    }

    /// For a tile being pinned: why it is refused, and what to do.
    pub fn pinning(&self) -> String {
        format!(
            "Power BI gave its embed URL, which {}, not the configured Power BI's embed host ({}); pbi-bridge sends your \
             Power BI token only there. If your Power BI really is there, ask your administrator to check the Power BI \
             configuration (cloud and API URL).",
            self.where_it_is(),
            self.allowed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbi_store::NewRegistration;

    fn registration(cloud: &str, api_base: Option<&str>) -> Registration {
        Registration {
            id: uuid::Uuid::nil(),
            details: NewRegistration {
                name: "erp".into(),
                client_id: String::new(),
                tenant: String::new(),
                cloud: cloud.into(),
                redirect_urls: Vec::new(),
                scopes: Vec::new(),
                authorize_url: None,
                token_url: None,
                api_base: api_base.map(str::to_owned),
                enabled: true,
            },
            created_at: 0,
            updated_at: 0,
            removed_at: None,
        }
    }

    #[test]
    fn each_cloud_allows_its_own_embed_host_and_nothing_that_only_looks_like_it() {
        let public = EmbedOrigins::of(Some(&registration("public", None)));
        assert!(public.check("https://app.powerbi.com/embed?dashboardId=d&tileId=t&groupId=g").is_ok());
        assert!(public.check("https://APP.powerbi.com:443/embed").is_ok(), "the same origin, however written");
        for foreign in [
            "https://app.powerbi.com.evil.example/embed",
            "https://evil.example/embed?next=https://app.powerbi.com",
            "http://app.powerbi.com/embed",
            "https://app.powerbi.com:8443/embed",
            "https://app.powerbigov.us/embed",
            "javascript:alert(1)",
            "data:text/html,<p>x</p>",
        ] {
            let refused = public.check(foreign).expect_err(foreign).drawing();
            assert!(refused.contains("(https://app.powerbi.com)") && refused.contains("not drawn"), "{foreign}: {refused}");
        }
        let look_alike = public.check("https://app.powerbi.com.evil.example/embed").expect_err("refused");
        assert!(look_alike.drawing().contains("is on https://app.powerbi.com.evil.example,"), "{look_alike:?}");
        assert!(look_alike.pinning().contains("is on https://app.powerbi.com.evil.example,"), "{look_alike:?}");
        for no_host in ["", "not a URL", "javascript:alert(1)"] {
            assert!(public.check(no_host).expect_err(no_host).drawing().contains("names no web host"), "{no_host}");
        }
        assert_eq!(public.frame_src(), "https://app.powerbi.com");

        let dod = EmbedOrigins::of(Some(&registration("US DoD", None)));
        assert!(dod.check("https://app.mil.powerbigov.us/embed").is_ok() && dod.check("https://app.powerbi.com/embed").is_err());
        let china = EmbedOrigins::of(Some(&registration("china", None)));
        assert!(china.check("https://app.powerbi.cn/embed").is_ok());
    }

    #[test]
    fn an_api_base_adds_its_own_host() {
        let sandbox = EmbedOrigins::of(Some(&registration("public", Some("http://127.0.0.1:8400/"))));
        assert!(sandbox.check("http://127.0.0.1:8400/embed?tileId=t").is_ok());
        assert!(sandbox.check("http://127.0.0.1:8401/embed").is_err(), "another port is another origin");
        assert!(sandbox.check("http://localhost:8400/embed").is_err(), "another name is another origin");
        assert_eq!(sandbox.frame_src(), "https://app.powerbi.com http://127.0.0.1:8400");
    }

    #[test]
    fn without_a_configuration_nothing_is_allowed() {
        let none = EmbedOrigins::of(None);
        assert!(none.check("https://app.powerbi.com/embed").expect_err("refused").drawing().contains("not configured"));
        assert_eq!(none.frame_src(), "'none'");
    }
}

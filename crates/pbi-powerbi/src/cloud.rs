//! National clouds: where the API lives, which resource tokens are for, and where users sign in.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cloud {
    Public,
    UsGcc,
    UsGccHigh,
    UsDod,
    China,
    /// Any API host (the sandbox in tests), with the resource and login host to use with it.
    Custom {
        api_base: Url,
        resource: String,
        login_host: Url,
    },
}

impl Cloud {
    pub fn parse(name: &str) -> Option<Cloud> {
        Some(match name.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "public" | "commercial" => Cloud::Public,
            "usgcc" | "gcc" => Cloud::UsGcc,
            "usgcchigh" | "gcchigh" => Cloud::UsGccHigh,
            "usdod" | "dod" => Cloud::UsDod,
            "china" | "21vianet" => Cloud::China,
            _ => return None,
        })
    }

    /// `https://api.powerbi.com` and its siblings (POWERBI.md §9).
    pub fn api_base(&self) -> Url {
        let text = match self {
            Cloud::Public => "https://api.powerbi.com",
            Cloud::UsGcc => "https://api.powerbigov.us",
            Cloud::UsGccHigh => "https://api.high.powerbigov.us",
            Cloud::UsDod => "https://api.mil.powerbigov.us",
            Cloud::China => "https://api.powerbi.cn",
            Cloud::Custom { api_base, .. } => return api_base.clone(),
        };
        Url::parse(text).expect("the documented API hosts are valid URLs")
    }

    /// Where the cloud's embed pages are (`embedUrl`s point there): `https://app.powerbi.com` and its siblings
    /// (POWERBI.md §9); a custom cloud's are at its API base, as the sandbox serves them.
    pub fn embed_base(&self) -> Url {
        let text = match self {
            Cloud::Public => "https://app.powerbi.com",
            Cloud::UsGcc => "https://app.powerbigov.us",
            Cloud::UsGccHigh => "https://app.high.powerbigov.us",
            Cloud::UsDod => "https://app.mil.powerbigov.us",
            Cloud::China => "https://app.powerbi.cn",
            Cloud::Custom { api_base, .. } => return api_base.clone(),
        };
        Url::parse(text).expect("the documented embed hosts are valid URLs")
    }

    /// The resource tokens are issued for; scopes are `{resource}/.default` or `{resource}/Name`.
    pub fn resource(&self) -> &str {
        match self {
            Cloud::Public => "https://analysis.windows.net/powerbi/api",
            Cloud::UsGcc => "https://analysis.usgovcloudapi.net/powerbi/api",
            Cloud::UsGccHigh => "https://high.analysis.usgovcloudapi.net/powerbi/api",
            Cloud::UsDod => "https://mil.analysis.usgovcloudapi.net/powerbi/api",
            Cloud::China => "https://analysis.chinacloudapi.cn/powerbi/api",
            Cloud::Custom { resource, .. } => resource,
        }
    }

    pub fn login_host(&self) -> Url {
        let text = match self {
            Cloud::Public | Cloud::UsGcc => "https://login.microsoftonline.com",
            Cloud::UsGccHigh | Cloud::UsDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
            Cloud::Custom { login_host, .. } => return login_host.clone(),
        };
        Url::parse(text).expect("the documented login hosts are valid URLs")
    }

    /// A custom cloud at `base` that otherwise behaves as Public (the sandbox serves both services there).
    pub fn custom(base: Url) -> Cloud {
        Cloud::Custom { api_base: base.clone(), resource: Cloud::Public.resource().to_owned(), login_host: base }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sovereign_clouds_have_their_documented_hosts() {
        assert_eq!(Cloud::parse("GCC High"), Some(Cloud::UsGccHigh));
        assert_eq!(Cloud::UsGccHigh.api_base().as_str(), "https://api.high.powerbigov.us/");
        assert_eq!(Cloud::UsDod.resource(), "https://mil.analysis.usgovcloudapi.net/powerbi/api");
        assert_eq!(Cloud::China.login_host().as_str(), "https://login.chinacloudapi.cn/");
        assert_eq!(Cloud::parse("mars"), None);
        assert_eq!(Cloud::Public.embed_base().as_str(), "https://app.powerbi.com/");
        assert_eq!(Cloud::UsDod.embed_base().as_str(), "https://app.mil.powerbigov.us/");
        assert_eq!(Cloud::China.embed_base().as_str(), "https://app.powerbi.cn/");
        let sandbox = Url::parse("http://127.0.0.1:8400").expect("URL");
        assert_eq!(Cloud::custom(sandbox.clone()).embed_base(), sandbox);
    }
}

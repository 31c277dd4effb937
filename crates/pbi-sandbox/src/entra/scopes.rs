//! OAuth scopes as Entra reads them: OpenID scopes plus the permissions of one resource (Power BI).

use crate::model::RequestedScopes;
use std::collections::BTreeSet;

/// The Power BI service's application ID URI: the `aud` of its tokens and the prefix of its scopes.
pub const POWER_BI_RESOURCE: &str = "https://analysis.windows.net/powerbi/api";
/// The Power BI service's application id, accepted in place of the URI.
pub const POWER_BI_APP_ID: &str = "00000009-0000-0000-c000-000000000000";

/// Power BI's delegated permissions as the Azure portal names them, with the consent text.
pub const DELEGATED_PERMISSIONS: &[(&str, &str)] = &[
    ("App.Read.All", "View all Power BI apps"),
    ("Capacity.Read.All", "View all capacities"),
    ("Capacity.ReadWrite.All", "Read and write all capacities"),
    ("Content.Create", "Create content"),
    ("Dashboard.Read.All", "View all dashboards"),
    ("Dashboard.ReadWrite.All", "Read and write all dashboards"),
    ("Dataflow.Read.All", "View all dataflows"),
    ("Dataflow.ReadWrite.All", "Read and write all dataflows"),
    ("Dataset.Read.All", "View all datasets"),
    ("Dataset.ReadWrite.All", "Read and write all datasets"),
    ("Pipeline.Read.All", "View all deployment pipelines"),
    ("Pipeline.ReadWrite.All", "Read and write all deployment pipelines"),
    ("Report.Read.All", "View all reports"),
    ("Report.ReadWrite.All", "Read and write all reports"),
    ("StorageAccount.Read.All", "View all storage accounts"),
    ("StorageAccount.ReadWrite.All", "Read and write all storage accounts"),
    ("Tenant.Read.All", "View all content in tenant"),
    ("Tenant.ReadWrite.All", "Read and write all content in tenant"),
    ("Workspace.Read.All", "View all workspaces"),
    ("Workspace.ReadWrite.All", "Read and write all workspaces"),
];

/// Permissions only an administrator may consent to.
pub const ADMIN_ONLY: &[&str] = &["Tenant.Read.All", "Tenant.ReadWrite.All"];

pub fn canonical_permission(name: &str) -> Option<&'static str> {
    DELEGATED_PERMISSIONS.iter().map(|(n, _)| *n).find(|n| n.eq_ignore_ascii_case(name))
}

pub fn permission_description(name: &str) -> &'static str {
    DELEGATED_PERMISSIONS.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d)
}

fn is_power_bi_resource(resource: &str) -> bool {
    let resource = resource.trim_end_matches('/');
    resource.eq_ignore_ascii_case(POWER_BI_RESOURCE) || resource.eq_ignore_ascii_case(POWER_BI_APP_ID)
}

/// The resource part of a v1 `resource=` parameter, if it names Power BI.
pub fn parse_v1_resource(resource: &str) -> Result<(), String> {
    if is_power_bi_resource(resource) {
        Ok(())
    } else {
        Err(format!("Resource '{resource}' is not registered in this sandbox. The only resource it serves is {POWER_BI_RESOURCE}."))
    }
}

/// Reads a space-separated v2 `scope` value. The error text is the `AADSTS70011` message.
pub fn parse(scope: &str) -> Result<RequestedScopes, String> {
    let mut scopes = RequestedScopes::default();
    for item in scope.split_whitespace() {
        match item.to_ascii_lowercase().as_str() {
            "openid" => scopes.openid = true,
            "profile" => scopes.profile = true,
            "email" => scopes.email = true,
            "offline_access" => scopes.offline_access = true,
            _ => {
                let Some((resource, name)) = item.rsplit_once('/') else {
                    return Err(format!(
                        "The provided value for the input parameter 'scope' is not valid. The scope '{item}' is not valid: Power BI permissions are named with their resource, for example {POWER_BI_RESOURCE}/Dashboard.Read.All."
                    ));
                };
                if !is_power_bi_resource(resource) {
                    return Err(format!(
                        "The provided value for the input parameter 'scope' is not valid. The resource '{resource}' is not registered in this sandbox; it serves {POWER_BI_RESOURCE} only."
                    ));
                }
                if name == ".default" {
                    scopes.default_scope = true;
                } else {
                    let Some(canonical) = canonical_permission(name) else {
                        return Err(format!(
                            "The provided value for the input parameter 'scope' is not valid. The scope '{item}' does not exist."
                        ));
                    };
                    scopes.resource.insert(canonical.to_owned());
                }
            }
        }
    }
    Ok(scopes)
}

impl RequestedScopes {
    pub fn wants_resource(&self) -> bool {
        self.default_scope || !self.resource.is_empty()
    }

    /// The permissions this request stands for: the named ones, or all configured ones for `.default`.
    pub fn effective(&self, configured: &BTreeSet<String>) -> BTreeSet<String> {
        let mut out = self.resource.clone();
        if self.default_scope {
            out.extend(configured.iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_openid_and_power_bi_scopes() {
        let scopes = parse("openid offline_access https://analysis.windows.net/powerbi/api/dashboard.read.all https://analysis.windows.net/powerbi/api/Report.Read.All").expect("valid");
        assert!(scopes.openid && scopes.offline_access && !scopes.profile);
        assert_eq!(scopes.resource.iter().map(String::as_str).collect::<Vec<_>>(), ["Dashboard.Read.All", "Report.Read.All"]);
    }

    #[test]
    fn refuses_bare_unknown_and_foreign_scopes() {
        assert!(parse("Dashboard.Read.All").is_err());
        assert!(parse("https://analysis.windows.net/powerbi/api/Nope.All").is_err());
        assert!(parse("https://graph.microsoft.com/User.Read").is_err());
        assert!(parse("https://analysis.windows.net/powerbi/api/.default").expect("valid").default_scope);
    }

    /// One item of a generated `scope` value: its text, and what Entra makes of it.
    #[derive(Debug, Clone)]
    enum Meant {
        Flag(usize),
        Permission(&'static str),
        Default,
        /// Refused: a permission not named with its resource.
        Bare,
        /// Refused: a resource the sandbox does not serve (the text of the resource part).
        Foreign(String),
        /// Refused: a Power BI permission that does not exist.
        Unknown,
    }

    const FLAGS: [&str; 4] = ["openid", "profile", "email", "offline_access"];

    /// Any mix of upper and lower case, as clients send (Entra reads scope names ignoring case).
    fn any_case(text: &'static str) -> impl Strategy<Value = String> {
        any::<u64>().prop_map(move |bits| {
            text.chars()
                .enumerate()
                .map(|(i, c)| if bits >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect()
        })
    }

    /// Power BI as a scope's resource: its application ID URI or its application id, in any case.
    fn power_bi() -> impl Strategy<Value = String> {
        prop_oneof![3 => any_case(POWER_BI_RESOURCE), 1 => any_case(POWER_BI_APP_ID)]
    }

    fn permission_name() -> impl Strategy<Value = &'static str> {
        prop::sample::select(DELEGATED_PERMISSIONS.iter().map(|(name, _)| *name).collect::<Vec<_>>())
    }

    /// An item from the grammar: valid ones (OpenID scopes, Power BI permissions, `.default`), then ones
    /// changed just enough to be refused each way.
    fn item() -> impl Strategy<Value = (String, Meant)> {
        let flag = (0..FLAGS.len()).prop_flat_map(|i| any_case(FLAGS[i]).prop_map(move |text| (text, Meant::Flag(i))));
        let permission = (power_bi(), permission_name().prop_flat_map(|name| (Just(name), any_case(name))))
            .prop_map(|(resource, (name, spelled))| (format!("{resource}/{spelled}"), Meant::Permission(name)));
        let default = power_bi().prop_map(|resource| (format!("{resource}/.default"), Meant::Default));
        let bare = prop_oneof![permission_name().prop_map(str::to_owned), Just(".default".to_owned()), Just("openid2".to_owned())]
            .prop_map(|text| (text, Meant::Bare));
        let foreign_resource = prop_oneof![
            Just("https://graph.microsoft.com"),
            Just("api://00000009-0000-0000-c000-000000000001"),
            Just("https://analysis.windows.net/powerbi"),
            Just("https://analysis.windows.net/powerbi/apis"),
            Just("https://analysis.windows.net/powerbi/api/Dashboard.Read.All"),
        ];
        let foreign = (foreign_resource, permission_name())
            .prop_map(|(resource, name)| (format!("{resource}/{name}"), Meant::Foreign(resource.to_owned())));
        let unknown = (power_bi(), permission_name(), 0..3usize)
            .prop_map(|(resource, name, how)| {
                let wrong = match how {
                    0 => format!("{name}x"),
                    1 => name.replace(".All", ".Some"),
                    _ => name.replace('.', ""),
                };
                (format!("{resource}/{wrong}"), wrong)
            })
            .prop_filter("still a permission", |(_, wrong)| canonical_permission(wrong).is_none())
            .prop_map(|(text, _)| (text, Meant::Unknown));
        prop_oneof![3 => flag, 4 => permission, 1 => default, 1 => bare, 1 => foreign, 1 => unknown]
    }

    /// Items joined by any run of whitespace, with some before and after.
    fn scope_value() -> impl Strategy<Value = (String, Vec<(String, Meant)>)> {
        let gap = || prop_oneof![Just(" "), Just("  "), Just("\t"), Just("\n"), Just(" \r\n")];
        (proptest::collection::vec((item(), gap()), 1..6), prop::option::of(gap())).prop_map(|(items, lead)| {
            let text = items.iter().fold(lead.unwrap_or_default().to_owned(), |text, ((item, _), gap)| format!("{text}{item}{gap}"));
            (text, items.into_iter().map(|(item, _)| item).collect())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn never_panics(scope in ".{0,200}") {
            let _ = parse(&scope);
        }

        /// A value is read exactly as its items mean, or refused at its first bad item with the reason for it.
        #[test]
        fn scopes_read_as_their_items_mean_or_the_first_bad_one_is_named((scope, items) in scope_value()) {
            let first_bad = items.iter().find(|(_, meant)| matches!(meant, Meant::Bare | Meant::Foreign(_) | Meant::Unknown));
            match (parse(&scope), first_bad) {
                (Ok(read), None) => {
                    let mut meant = RequestedScopes::default();
                    for (_, item) in &items {
                        match item {
                            Meant::Flag(0) => meant.openid = true,
                            Meant::Flag(1) => meant.profile = true,
                            Meant::Flag(2) => meant.email = true,
                            Meant::Flag(_) => meant.offline_access = true,
                            Meant::Permission(name) => {
                                meant.resource.insert((*name).to_owned());
                            }
                            _ => meant.default_scope = true,
                        }
                    }
                    prop_assert_eq!(read, meant, "{:?}", scope);
                }
                (Err(message), Some((text, why))) => {
                    prop_assert!(message.starts_with("The provided value for the input parameter 'scope' is not valid."), "{}", message);
                    let reason = match why {
                        Meant::Bare => format!("The scope '{text}' is not valid: Power BI permissions are named with their resource"),
                        Meant::Foreign(resource) => format!("The resource '{resource}' is not registered in this sandbox"),
                        _ => format!("The scope '{text}' does not exist."),
                    };
                    prop_assert!(message.contains(&reason), "{} should say {}", message, reason);
                }
                (read, first_bad) => prop_assert!(false, "{:?} read as {:?} (first bad item: {:?})", scope, read, first_bad),
            }
        }
    }
}

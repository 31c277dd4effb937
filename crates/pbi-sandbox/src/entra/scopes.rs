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

    proptest! {
        #[test]
        fn never_panics(scope in ".{0,200}") {
            let _ = parse(&scope);
        }
    }
}

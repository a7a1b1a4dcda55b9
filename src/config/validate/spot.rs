//! `[spot]`: the API base URL, the token, the write concurrency, and what each Okta role
//! means in Spot (`[spot.roles.viewer]`, `[spot.roles.editor]`: a Spot organization role and
//! policy names; a key left out keeps the role's default).
//!
//! Returns [`SpotSettings`] or every problem found. Must never log; the token is read by
//! `secrets` and never appears in a message. Policy names are resolved to ids at run time
//! (`apply`), not here.

use std::collections::BTreeMap;

use super::super::keys::SPOT_ROLES;
use super::super::raw::{RawRole, RawSpot};
use super::super::secrets::{resolve_token, TokenSource};
use super::super::settings::{SpotRoleSettings, SpotRoles, SpotSettings};
use super::{in_range, validate_base_url, Problems};
use crate::model::Role;

/// The `[spot]` section.
pub(super) fn settings(
    raw: RawSpot,
    insecure: bool,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<SpotSettings, Vec<String>> {
    let mut p = Problems::default();
    let base_url = p.check(validate_base_url(
        "spot.base_url",
        raw.base_url.trim(),
        insecure,
    ));
    let token = p.check(resolve_token(
        &TokenSource::SPOT,
        raw.token,
        raw.token_file.as_deref(),
        vars,
        warnings,
    ));
    let write_concurrency = p.check(in_range(
        "spot.write_concurrency",
        raw.write_concurrency,
        1,
        64,
    ));
    let viewer = p.check(validate_role(Role::Viewer, raw.roles.viewer));
    let editor = p.check(validate_role(Role::Editor, raw.roles.editor));
    match (base_url, token, write_concurrency, viewer, editor) {
        (Some(base_url), Some(token), Some(write_concurrency), Some(viewer), Some(editor))
            if p.is_empty() =>
        {
            Ok(SpotSettings {
                base_url,
                token,
                write_concurrency,
                roles: SpotRoles { viewer, editor },
            })
        }
        _ => Err(p.into_problems("a [spot] setting")),
    }
}

/// `[spot.roles.<role>]` over the role's default: `spot_role` must be one of [`SPOT_ROLES`]
/// (lower-cased); policies are de-duplicated, in order.
fn validate_role(role: Role, raw: RawRole) -> Result<SpotRoleSettings, String> {
    let defaults = SpotRoles::default().get(role).clone();
    let key = format!("spot.roles.{role}");
    let spot_role = match raw.spot_role {
        None => defaults.spot_role,
        Some(s) => {
            let t = s.trim().to_ascii_lowercase();
            if !SPOT_ROLES.contains(&t.as_str()) {
                return Err(format!(
                    "{key}.spot_role = {s:?} is not a Spot organization role; use one of {} \
                     (the default for {role} is \"{}\")",
                    SPOT_ROLES
                        .iter()
                        .map(|r| format!("\"{r}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    defaults.spot_role
                ));
            }
            t
        }
    };
    let mut policies: Vec<String> = Vec::new();
    for p in raw.policies.unwrap_or(defaults.policies) {
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    Ok(SpotRoleSettings {
        spot_role,
        policies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_roles_are_spot_s_organization_roles() {
        let role = |s: &str| {
            validate_role(
                Role::Viewer,
                RawRole {
                    spot_role: Some(s.to_string()),
                    policies: None,
                },
            )
        };
        assert_eq!(role(" Admin ").unwrap().spot_role, "admin");
        assert_eq!(role("editor").unwrap().spot_role, "editor");
        for bad in ["viwer", "owner", "", "read_only"] {
            let err = role(bad).unwrap_err();
            assert!(
                err.contains("spot.roles.viewer.spot_role")
                    && err.contains("\"viewer\", \"editor\", \"admin\""),
                "{bad}: {err}"
            );
        }
    }
}

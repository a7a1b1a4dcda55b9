//! `[okta]`: the org URL, the app id, how to authenticate (an SSWS token, or an OAuth 2.0
//! service app whose private key is parsed and test-signed here, so a bad key is an error at
//! start), the role attribute, paging, the user statuses and the read bounds.
//!
//! Returns [`OktaSettings`] or every problem found. Must never log; the token and the key are
//! read by `secrets` and never appear in a message.

use std::collections::BTreeMap;

use super::super::keys::{env_var_for_key, DEFAULT_OKTA_SCOPES, OKTA_USER_STATUSES};
use super::super::raw::RawOkta;
use super::super::secrets::{resolve_private_key, resolve_token, TokenSource};
use super::super::settings::{OAuthSettings, OktaAuth, OktaSettings, ReadBounds};
use super::{in_range, join_problems, validate_base_url, validate_duration, Problems};

/// The `[okta]` section.
pub(super) fn settings(
    raw: RawOkta,
    insecure: bool,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<OktaSettings, Vec<String>> {
    let mut p = Problems::default();
    let org_url = match raw.org_url.as_deref().map(str::trim) {
        None | Some("") => {
            p.push(format!(
                "okta.org_url is not set; add org_url = \"https://<your-org>.okta.com\" under \
                 [okta], or set {}",
                env_var_for_key("okta.org_url")
            ));
            None
        }
        Some(u) => p.check(validate_base_url("okta.org_url", u, insecure)),
    };
    let app_id = p.check(validate_app_id(raw.app_id.as_deref()));
    let auth = p.check(validate_auth(&raw, vars, warnings));
    let role_attribute = p.check(validate_role_attribute(&raw.role_attribute));
    let page_size = p.check(in_range("okta.page_size", raw.page_size, 1, 500));
    let max_api_capacity_percent = p.check(in_range(
        "okta.max_api_capacity_percent",
        raw.max_api_capacity_percent,
        1,
        100,
    ));
    let read_bounds = p.section(validate_read_bounds(&raw));
    let statuses = p.section(validate_status_lists(&raw));
    match (
        org_url,
        app_id,
        auth,
        role_attribute,
        page_size,
        max_api_capacity_percent,
        read_bounds,
        statuses,
    ) {
        (
            Some(org_url),
            Some(app_id),
            Some(auth),
            Some(role_attribute),
            Some(page_size),
            Some(max_api_capacity_percent),
            Some(read_bounds),
            Some((provision_statuses, hold_statuses)),
        ) if p.is_empty() => Ok(OktaSettings {
            org_url,
            app_id,
            auth,
            role_attribute,
            page_size,
            provision_statuses,
            hold_statuses,
            max_api_capacity_percent,
            read_bounds,
        }),
        _ => Err(p.into_problems("an [okta] setting")),
    }
}

/// `okta.max_read_pages`, `okta.max_read_rows`, `okta.max_read_time`.
fn validate_read_bounds(raw: &RawOkta) -> Result<ReadBounds, Vec<String>> {
    let mut p = Problems::default();
    let max_pages = p.check(in_range(
        "okta.max_read_pages",
        raw.max_read_pages,
        1,
        i64::from(u32::MAX),
    ));
    let max_rows = p.check(in_range(
        "okta.max_read_rows",
        raw.max_read_rows,
        1,
        i64::MAX,
    ));
    let max_time = p.check(validate_duration(
        "okta.max_read_time",
        &raw.max_read_time,
        "\"2h\" (a read that takes longer is aborted; raise it for a very large app)",
    ));
    // The ranges above exclude zero, so `ReadBounds::new` only fails if one was reported.
    match (max_pages, max_rows, max_time) {
        (Some(pages), Some(rows), Some(time)) => {
            ReadBounds::new(pages, rows, time).ok_or_else(|| p.into_problems("okta.max_read_*"))
        }
        _ => Err(p.into_problems("okta.max_read_*")),
    }
}

/// `okta.provision_statuses` (at least one) and `okta.hold_statuses`, which must not overlap.
fn validate_status_lists(raw: &RawOkta) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    let mut p = Problems::default();
    let provision = p.check(validate_statuses(
        "okta.provision_statuses",
        &raw.provision_statuses,
    ));
    let hold = p.check(validate_statuses("okta.hold_statuses", &raw.hold_statuses));
    if let Some(prov) = &provision {
        if prov.is_empty() {
            p.push(format!(
                "okta.provision_statuses is empty, so no Okta user would be provisioned; list at \
                 least one of {}",
                OKTA_USER_STATUSES.join(", ")
            ));
        }
    }
    if let (Some(prov), Some(hold)) = (&provision, &hold) {
        let both: Vec<&str> = prov
            .iter()
            .filter(|s| hold.contains(s))
            .map(String::as_str)
            .collect();
        if !both.is_empty() {
            p.push(format!(
                "okta.provision_statuses and okta.hold_statuses both list {}; a status must be \
                 in at most one of them, remove it from one list",
                both.join(", ")
            ));
        }
    }
    match (provision, hold) {
        (Some(provision), Some(hold)) if p.is_empty() => Ok((provision, hold)),
        _ => Err(p.into_problems("an okta status list")),
    }
}

/// `okta.auth` and the credential it needs: the SSWS token, or the OAuth service app. Keys
/// of the other method are ignored with a warning.
fn validate_auth(
    raw: &RawOkta,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<OktaAuth, String> {
    match raw.auth.trim().to_ascii_lowercase().as_str() {
        "oauth" => {
            for (key, set) in [
                ("okta.token", raw.token.is_some()),
                (
                    "okta.token_file",
                    raw.token_file
                        .as_deref()
                        .is_some_and(|f| !f.trim().is_empty()),
                ),
            ] {
                if set {
                    warnings.push(format!(
                        "{key} is ignored because okta.auth = \"oauth\"; remove it (the service \
                         app authenticates with okta.private_key_file)"
                    ));
                }
            }
            validate_oauth(raw, vars, warnings).map(OktaAuth::OAuth)
        }
        "ssws" => {
            for (key, set) in [
                ("okta.client_id", raw.client_id.is_some()),
                ("okta.private_key_file", raw.private_key_file.is_some()),
                ("okta.key_id", raw.key_id.is_some()),
            ] {
                if set {
                    warnings.push(format!(
                        "{key} is ignored because okta.auth = \"ssws\"; set okta.auth = \
                         \"oauth\" to use the OAuth service app, or remove it"
                    ));
                }
            }
            resolve_token(
                &TokenSource::OKTA,
                raw.token.clone(),
                raw.token_file.as_deref(),
                vars,
                warnings,
            )
            .map(OktaAuth::Ssws)
            .map_err(|e| {
                if raw.client_id.is_some() {
                    format!(
                        "{e}; okta.client_id is set: to use the OAuth service app instead, set \
                         okta.auth = \"oauth\""
                    )
                } else {
                    e
                }
            })
        }
        _ => Err(format!(
            "okta.auth = {:?} is not an authentication method; use \"ssws\" (API token) or \
             \"oauth\" (OAuth 2.0 service app, preferred)",
            raw.auth
        )),
    }
}

fn validate_app_id(raw: Option<&str>) -> Result<String, String> {
    let id = raw.map(str::trim).unwrap_or("");
    if id.is_empty() {
        return Err(format!(
            "okta.app_id is not set; add app_id = \"0oa…\" under [okta] (the id in the Okta \
             admin console URL of the Spot app), or set {}",
            env_var_for_key("okta.app_id")
        ));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "okta.app_id = {id:?} is not an Okta id (letters and digits only, e.g. \
             \"0oa1example\"); copy the app id from the Okta admin console"
        ));
    }
    Ok(id.to_string())
}

fn validate_role_attribute(raw: &str) -> Result<String, String> {
    let attr = raw.trim();
    if attr.is_empty() || attr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "okta.role_attribute = {raw:?} is not an attribute name; use the variable name of \
             the app-user profile attribute, e.g. \"role\""
        ));
    }
    Ok(attr.to_string())
}

fn validate_statuses(key: &str, raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for s in raw {
        let up = s.trim().to_ascii_uppercase();
        if !OKTA_USER_STATUSES.contains(&up.as_str()) {
            bad.push(format!("{s:?}"));
        } else if !out.contains(&up) {
            out.push(up);
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "{key} contains {} which {} not an Okta user status; use only {}",
            bad.join(", "),
            if bad.len() == 1 { "is" } else { "are" },
            OKTA_USER_STATUSES.join(", ")
        ));
    }
    Ok(out)
}

/// `okta.client_id`, `okta.private_key_file` (or the systemd credential), `okta.key_id`,
/// `okta.scopes`, `okta.dpop` for `okta.auth = "oauth"`. Several problems are one counted
/// message.
fn validate_oauth(
    raw: &RawOkta,
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<OAuthSettings, String> {
    let mut p = Problems::default();
    let client_id = match raw.client_id.as_deref().map(str::trim) {
        None | Some("") => {
            p.push(format!(
                "okta.client_id is not set but okta.auth = \"oauth\"; set it to the Client ID of \
                 the Okta API Services app (Applications → the app → General), or set {}",
                env_var_for_key("okta.client_id")
            ));
            None
        }
        Some(id)
            if id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Some(id.to_string())
        }
        Some(id) => {
            p.push(format!(
                "okta.client_id = {id:?} is not an Okta client ID (letters, digits, '-' and '_', \
                 e.g. \"0oa1serviceapp\"); copy it from the service app's General tab"
            ));
            None
        }
    };
    let key_id = match raw.key_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(k) if k.len() <= 200 && !k.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Some(k.to_string())
        }
        Some(k) => {
            p.push(format!(
                "okta.key_id = {k:?} is not a key ID; copy the KID of the public key from the \
                 service app (General → Public keys), or remove it"
            ));
            None
        }
    };
    let pem = p.check(resolve_private_key(
        raw.private_key_file.as_deref(),
        vars,
        warnings,
    ));
    let key = pem.and_then(|(label, pem)| {
        p.check(
            crate::okta::jwt::ClientKey::from_pem(pem, key_id.clone())
                .map_err(|e| format!("{label}: {e}")),
        )
    });
    let scopes = p.check(validate_scopes(&raw.scopes));
    if let Some(scopes) = &scopes {
        for (needed, why) in [
            ("okta.apps.read", "listing the app's users"),
            ("okta.users.read", "reading users"),
        ] {
            let manage = needed.replace(".read", ".manage");
            if !scopes.iter().any(|s| *s == needed || *s == manage) {
                warnings.push(format!(
                    "okta.scopes does not include {needed}, which {why} needs; add it (and grant \
                     it to the service app under Okta API Scopes)"
                ));
            }
        }
    }
    match (client_id, key, scopes) {
        (Some(client_id), Some(key), Some(scopes)) if p.is_empty() => Ok(OAuthSettings {
            client_id,
            key,
            scopes,
            dpop: raw.dpop,
        }),
        _ => Err(join_problems(p.into_problems("an OAuth setting"))),
    }
}

/// Okta API scopes: `okta.<resource>.<read|manage|…>`, de-duplicated, at least one.
fn validate_scopes(raw: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    for s in raw {
        let t = s.trim();
        let ok = t.starts_with("okta.")
            && t.len() > 5
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        if !ok {
            bad.push(format!("{s:?}"));
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    if !bad.is_empty() {
        return Err(format!(
            "okta.scopes contains {} which {} not an Okta API scope; use scopes such as {}",
            bad.join(", "),
            if bad.len() == 1 { "is" } else { "are" },
            DEFAULT_OKTA_SCOPES.join(", ")
        ));
    }
    if out.is_empty() {
        return Err(format!(
            "okta.scopes is empty; list the scopes to request, e.g. [{}]",
            DEFAULT_OKTA_SCOPES
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_uppercased_and_deduplicated() {
        assert_eq!(
            validate_statuses("k", &["active".into(), " Active ".into(), "staged".into()]),
            Ok(vec!["ACTIVE".to_string(), "STAGED".to_string()])
        );
        let err = validate_statuses("k", &["ACTIVE".into(), "INACTIVE".into()]).unwrap_err();
        assert!(err.contains("\"INACTIVE\""), "{err}");
    }
}

//! Fuzzing the two response parsers with proptest: arbitrary bytes, arbitrary JSON values and
//! realistic rows with random field types. Neither parser may panic; a row that can be
//! attributed to a user is never dropped, and bad data in it becomes a reason to hold, not a
//! guess. The corpus stays small: proptest's regression file keeps only failures.

use okta_spot_sync::model::SpotUserKind;
use okta_spot_sync::okta::classify::{classify, ClassifyRules};
use okta_spot_sync::okta::parse::{parse_page, parse_page_row_by_row};
use okta_spot_sync::spot::access::parse_user_details;
use okta_spot_sync::spot::client::parse_user_list;
use okta_spot_sync::spot::UserLookup;
use proptest::prelude::*;
use serde_json::{json, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
        Just(json!("a+b=c@example.com")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A realistic app-user row where any field may have any type.
fn okta_row() -> impl Strategy<Value = Value> {
    (
        prop_oneof![3 => "00u[a-z0-9]{6}".prop_map(Value::String), 1 => any_json()],
        any_json(),
        prop_oneof![Just(json!("ACTIVE")), Just(json!("SUSPENDED")), any_json()],
        prop_oneof![Just(json!("ACTIVE")), Just(json!("DEPROVISIONED")), any_json()],
        prop_oneof![Just(json!("x@example.com")), Just(json!("not an email")), any_json()],
        prop_oneof![Just(json!("viewer")), Just(json!("Editor")), any_json()],
        prop::option::of(".{0,2000}"),
    )
        .prop_map(|(id, scope, app_status, user_status, email, role, huge)| {
            json!({
                "id": id, "scope": scope, "status": app_status,
                "profile": {"role": role, "bio": huge},
                "_embedded": {"user": {"id": "ignored", "status": user_status,
                    "profile": {"email": email, "firstName": "Ann+Marie", "lastName": "O=Brien@", "login": "x"}}}
            })
        })
}

/// A string with the characters JSON must escape (quote, backslash, control) and non-ASCII,
/// so that both page readings must unescape into owned strings.
fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            1 => Just('"'),
            1 => Just('\\'),
            1 => Just('\n'),
            1 => Just('\u{1}'),
            1 => Just('é'),
            1 => Just('@'),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// An app-user row whose fields all have the documented types (the one-pass reading's case).
fn well_formed_row() -> impl Strategy<Value = Value> {
    (
        "00u[a-z0-9]{6}",
        prop_oneof![Just("ACTIVE"), Just("SUSPENDED"), Just("INACTIVE")],
        prop_oneof![
            Just(json!("viewer")),
            Just(json!(null)),
            tricky_string().prop_map(Value::String)
        ],
        (tricky_string(), tricky_string(), tricky_string()),
        any::<bool>(),
    )
        .prop_map(|(id, status, role, (email, first, last), with_user)| {
            let mut row =
                json!({"id": id, "scope": "USER", "status": status, "profile": {"role": role}});
            if with_user {
                row["_embedded"] = json!({"user": {"id": id, "status": status,
                    "profile": {"email": email, "firstName": first, "lastName": last}}});
            }
            row
        })
}

fn rules() -> ClassifyRules {
    ClassifyRules {
        provision_statuses: vec!["ACTIVE".into()],
        hold_statuses: vec!["SUSPENDED".into()],
        default_role: okta_spot_sync::model::Role::Viewer,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn okta_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_page(&bytes, "role");
    }

    #[test]
    fn okta_parser_never_panics_on_json(value in any_json()) {
        let _ = parse_page(value.to_string().as_bytes(), "role");
    }

    #[test]
    fn the_one_pass_page_reading_agrees_with_reading_row_by_row(
        rows in prop::collection::vec(prop_oneof![8 => well_formed_row(), 1 => okta_row()], 0..8),
    ) {
        let body = Value::Array(rows).to_string();
        let one_pass = parse_page(body.as_bytes(), "role").map_err(|e| e.to_string());
        let row_by_row = parse_page_row_by_row(body.as_bytes(), "role").map_err(|e| e.to_string());
        prop_assert_eq!(one_pass, row_by_row);
    }

    #[test]
    fn okta_rows_with_an_id_are_kept_and_bad_fields_are_held(rows in prop::collection::vec(okta_row(), 0..8)) {
        let body = Value::Array(rows.clone()).to_string();
        let attributable = rows.iter().all(|r| r["id"].as_str().is_some_and(|s| !s.trim().is_empty()));
        match parse_page(body.as_bytes(), "role") {
            Ok(parsed) => {
                prop_assert!(attributable, "a row without a usable id was accepted");
                prop_assert_eq!(parsed.len(), rows.len());
                let snap = classify(parsed.clone(), &rules());
                for user in &snap.provision {
                    prop_assert!(!user.first_name.contains(['+', '=', '@']));
                    prop_assert!(!user.last_name.contains(['+', '=', '@']));
                }
                // A row whose role is not a string must never provision on a guessed role.
                for (row, parsed_row) in rows.iter().zip(&parsed) {
                    let role = &row["profile"]["role"];
                    if !(role.is_string() || role.is_null()) {
                        prop_assert!(parsed_row.malformed.is_some(), "role {role} was not flagged");
                    }
                }
            }
            Err(e) => prop_assert!(!attributable, "rejected a page of attributable rows: {e}"),
        }
    }

    #[test]
    fn spot_user_details_parser_never_panics_and_keeps_star(value in any_json(), accounts in any_json()) {
        let raw = serde_json::value::RawValue::from_string(value.to_string()).unwrap();
        let _ = parse_user_details("u-1", &[&raw], "GET /setup/user/u-1");
        let item = json!({"userId": "u-1", "policies": [{"policyId": "3", "accountIds": accounts}]});
        let raw = serde_json::value::RawValue::from_string(item.to_string()).unwrap();
        match parse_user_details("u-1", &[&raw], "GET /setup/user/u-1") {
            // Whatever was read is what would be written back: never fewer accounts.
            Ok(UserLookup::Found(d)) => prop_assert_eq!(json!(d.grants()[0].account_ids), accounts),
            Ok(UserLookup::Gone) => prop_assert!(false, "an item is never gone"),
            Err(_) => prop_assert!(!accounts.as_array().is_some_and(|a| a.iter().all(Value::is_string))),
        }
    }

    #[test]
    fn spot_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), value in any_json()) {
        let _ = parse_user_list(&bytes);
        let _ = parse_user_list(value.to_string().as_bytes());
        let _ = parse_user_list(json!({"response": {"items": [value]}}).to_string().as_bytes());
    }

    #[test]
    fn spot_users_of_unknown_shape_are_never_personal_by_guess(mfa in any_json(), kind in any_json(), email in any_json()) {
        let body = json!({"request": {}, "response": {"status": {"code": 200}, "count": 1,
            "items": [{"userId": "u-1a2b3c4d", "email": email, "mfa": mfa, "type": kind, "groupNames": mfa}]}});
        let users = parse_user_list(body.to_string().as_bytes()).expect("an item with a userId parses");
        prop_assert_eq!(users.len(), 1);
        let user = &users[0];
        match kind.as_str() {
            Some("personal") => prop_assert_eq!(user.kind, SpotUserKind::Personal),
            Some("programmatic") => prop_assert_eq!(user.kind, SpotUserKind::Programmatic),
            _ if kind.is_null() => {}
            _ => prop_assert_eq!(user.kind, SpotUserKind::Unknown),
        }
    }
}

#[test]
fn spot_list_with_mfa_as_a_string_and_unknown_fields_parses() {
    let body = br#"{"request":{"id":"x"},"response":{"status":{"code":200,"message":"OK"},"kind":"spotinst:setup:organization:user",
        "items":[{"userId":"u-a1b2c3d4","username":"John Doe","type":"personal","email":"john.doe@company.com","mfa":"false","groupNames":["Developers"],"newField":{"x":1}},
                 {"userId":"pu-87654321","userName":"ci","type":"programmatic","email":"","mfa":true}],"count":2}}"#;
    let users = parse_user_list(body).unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].kind, SpotUserKind::Personal);
    assert_eq!(
        users[0].email.as_ref().unwrap().as_str(),
        "john.doe@company.com"
    );
    assert_eq!(users[1].kind, SpotUserKind::Programmatic);
}

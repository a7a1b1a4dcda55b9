//! Parsing of Okta list responses: the `Link` header and the `AppUser` pages.
//!
//! Pages are parsed as they arrive into compact [`AppUserRow`]s: each row is borrowed as a
//! [`RawValue`] and read through small typed structs, so no `serde_json::Value` tree is ever
//! built (100,000 users must fit in well under 150 MB).
//!
//! Leniency rules (this module never panics on input):
//! - a row without a usable `id` (missing, not a string, empty) or a row that is not a JSON
//!   object is an **error** that aborts the read: an unattributable row could hide a user that
//!   must not be deleted;
//! - any other field with an unexpected JSON type marks the row `malformed` with a reason that
//!   names the field; the classifier then holds it instead of guessing;
//! - `null` and missing are the same: `None`;
//! - unknown fields are ignored.

use std::borrow::Cow;
use std::fmt;

use compact_str::CompactString;
use reqwest::header::{HeaderMap, LINK};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::http::from_json_object;
use crate::model::{AppUserRow, OktaUserId};

// ---------------------------------------------------------------------------------------------
// Link header
// ---------------------------------------------------------------------------------------------

/// One link-value of a `Link` header (RFC 8288): the target and its relation types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkValue {
    pub target: String,
    /// Lower-cased relation types (`rel="self next"` gives two).
    pub rels: Vec<String>,
}

/// Parses every `Link` header line, whether Okta sends one line per relation or one
/// comma-joined line. An unparsable link-value is an error, not a skipped value: silently
/// missing a `next` link would turn a partial list into an apparently complete one.
pub fn parse_link_headers(headers: &HeaderMap) -> Result<Vec<LinkValue>, String> {
    let mut links = Vec::new();
    for value in headers.get_all(LINK) {
        let text = value
            .to_str()
            .map_err(|_| "a Link header is not visible ASCII".to_string())?;
        links.extend(parse_link_value_list(text)?);
    }
    Ok(links)
}

/// The target of the `next` relation, if any. Two different `next` targets are an error.
pub fn next_link(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut next: Option<String> = None;
    for link in parse_link_headers(headers)? {
        if link.rels.iter().any(|r| r == "next") {
            match &next {
                Some(existing) if *existing != link.target => {
                    return Err("the response has two different rel=\"next\" links".to_string())
                }
                _ => next = Some(link.target),
            }
        }
    }
    Ok(next)
}

/// Parses one header line: `<a>; rel="self", <b>; rel=next; title="x, y"`.
fn parse_link_value_list(text: &str) -> Result<Vec<LinkValue>, String> {
    // Split on commas that are outside `<...>` and outside quoted strings.
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_angle = false;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '<' if !in_angle => in_angle = true,
            '>' if in_angle => in_angle = false,
            '"' if !in_angle => in_quote = true,
            ',' if !in_angle => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);

    let mut links = Vec::new();
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue; // RFC 9110 list syntax tolerates empty elements.
        }
        let rest = part
            .strip_prefix('<')
            .ok_or_else(|| "a Link header value does not start with '<'".to_string())?;
        let end = rest
            .find('>')
            .ok_or_else(|| "a Link header value has no closing '>'".to_string())?;
        let target = rest[..end].trim().to_string();
        let mut rels = Vec::new();
        for param in split_params(&rest[end + 1..]) {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), v.trim()),
                None => (param, ""),
            };
            if name.eq_ignore_ascii_case("rel") {
                let value = unquote(value);
                rels.extend(
                    value
                        .split_ascii_whitespace()
                        .map(|r| r.to_ascii_lowercase()),
                );
            }
        }
        links.push(LinkValue { target, rels });
    }
    Ok(links)
}

/// Splits link-params on `;` outside quoted strings.
fn split_params(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
        } else if c == '"' {
            in_quote = true;
        } else if c == ';' {
            out.push(&text[start..i]);
            start = i + 1;
        }
    }
    out.push(&text[start..]);
    out
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => value.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/// A JSON value read only for its kind, or its text when it is a string. Containers are
/// skipped without being built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Scalar {
    #[default]
    Null,
    Str(String),
    /// Any other JSON type; holds the article and name used in messages ("a number").
    Other(&'static str),
}

impl Scalar {
    fn from_raw(raw: Option<&RawValue>) -> Scalar {
        match raw {
            None => Scalar::Null,
            Some(raw) => {
                serde_json::from_str::<Scalar>(raw.get()).unwrap_or(Scalar::Other("invalid"))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar, E> {
                Ok(Scalar::Other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Scalar, E> {
                Ok(Scalar::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Other("a number"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Reads one key of a JSON object (the role attribute of the app-user profile) without
/// building the rest. `Ok(None)`: `null`; `Err(kind)`: not an object.
struct OneKey<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for OneKey<'_> {
    type Value = Result<Option<Scalar>, &'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        struct V<'k>(&'k str);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Result<Option<Scalar>, &'static str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == self.0 && found.is_none() {
                        found = Some(map.next_value::<Scalar>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Ok(found))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ok(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ok(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Err("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Err("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Err("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Err("a number"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Err("a string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Err("an array"))
            }
        }
        d.deserialize_any(V(self.0))
    }
}

#[derive(Deserialize)]
struct RowWire<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    scope: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    profile: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_embedded")]
    embedded: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EmbeddedWire<'a> {
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct UserWire<'a> {
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    profile: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct UserProfileWire<'a> {
    #[serde(borrow, default)]
    email: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "firstName")]
    first_name: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "lastName")]
    last_name: Option<&'a RawValue>,
}

/// Why a page could not be used; the caller adds the page number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError(pub String);

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one page of `GET /api/v1/apps/{appId}/users?expand=user`. The body must be UTF-8
/// and a JSON array of objects, each with a non-empty string `id`.
///
/// A page whose rows all take the fast path is read in one pass; any other page is read again
/// row by row ([`parse_page_row_by_row`]), which handles and names every surprise. Both give
/// the same rows for every page the first accepts (a property test checks it).
pub fn parse_page(body: &[u8], role_attribute: &str) -> Result<Vec<AppUserRow>, PageError> {
    match parse_page_fast(body, role_attribute) {
        Some(rows) => Ok(rows),
        None => parse_page_row_by_row(body, role_attribute),
    }
}

/// The reference reading of a page: each row found as raw JSON first, then parsed alone (fast
/// path, else the lenient one). Two passes over the page, but every row is read in isolation,
/// so a bad one is named by its index and the others still parse.
pub fn parse_page_row_by_row(
    body: &[u8],
    role_attribute: &str,
) -> Result<Vec<AppUserRow>, PageError> {
    parse_array(body, "row", |raw| parse_row(raw, role_attribute))
}

/// The whole page in one pass, every row through the fast path; `None` at the first surprise
/// (not UTF-8, not an array, an element that is not an object, a row the fast path refuses).
/// Finding each row's raw JSON first was ~45 % of the time spent parsing pages.
fn parse_page_fast(body: &[u8], role_attribute: &str) -> Option<Vec<AppUserRow>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let rows = FastPage { role_attribute }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(rows)
}

/// Reads a JSON array of rows through [`FastRowSeed`].
struct FastPage<'r> {
    role_attribute: &'r str,
}

impl<'de> DeserializeSeed<'de> for FastPage<'_> {
    type Value = Vec<AppUserRow>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FastPage<'_> {
    type Value = Vec<AppUserRow>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of app users")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(500));
        let role_attribute = self.role_attribute;
        while let Some(row) = seq.next_element_seed(FastRowSeed { role_attribute })? {
            rows.push(row);
        }
        Ok(rows)
    }
}

/// One row through the fast path, straight from the page: a JSON object only (derived structs
/// would also take an array), and an error wherever [`parse_row_fast`] would say `None`.
struct FastRowSeed<'r> {
    role_attribute: &'r str,
}

impl<'de> DeserializeSeed<'de> for FastRowSeed<'_> {
    type Value = AppUserRow;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FastRowSeed<'_> {
    type Value = AppUserRow;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an app user object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let fast = FastRow::deserialize(de::value::MapAccessDeserializer::new(map))?;
        finish_fast_row(fast, self.role_attribute)
            .ok_or_else(|| de::Error::custom("the row needs the lenient path"))
    }
}

/// The shared frame of both list pages: UTF-8, a JSON array, then `item` on each element;
/// the first element it refuses fails the page, named by `label` and index.
fn parse_array<T>(
    body: &[u8],
    label: &str,
    item: impl Fn(&RawValue) -> Result<T, String>,
) -> Result<Vec<T>, PageError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        PageError(format!(
            "the body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| {
        if text.trim_start().starts_with('[') {
            PageError(format!("the body is not valid JSON: {e}"))
        } else {
            PageError("the body is not a JSON array".to_string())
        }
    })?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, raw)| item(raw).map_err(|e| PageError(format!("{label} {index}: {e}"))))
        .collect()
}

/// The fast path: a row whose fields all have the expected types, read in one pass (the
/// lenient path below reads each nested object again). Any surprise — a field of another
/// type, a duplicate key, a missing or empty id — returns `None` and the lenient path decides,
/// so both paths give the same result for every input.
#[derive(Deserialize)]
struct FastRow<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    scope: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    profile: Option<&'a RawValue>,
    #[serde(
        borrow,
        default,
        rename = "_embedded",
        deserialize_with = "object_only"
    )]
    embedded: Option<FastEmbedded<'a>>,
}

#[derive(Deserialize)]
struct FastEmbedded<'a> {
    #[serde(borrow, default, deserialize_with = "object_only")]
    user: Option<FastUser<'a>>,
}

#[derive(Deserialize)]
struct FastUser<'a> {
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "object_only")]
    profile: Option<FastProfile<'a>>,
}

#[derive(Deserialize)]
struct FastProfile<'a> {
    #[serde(borrow, default)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "firstName")]
    first_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "lastName")]
    last_name: Option<Cow<'a, str>>,
}

/// `null` or a JSON object; anything else (an array included, which derived structs would
/// accept as a sequence) is an error, so the fast path gives up.
fn object_only<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

fn parse_row_fast(raw: &RawValue, role_attribute: &str) -> Option<AppUserRow> {
    finish_fast_row(serde_json::from_str(raw.get()).ok()?, role_attribute)
}

/// The row a [`FastRow`] describes; `None` when the lenient path must decide (no usable id).
fn finish_fast_row(fast: FastRow, role_attribute: &str) -> Option<AppUserRow> {
    let id = fast.id.filter(|id| !id.trim().is_empty())?;
    let owned = |v: Option<Cow<str>>| v.map(Cow::into_owned);
    let word = |v: Option<Cow<str>>| v.map(CompactString::from);
    let mut row = AppUserRow {
        okta_user_id: OktaUserId::new(id.into_owned()),
        scope: word(fast.scope),
        app_user_status: word(fast.status),
        ..AppUserRow::default()
    };
    let mut problems: Vec<String> = Vec::new();
    read_role(fast.profile, role_attribute, &mut row, &mut problems);
    if let Some(user) = fast.embedded.and_then(|e| e.user) {
        row.user_status = word(user.status);
        if let Some(p) = user.profile {
            row.email = owned(p.email);
            row.first_name = owned(p.first_name);
            row.last_name = owned(p.last_name);
        }
    }
    if !problems.is_empty() {
        row.malformed = Some(problems.join("; "));
    }
    Some(row)
}

/// The role attribute of the app-user profile, read without building the rest.
fn read_role(
    profile: Option<&RawValue>,
    role_attribute: &str,
    row: &mut AppUserRow,
    problems: &mut Vec<String>,
) {
    if let Some(profile) = profile {
        let mut de = serde_json::Deserializer::from_str(profile.get());
        match OneKey(role_attribute).deserialize(&mut de) {
            Ok(Ok(None)) | Ok(Ok(Some(Scalar::Null))) => {}
            Ok(Ok(Some(Scalar::Str(s)))) => row.role = Some(s.into()),
            Ok(Ok(Some(Scalar::Other(kind)))) => problems.push(format!(
                "role attribute \"{role_attribute}\" is {kind}, expected a string"
            )),
            Ok(Err(kind)) => problems.push(format!("\"profile\" is {kind}, expected an object")),
            Err(e) => problems.push(format!("\"profile\" could not be read: {e}")),
        }
    }
}

/// Parses one row. `Err` only when the row cannot be attributed to a user.
pub fn parse_row(raw: &RawValue, role_attribute: &str) -> Result<AppUserRow, String> {
    if !raw.get().trim_start().starts_with('{') {
        return Err("the row is not a JSON object".to_string());
    }
    if let Some(row) = parse_row_fast(raw, role_attribute) {
        return Ok(row);
    }
    let wire: RowWire =
        from_json_object(raw.get()).map_err(|e| format!("the row could not be read: {e}"))?;
    let id = match Scalar::from_raw(wire.id) {
        Scalar::Str(s) if !s.trim().is_empty() => s,
        Scalar::Str(_) => return Err("the row has an empty \"id\"".to_string()),
        Scalar::Null => return Err("the row has no \"id\"".to_string()),
        Scalar::Other(kind) => {
            return Err(format!("the row's \"id\" is {kind}, expected a string"))
        }
    };
    let mut problems: Vec<String> = Vec::new();
    let mut row = AppUserRow {
        okta_user_id: OktaUserId::new(id),
        ..AppUserRow::default()
    };
    row.scope = string_field(wire.scope, "scope", &mut problems);
    row.app_user_status = string_field(wire.status, "status", &mut problems);

    // App-user profile: only the role attribute.
    read_role(wire.profile, role_attribute, &mut row, &mut problems);

    // Embedded user.
    if let Some(embedded) = wire.embedded.filter(|r| r.get() != "null") {
        match from_json_object::<EmbeddedWire>(embedded.get()) {
            Err(_) => problems.push(describe_non_object("_embedded", embedded)),
            Ok(EmbeddedWire { user: None }) => {}
            Ok(EmbeddedWire { user: Some(user) }) if user.get() == "null" => {}
            Ok(EmbeddedWire { user: Some(user) }) => {
                match from_json_object::<UserWire>(user.get()) {
                    Err(_) => problems.push(describe_non_object("_embedded.user", user)),
                    Ok(u) => {
                        row.user_status =
                            string_field(u.status, "_embedded.user.status", &mut problems);
                        match u.profile.filter(|r| r.get() != "null") {
                            None => {}
                            Some(p) => match from_json_object::<UserProfileWire>(p.get()) {
                                Err(_) => {
                                    problems.push(describe_non_object("_embedded.user.profile", p))
                                }
                                Ok(p) => {
                                    row.email = string_field(
                                        p.email,
                                        "_embedded.user.profile.email",
                                        &mut problems,
                                    );
                                    row.first_name = string_field(
                                        p.first_name,
                                        "_embedded.user.profile.firstName",
                                        &mut problems,
                                    );
                                    row.last_name = string_field(
                                        p.last_name,
                                        "_embedded.user.profile.lastName",
                                        &mut problems,
                                    );
                                }
                            },
                        }
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        row.malformed = Some(problems.join("; "));
    }
    Ok(row)
}

// ---------------------------------------------------------------------------------------------
// Users (`GET /api/v1/users`, for `import`)
// ---------------------------------------------------------------------------------------------

/// One user of `GET /api/v1/users`, reduced to what `import` needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OktaUser {
    pub id: OktaUserId,
    /// `UserStatus` as Okta sent it.
    pub status: Option<String>,
    /// `profile.email` as Okta sent it (original case).
    pub email: Option<String>,
    /// Set when a field had an unexpected type; `import` then leaves the match alone.
    pub malformed: Option<String>,
}

#[derive(Deserialize)]
struct ListedUserWire<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    profile: Option<&'a RawValue>,
}

/// Parses one page of `GET /api/v1/users`: a JSON array of `User` objects, each with a
/// non-empty string `id` (the same leniency rules as [`parse_page`]).
pub fn parse_users_page(body: &[u8]) -> Result<Vec<OktaUser>, PageError> {
    parse_array(body, "user", parse_listed_user)
}

fn parse_listed_user(raw: &RawValue) -> Result<OktaUser, String> {
    if !raw.get().trim_start().starts_with('{') {
        return Err("the user is not a JSON object".to_string());
    }
    let wire: ListedUserWire =
        from_json_object(raw.get()).map_err(|e| format!("the user could not be read: {e}"))?;
    let id = match Scalar::from_raw(wire.id) {
        Scalar::Str(s) if !s.trim().is_empty() => s,
        Scalar::Str(_) => return Err("the user has an empty \"id\"".to_string()),
        Scalar::Null => return Err("the user has no \"id\"".to_string()),
        Scalar::Other(kind) => {
            return Err(format!("the user's \"id\" is {kind}, expected a string"))
        }
    };
    let mut problems = Vec::new();
    let mut user = OktaUser {
        id: OktaUserId::new(id),
        status: string_field(wire.status, "status", &mut problems),
        ..OktaUser::default()
    };
    if let Some(p) = wire.profile.filter(|r| r.get() != "null") {
        match from_json_object::<UserProfileWire>(p.get()) {
            Err(_) => problems.push(describe_non_object("profile", p)),
            Ok(p) => user.email = string_field(p.email, "profile.email", &mut problems),
        }
    }
    if !problems.is_empty() {
        user.malformed = Some(problems.join("; "));
    }
    Ok(user)
}

/// A string field as a `String` or, for short words, a `CompactString`.
fn string_field<T: From<String>>(
    raw: Option<&RawValue>,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    match Scalar::from_raw(raw) {
        Scalar::Null => None,
        Scalar::Str(s) => Some(s.into()),
        Scalar::Other(kind) => {
            problems.push(format!("\"{name}\" is {kind}, expected a string"));
            None
        }
    }
}

fn describe_non_object(name: &str, raw: &RawValue) -> String {
    match Scalar::from_raw(Some(raw)) {
        Scalar::Str(_) => format!("\"{name}\" is a string, expected an object"),
        Scalar::Other(kind) if kind != "an object" => {
            format!("\"{name}\" is {kind}, expected an object")
        }
        _ => format!("\"{name}\" could not be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_pages_need_ids_and_mark_odd_fields() {
        let users = parse_users_page(
            br#"[{"id":"00u1","status":"ACTIVE","profile":{"email":"A@x.com","login":"a"}},
                 {"id":"00u2","status":7,"profile":{"email":null}}]"#,
        )
        .unwrap();
        assert_eq!(users[0].email.as_deref(), Some("A@x.com"));
        assert_eq!(users[0].status.as_deref(), Some("ACTIVE"));
        assert_eq!(users[0].malformed, None);
        assert_eq!(users[1].email, None);
        assert!(users[1].malformed.as_deref().unwrap().contains("status"));
        assert!(parse_users_page(br#"[{"status":"ACTIVE"}]"#).is_err());
        assert!(parse_users_page(br#"{"id":"00u1"}"#).is_err());
    }
    use reqwest::header::HeaderValue;

    fn link_headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(LINK, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn separate_link_lines_self_then_next() {
        let h = link_headers(&[
            "<https://o.okta.com/api/v1/apps/x/users?limit=2>; rel=\"self\"",
            "<https://o.okta.com/api/v1/apps/x/users?after=abc&limit=2>; rel=\"next\"",
        ]);
        assert_eq!(
            next_link(&h).unwrap().as_deref(),
            Some("https://o.okta.com/api/v1/apps/x/users?after=abc&limit=2")
        );
    }

    #[test]
    fn comma_joined_link_line() {
        let h = link_headers(&[
            "<https://o.okta.com/a?limit=2,3>; rel=\"self\", <https://o.okta.com/a?after=b,c&limit=2>; rel=next",
        ]);
        assert_eq!(
            next_link(&h).unwrap().as_deref(),
            Some("https://o.okta.com/a?after=b,c&limit=2")
        );
    }

    #[test]
    fn several_rels_and_quoted_commas() {
        let h = link_headers(&["<https://o/a>; title=\"a, b; c\"; REL=\"self NEXT\""]);
        let links = parse_link_headers(&h).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].rels, vec!["self", "next"]);
        assert_eq!(next_link(&h).unwrap().as_deref(), Some("https://o/a"));
    }

    #[test]
    fn only_self_means_end() {
        let h = link_headers(&["<https://o/a?limit=2>; rel=\"self\""]);
        assert_eq!(next_link(&h).unwrap(), None);
        assert_eq!(next_link(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn garbage_link_is_an_error() {
        let h = link_headers(&["https://o/a; rel=next"]);
        assert!(next_link(&h).is_err());
        let h = link_headers(&["<https://o/a>; rel=next", "<https://o/b>; rel=next"]);
        assert!(next_link(&h).is_err());
    }

    const SPEC_ROW: &str = r#"[{"id":"00u1dnq5S0CfjlkpABCD","externalId":"00u5edt3PNbbjzvIABCD","scope":"USER","status":"PROVISIONED",
      "profile":{"secondEmail":null,"salesforceGroups":[],"role":"Tester","nested":{"role":5}},
      "_embedded":{"user":{"id":"00u1dnq5S0CfjlkpABCD","status":"ACTIVE","type":{"id":"x"},
        "profile":{"firstName":"Saml","lastName":"Test","mobilePhone":null,"email":"saml.test@example.com"},
        "credentials":{"password":{},"provider":{"type":"OKTA","name":"OKTA"}}}}}]"#;

    #[test]
    fn spec_example_row() {
        let rows = parse_page(SPEC_ROW.as_bytes(), "role").unwrap();
        assert_eq!(
            rows,
            vec![AppUserRow {
                okta_user_id: "00u1dnq5S0CfjlkpABCD".into(),
                scope: Some("USER".into()),
                app_user_status: Some("PROVISIONED".into()),
                user_status: Some("ACTIVE".into()),
                email: Some("saml.test@example.com".into()),
                first_name: Some("Saml".into()),
                last_name: Some("Test".into()),
                role: Some("Tester".into()),
                malformed: None,
            }]
        );
    }

    #[test]
    fn a_regular_page_is_read_in_one_pass_and_a_surprise_sends_it_row_by_row() {
        let one_pass = parse_page_fast(SPEC_ROW.as_bytes(), "role").expect("one pass");
        assert_eq!(one_pass, parse_page(SPEC_ROW.as_bytes(), "role").unwrap());
        let two = format!("[{0},{0}]", &SPEC_ROW[1..SPEC_ROW.len() - 1]);
        assert_eq!(parse_page_fast(two.as_bytes(), "role").unwrap().len(), 2);
        assert_eq!(parse_page_fast(b"[]", "role"), Some(vec![]));
        for surprise in [
            r#"[{"id":"00ua","status":5}]"#,  // a field of another type
            r#"[{"id":"00ua","id":"00ub"}]"#, // a duplicate key
            r#"[{"id":" "}]"#,                // no usable id
            r#"[["00ua","USER"]]"#,           // an array, not an object
            r#"[{"id":"00ua"}] x"#,           // trailing data
            r#"{"id":"00ua"}"#,               // not an array
        ] {
            assert_eq!(
                parse_page_fast(surprise.as_bytes(), "role"),
                None,
                "{surprise}"
            );
        }
    }

    #[test]
    fn recorded_sso_row_without_embedded_user() {
        let body = r#"[{"id":"00usfdsvr3SOpwbqD4x6","externalId":null,"scope":"USER","status":"ACTIVE","syncState":"DISABLED","credentials":{"userName":"John.Doe-Get@example.com"},"profile":{},"_links":{}}]"#;
        let rows = parse_page(body.as_bytes(), "role").unwrap();
        assert_eq!(rows[0].okta_user_id, "00usfdsvr3SOpwbqD4x6");
        assert_eq!(rows[0].role, None);
        assert_eq!(rows[0].email, None);
        assert_eq!(rows[0].malformed, None);
    }

    #[test]
    fn numeric_role_marks_the_row_malformed() {
        let body = r#"[{"id":"00u1","profile":{"role":5}}]"#;
        let rows = parse_page(body.as_bytes(), "role").unwrap();
        assert_eq!(
            rows[0].malformed.as_deref(),
            Some("role attribute \"role\" is a number, expected a string")
        );
        let body = r#"[{"id":"00u1","profile":{"spotRole":null, "role": 1}}]"#;
        let rows = parse_page(body.as_bytes(), "spotRole").unwrap();
        assert_eq!(rows[0].malformed, None);
        assert_eq!(rows[0].role, None);
    }

    #[test]
    fn wrong_types_are_named() {
        let body = r#"[{"id":"00u1","status":["A"],"_embedded":{"user":{"status":"ACTIVE","profile":{"email":{"a":1},"firstName":true,"lastName":"L"}}}}]"#;
        let rows = parse_page(body.as_bytes(), "role").unwrap();
        let m = rows[0].malformed.as_deref().unwrap();
        assert!(m.contains("\"status\" is an array"), "{m}");
        assert!(
            m.contains("\"_embedded.user.profile.email\" is an object"),
            "{m}"
        );
        assert!(
            m.contains("\"_embedded.user.profile.firstName\" is a boolean"),
            "{m}"
        );
        assert_eq!(rows[0].last_name.as_deref(), Some("L"));
        assert_eq!(rows[0].user_status.as_deref(), Some("ACTIVE"));

        let body = r#"[{"id":"00u1","_embedded":{"user":"x"}},{"id":"00u2","_embedded":7},{"id":"00u3","profile":[]},{"id":"00u4","_embedded":{"user":["ACTIVE"]}}]"#;
        let rows = parse_page(body.as_bytes(), "role").unwrap();
        assert_eq!(
            rows[0].malformed.as_deref(),
            Some("\"_embedded.user\" is a string, expected an object")
        );
        assert_eq!(
            rows[1].malformed.as_deref(),
            Some("\"_embedded\" is a number, expected an object")
        );
        assert_eq!(
            rows[2].malformed.as_deref(),
            Some("\"profile\" is an array, expected an object")
        );
        assert_eq!(
            rows[3].malformed.as_deref(),
            Some("\"_embedded.user\" is an array, expected an object")
        );
        assert_eq!(rows[3].user_status, None);
    }

    #[test]
    fn unattributable_rows_abort() {
        for (body, expect) in [
            (
                r#"[{"id":"a"},{"scope":"USER"}]"#,
                "row 1: the row has no \"id\"",
            ),
            (
                r#"[{"id":5}]"#,
                "row 0: the row's \"id\" is a number, expected a string",
            ),
            (r#"[{"id":""}]"#, "row 0: the row has an empty \"id\""),
            (r#"[{"id":null}]"#, "row 0: the row has no \"id\""),
            (r#"[7]"#, "row 0: the row is not a JSON object"),
            (r#"[["00u1"]]"#, "row 0: the row is not a JSON object"),
        ] {
            assert_eq!(parse_page(body.as_bytes(), "role").unwrap_err().0, expect);
        }
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(parse_page(b"{\"a\":1}", "role")
            .unwrap_err()
            .0
            .contains("not a JSON array"));
        assert!(parse_page(b"[{\"id\":\"a\"}", "role")
            .unwrap_err()
            .0
            .contains("not valid JSON"));
        assert!(parse_page(b"[{\"id\":\"a\xff\"}]", "role")
            .unwrap_err()
            .0
            .contains("UTF-8"));
        assert_eq!(parse_page(b" [] ", "role").unwrap(), vec![]);
    }
}

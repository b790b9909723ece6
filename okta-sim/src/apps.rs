//! `/api/v1/apps` and `/api/v1/apps/{appId}`: list, get and replace SAML apps.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;

use crate::errors::{OktaError, json_response};
use crate::org::App;
use crate::state::SimState;

/// Page size when `limit` is absent (the page size Okta has long documented for apps).
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 200;

pub fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// `GET /api/v1/apps` with `q`, `filter`, `limit`, `after` and `Link` pagination.
pub fn list(state: &SimState, query: Option<&str>) -> Response<Body> {
    let params = query_map(query);
    let filter = match params.get("filter").map(|f| Filter::parse(f)).transpose() {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let limit = match params.get("limit").map(|l| l.parse::<i64>()) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if n <= 0 => DEFAULT_PAGE,
        Some(Ok(n)) => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        Some(Err(_)) => {
            return OktaError::validation("limit", "limit: The value must be an integer.").into_response();
        }
    };
    let q = params.get("q").map(|q| q.to_lowercase());
    let org = state.org();
    let matching: Vec<&App> = org
        .apps
        .iter()
        .filter(|a| {
            q.as_ref().is_none_or(|q| a.name.to_lowercase().starts_with(q) || a.label.to_lowercase().starts_with(q))
        })
        .filter(|a| filter.as_ref().is_none_or(|f| f.matches(a)))
        .collect();
    // `after` is the id of the last app of the previous page (opaque to clients).
    let start = match params.get("after") {
        Some(after) => matching.iter().position(|a| &a.id == after).map_or(matching.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<&App> = matching.iter().skip(start).take(limit).copied().collect();
    let more = start + page.len() < matching.len();
    let body = Value::Array(page.iter().map(|a| a.to_json(&state.base_url)).collect());
    let mut response = json_response(StatusCode::OK, &body);

    let link = |after: Option<&str>| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        if let Some(after) = after {
            url.append_pair("after", after);
        }
        url.append_pair("limit", &limit.to_string());
        for key in ["q", "filter"] {
            if let Some(v) = params.get(key) {
                url.append_pair(key, v);
            }
        }
        format!("{}/api/v1/apps?{}", state.base_url, url.finish())
    };
    let self_link = format!("<{}>; rel=\"self\"", link(params.get("after").map(String::as_str)));
    if let Ok(v) = HeaderValue::from_str(&self_link) {
        response.headers_mut().append(header::LINK, v);
    }
    if let (true, Some(last)) = (more, page.last())
        && let Ok(v) = HeaderValue::from_str(&format!("<{}>; rel=\"next\"", link(Some(&last.id))))
    {
        response.headers_mut().append(header::LINK, v);
    }
    response
}

/// The subset of Okta's filter language the Apps API accepts: `attr eq "value"` terms joined by `and`.
#[derive(Debug, PartialEq, Eq)]
pub struct Filter(Vec<(String, String)>);

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, OktaError> {
        let invalid = || OktaError::new(StatusCode::BAD_REQUEST, "E0000031", "Invalid search criteria.");
        let mut terms = Vec::new();
        for term in split_and(text) {
            let mut parts = term.trim().splitn(3, ' ');
            let (Some(attr), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(invalid());
            };
            let value = value.trim();
            if !op.eq_ignore_ascii_case("eq") || value.len() < 2 || !value.starts_with('"') || !value.ends_with('"') {
                return Err(invalid());
            }
            if !["id", "status", "name", "credentials.signing.kid"].contains(&attr) {
                return Err(invalid());
            }
            terms.push((attr.to_string(), value[1..value.len() - 1].to_string()));
        }
        if terms.is_empty() { Err(invalid()) } else { Ok(Filter(terms)) }
    }

    pub fn matches(&self, app: &App) -> bool {
        self.0.iter().all(|(attr, value)| match attr.as_str() {
            "id" => &app.id == value,
            "status" => &app.status == value,
            "name" => &app.name == value,
            "credentials.signing.kid" => app.active_kid.as_deref() == Some(value.as_str()),
            _ => false,
        })
    }
}

fn split_and(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        match lower.find(" and ") {
            Some(i) => {
                terms.push(&rest[..i]);
                rest = &rest[i + 5..];
            }
            None => {
                terms.push(rest);
                return terms;
            }
        }
    }
}

pub fn not_found(app_id: &str) -> OktaError {
    OktaError::not_found(app_id, "AppInstance")
}

/// `GET /api/v1/apps/{appId}`
pub fn get(state: &SimState, app_id: &str) -> Response<Body> {
    match state.org().app(app_id) {
        Some(app) => json_response(StatusCode::OK, &app.to_json(&state.base_url)),
        None => not_found(app_id).into_response(),
    }
}

/// `PUT /api/v1/apps/{appId}`: changes the label, the signing kid, and what the body gives of
/// `settings`, `visibility`, `accessibility` and `credentials.userNameTemplate`. As Okta does, it
/// keeps whatever the body leaves out (objects are merged member by member; any other value, an
/// array included, replaces the old one) and answers with the whole app. System-assigned
/// properties in the body (`id`, `name`, `status`, `created`, `lastUpdated`, `_links`) are ignored.
pub fn replace(state: &SimState, app_id: &str, body: &[u8]) -> Response<Body> {
    let now = state.now();
    let mut org = state.org();
    let Some(app) = org.app_mut(app_id) else {
        return not_found(app_id).into_response();
    };
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return OktaError::malformed_body().into_response();
    };
    let label = match body.get("label") {
        Some(Value::String(l)) if !l.trim().is_empty() => l.clone(),
        _ => return OktaError::validation("label", "label: The field cannot be left blank.").into_response(),
    };
    match body.get("signOnMode") {
        Some(Value::String(mode)) if mode == "SAML_2_0" => {}
        Some(Value::String(_)) => {
            return OktaError::validation("signOnMode", "signOnMode: The sign-on mode of an app cannot be changed.")
                .into_response();
        }
        _ => {
            return OktaError::validation("signOnMode", "signOnMode: The field cannot be left blank.").into_response();
        }
    }
    let [settings, visibility, accessibility, user_name_template] = match mergeable(&body) {
        Ok(changes) => changes,
        Err(e) => return e.into_response(),
    };
    let credentials = body.get("credentials");
    let kid = match credentials.and_then(|c| c.get("signing")).and_then(|s| s.get("kid")) {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) if app.key(kid).is_some() => Some(kid.clone()),
        Some(other) => {
            let shown = other.as_str().map_or_else(|| other.to_string(), str::to_string);
            return OktaError::validation(
                "credentials.signing.kid",
                format!("credentials.signing.kid: No key credential with kid {shown} exists for this app."),
            )
            .into_response();
        }
    };
    app.label = label;
    for (target, change) in [
        (&mut app.settings, settings),
        (&mut app.visibility, visibility),
        (&mut app.accessibility, accessibility),
        (&mut app.user_name_template, user_name_template),
    ] {
        if let Some(change) = change {
            merge(target, change);
        }
    }
    if kid.is_some() {
        app.active_kid = kid;
    }
    app.last_updated = now;
    json_response(StatusCode::OK, &app.to_json(&state.base_url))
}

/// What the body gives of `settings`, `visibility`, `accessibility` and
/// `credentials.userNameTemplate`, in that order (None where it leaves one out).
fn mergeable(body: &serde_json::Map<String, Value>) -> Result<[Option<Value>; 4], OktaError> {
    let object = |value: Option<&Value>| match value {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(OktaError::malformed_body()),
    };
    let credentials = object(body.get("credentials"))?;
    Ok([
        object(body.get("settings"))?,
        object(body.get("visibility"))?,
        object(body.get("accessibility"))?,
        object(credentials.as_ref().and_then(|c| c.get("userNameTemplate")))?,
    ])
}

/// Merges `change` into `target`: an object member by member (recursively), anything else by
/// replacing it.
fn merge(target: &mut Value, change: Value) {
    match (target, change) {
        (Value::Object(target), Value::Object(change)) => {
            for (name, value) in change {
                match target.get_mut(&name) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(name, value);
                    }
                }
            }
        }
        (target, change) => *target = change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_okta_expressions() {
        let f = Filter::parse(r#"credentials.signing.kid eq "abc" and status eq "ACTIVE""#).unwrap();
        assert_eq!(
            f,
            Filter(vec![("credentials.signing.kid".into(), "abc".into()), ("status".into(), "ACTIVE".into())])
        );
    }

    #[test]
    fn merge_keeps_what_the_change_leaves_out() {
        let mut target = serde_json::json!({"signOn": {"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2]}, "other": true});
        merge(&mut target, serde_json::json!({"signOn": {"b": {"c": 20}, "list": [3], "new": "x"}}));
        assert_eq!(
            target,
            serde_json::json!({"signOn": {"a": 1, "b": {"c": 20, "d": 3}, "list": [3], "new": "x"}, "other": true})
        );
        merge(&mut target, serde_json::json!({"signOn": null}));
        assert_eq!(target, serde_json::json!({"signOn": null, "other": true}));
    }

    #[test]
    fn unsupported_filters_are_invalid_search_criteria() {
        for bad in ["label eq \"x\"", "status ne \"ACTIVE\"", "status eq ACTIVE", "", "status"] {
            let e = Filter::parse(bad).unwrap_err();
            assert_eq!(e.code, "E0000031", "{bad}");
        }
    }
}

//! A small checker for request bodies against the official DigitalOcean OpenAPI spec: finds
//! the operation for a concrete path, then checks `$ref`, `allOf`/`anyOf`/`oneOf`, `type`,
//! `nullable`, `enum`, `required`, `properties` and `items`. Enough to catch a missing or
//! mistyped field; formats, patterns and lengths are not checked.

use serde_json::Value;

pub const SPEC_PATH: &str = "/work/shared/reference/digitalocean-openapi.v2.json";

/// `shared/reference/` beside the repository, found by walking up from this crate; else
/// [`SPEC_PATH`].
pub fn spec_path() -> std::path::PathBuf {
    let rel = std::path::Path::new("shared/reference/digitalocean-openapi.v2.json");
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| std::path::PathBuf::from(SPEC_PATH))
}

pub fn load() -> Value {
    let text = std::fs::read_to_string(spec_path()).expect("the DigitalOcean spec is readable");
    serde_json::from_str(&text).expect("the DigitalOcean spec is JSON")
}

/// The `application/json` request schema of `method path`, matching `{param}` segments.
pub fn request_schema<'a>(
    spec: &'a Value,
    method: &str,
    path: &str,
) -> Option<(&'a str, &'a Value)> {
    let want: Vec<&str> = path.split('/').collect();
    spec["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, ops)| {
            let have: Vec<&str> = template.split('/').collect();
            let matches = have.len() == want.len()
                && have
                    .iter()
                    .zip(&want)
                    .all(|(h, w)| h.starts_with('{') || h == w);
            let schema = &ops[method.to_ascii_lowercase()]["requestBody"]["content"]
                ["application/json"]["schema"];
            (matches && !schema.is_null()).then_some((template.as_str(), schema))
        })
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                spec,
                spec.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => schema,
    }
}

/// Appends a message per violation of `schema` by `value` (at `at`).
pub fn check(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            check(spec, s, value, at, errors);
        }
    }
    let passing = |list: &Vec<Value>| {
        list.iter()
            .filter(|s| {
                let mut e = Vec::new();
                check(spec, s, value, at, &mut e);
                e.is_empty()
            })
            .count()
    };
    if let Some(any) = schema["anyOf"].as_array() {
        if passing(any) == 0 {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = passing(one);
        if n != 1 {
            errors.push(format!("{at}: matches {n} of oneOf, want exactly 1"));
        }
    }
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: want {t}, got {value}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(r) {
                errors.push(format!("{at}: required property {r:?} is missing"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, v) in obj {
                if let Some(p) = props.get(k) {
                    check(spec, p, v, &format!("{at}.{k}"), errors);
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check(spec, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

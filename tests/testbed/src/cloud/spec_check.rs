//! A small validator of simulator answers against the official OpenAPI spec, for tests:
//! finds the operation for (method, path), picks the response for the status (or
//! `default`), checks the headers it declares are present and the JSON body against its
//! schema. `$ref`s are resolved; `required` properties must be present; types must match
//! (`integer`, `number`, `string`, `boolean`, `array`, `object`; `nullable` allows null);
//! string and integer `enum`s are checked; `format`s and `additionalProperties` are
//! ignored; `allOf` must all match, `oneOf`/`anyOf` at least one.
//!
//! The spec is read from the shared reference copy at run time; it is not part of the
//! project.

use std::path::Path;

use serde_json::Value;

/// Where the bundled spec lives on the machines this project is built on.
pub const SPEC_PATH: &str = "/work/shared/reference/digitalocean-openapi.v2.json";

/// Where the bundled spec is: `shared/reference/` beside the repository (CI clones the project
/// with `shared/` next to it), found by walking up from this crate; else [`SPEC_PATH`].
pub fn spec_path() -> std::path::PathBuf {
    let rel = std::path::Path::new("shared/reference/digitalocean-openapi.v2.json");
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| std::path::PathBuf::from(SPEC_PATH))
}

/// How deep schemas are followed; the spec's recursive parts stop here.
const MAX_DEPTH: usize = 48;

/// Why the spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("reading the OpenAPI spec {path}")]
    Read {
        /// Its path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It is not JSON.
    #[error("parsing the OpenAPI spec {path}")]
    Parse {
        /// Its path.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// A loaded spec.
#[derive(Debug, Clone)]
pub struct Spec {
    doc: Value,
}

impl Spec {
    /// Loads the spec at `path` (normally [`SPEC_PATH`]).
    ///
    /// # Errors
    /// The file is missing or not JSON.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let name = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| SpecError::Read {
            path: name.clone(),
            source,
        })?;
        let doc = serde_json::from_slice(&text)
            .map_err(|source| SpecError::Parse { path: name, source })?;
        Ok(Spec { doc })
    }

    /// A spec from an already parsed document (for tests of the validator itself).
    pub fn from_value(doc: Value) -> Spec {
        Spec { doc }
    }

    /// The path template matching a concrete path (`/v2/droplets/7` →
    /// `/v2/droplets/{droplet_id}`), preferring literal segments over parameters.
    pub fn template_for(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let paths = self.doc.get("paths")?.as_object()?;
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') && part.ends_with('}') {
                        continue;
                    }
                    if part != segment {
                        return None;
                    }
                    literal += 1;
                }
                Some((literal, template))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, template)| template.clone())
    }

    /// Checks one answer. `body` is the raw body (empty for none); `headers` the response
    /// header names (any case).
    ///
    /// # Errors
    /// Every mismatch found, each naming where in the body it is.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        headers: &[String],
        body: &[u8],
    ) -> Result<(), Vec<String>> {
        let path = path.split('?').next().unwrap_or(path);
        let template = self
            .template_for(path)
            .ok_or_else(|| vec![format!("no path in the spec matches {path}")])?;
        let operation = self.doc["paths"][&template]
            .get(method.to_ascii_lowercase())
            .ok_or_else(|| vec![format!("the spec has no {method} {template}")])?;
        let responses = &operation["responses"];
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or_else(|| vec![format!("{method} {template} declares no {status} response")])?;
        let response = self.resolve(response);
        let mut errors = Vec::new();
        if let Some(declared) = response.get("headers").and_then(Value::as_object) {
            for name in declared.keys() {
                if !headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                    errors.push(format!("header {name} missing"));
                }
            }
        }
        let schema = response
            .get("content")
            .and_then(|c| c.get("application/json"))
            .and_then(|c| c.get("schema"));
        match (schema, body.is_empty()) {
            (None, true) => {}
            (None, false) => {
                if status != 204 {
                    // No schema to hold it to; a body is still allowed.
                } else {
                    errors.push("a 204 answer carries a body".into());
                }
            }
            (Some(_), true) => errors.push(format!("{status} answer has no body")),
            (Some(schema), false) => match serde_json::from_slice::<Value>(body) {
                Ok(value) => self.check_value(schema, &value, "$", 0, &mut errors),
                Err(e) => errors.push(format!("body is not JSON: {e}")),
            },
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors
                .into_iter()
                .map(|e| format!("{method} {path} ({template}) {status}: {e}"))
                .collect())
        }
    }

    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..MAX_DEPTH {
            let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
                return value;
            };
            let Some(pointer) = reference.strip_prefix('#') else {
                return value;
            };
            match self.doc.pointer(pointer) {
                Some(target) => value = target,
                None => return value,
            }
        }
        value
    }

    fn check_value(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        depth: usize,
        errors: &mut Vec<String>,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        let schema = self.resolve(schema);
        if value.is_null() && self.allows_null(schema, depth) {
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check_value(part, value, at, depth + 1, errors);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let mut first_failure = None;
                let matched = options.iter().any(|option| {
                    let mut found = Vec::new();
                    self.check_value(option, value, at, depth + 1, &mut found);
                    if found.is_empty() {
                        true
                    } else {
                        first_failure.get_or_insert(found);
                        false
                    }
                });
                if !matched {
                    let why = first_failure.unwrap_or_default().join("; ");
                    errors.push(format!("{at}: matches none of {key} (first: {why})"));
                }
            }
        }
        let kind = schema.get("type").and_then(Value::as_str).or_else(|| {
            (schema.get("properties").is_some() || schema.get("required").is_some())
                .then_some("object")
        });
        if let Some(kind) = kind {
            if !type_matches(kind, value) {
                errors.push(format!("{at}: expected {kind}, got {}", type_name(value)));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !value.is_null() && !allowed.contains(value) {
                errors.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        if let Some(object) = value.as_object() {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(name) {
                        errors.push(format!("{at}: required property {name} missing"));
                    }
                }
            }
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    if let Some(field) = object.get(name) {
                        self.check_value(
                            property,
                            field,
                            &format!("{at}.{name}"),
                            depth + 1,
                            errors,
                        );
                    }
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                self.check_value(items, item, &format!("{at}[{index}]"), depth + 1, errors);
            }
        }
    }

    /// Null is allowed by `nullable: true` here, or in every `allOf` part that has a type.
    fn allows_null(&self, schema: &Value, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let schema = self.resolve(schema);
        if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return true;
        }
        if schema.get("type").and_then(Value::as_str) == Some("null") {
            return true;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            return all.iter().any(|part| self.allows_null(part, depth + 1));
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                if options.iter().any(|part| self.allows_null(part, depth + 1)) {
                    return true;
                }
            }
        }
        false
    }
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::from_value(json!({
            "paths": {
                "/v2/things": { "get": { "responses": {
                    "200": { "$ref": "#/components/responses/things" },
                    "default": { "content": { "application/json": { "schema": {
                        "$ref": "#/components/schemas/error" } } } }
                }}},
                "/v2/things/{id}": { "delete": { "responses": { "204": {
                    "headers": { "ratelimit-limit": {} } } } } },
                "/v2/things/special": { "get": { "responses": { "200": {} } } }
            },
            "components": {
                "responses": { "things": {
                    "headers": { "ratelimit-limit": {} },
                    "content": { "application/json": { "schema": { "allOf": [
                        { "type": "object", "properties": { "things": { "type": "array",
                            "items": { "$ref": "#/components/schemas/thing" } } } },
                        { "required": ["meta"], "properties": { "meta": { "type": "object" } } }
                    ] } } }
                }},
                "schemas": {
                    "thing": { "type": "object", "required": ["id", "status"], "properties": {
                        "id": { "type": "integer" },
                        "status": { "type": "string", "enum": ["new", "active"] },
                        "kernel": { "type": "object", "nullable": true },
                        "image": { "oneOf": [ { "type": "integer" }, { "type": "string" } ] }
                    }},
                    "error": { "type": "object", "required": ["id", "message"] }
                }
            }
        }))
    }

    fn headers() -> Vec<String> {
        vec!["RateLimit-Limit".into()]
    }

    #[test]
    fn a_conforming_body_passes() {
        let body = br#"{"things":[{"id":1,"status":"new","kernel":null,"image":"x"}],"meta":{}}"#;
        spec()
            .check("GET", "/v2/things", 200, &headers(), body)
            .unwrap();
    }

    #[test]
    fn missing_required_wrong_type_bad_enum_and_missing_header_are_reported() {
        let body = br#"{"things":[{"id":"1","status":"gone","image":true}]}"#;
        let errors = spec()
            .check("GET", "/v2/things", 200, &[], body)
            .unwrap_err();
        let text = errors.join("\n");
        assert!(text.contains("required property meta missing"), "{text}");
        assert!(text.contains("$.things[0].id: expected integer"), "{text}");
        assert!(text.contains("is not one of"), "{text}");
        assert!(text.contains("matches none of oneOf"), "{text}");
        assert!(text.contains("header ratelimit-limit missing"), "{text}");
    }

    #[test]
    fn unknown_status_falls_back_to_default_and_templates_prefer_literals() {
        let body = br#"{"id":"not_found","message":"nope"}"#;
        spec()
            .check("GET", "/v2/things", 404, &headers(), body)
            .unwrap();
        let s = spec();
        assert_eq!(
            s.template_for("/v2/things/special").unwrap(),
            "/v2/things/special"
        );
        assert_eq!(s.template_for("/v2/things/7").unwrap(), "/v2/things/{id}");
        s.check("DELETE", "/v2/things/7", 204, &headers(), b"")
            .unwrap();
        assert!(s
            .check("DELETE", "/v2/things/7", 204, &headers(), b"{}")
            .is_err());
    }
}

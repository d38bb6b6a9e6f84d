//! A strict validator of JSON values against the schemas of an OpenAPI 3.1 document, for
//! the tests that hold the API's answers to its document.
//!
//! It knows the keywords utoipa writes (`$ref`, `type`, `properties`, `required`,
//! `additionalProperties`, `items`, `prefixItems`, `oneOf`, `anyOf`, `allOf`, `enum`,
//! `const`, `minimum`, `maximum`) and refuses a schema with any other keyword that could
//! constrain a value, so an unknown construct fails the test instead of passing unchecked.
//! Objects are closed: a property the schema does not list is an error unless the schema
//! says `additionalProperties`. That is stricter than JSON Schema on purpose: a field added
//! to an answer without reaching the document must fail.

use serde_json::Value;

/// Keywords that only describe.
const ANNOTATIONS: &[&str] = &[
    "description", "title", "format", "default", "example", "examples", "deprecated", "readOnly", "writeOnly",
    "discriminator", "contentMediaType", "contentEncoding", "externalDocs", "xml",
];

/// Every way `value` breaks `schema`, each with the JSON pointer of the value; `schemas`
/// are the document's `components.schemas`.
pub fn violations(value: &Value, schema: &Value, schemas: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(value, schema, schemas, "", &mut errors);
    errors
}

/// Whether `schema` (after references) is an object schema that names no property: a
/// "generic object" that documents nothing.
pub fn is_free_form(schema: &Value, schemas: &Value) -> bool {
    let schema = resolve(schema, schemas).unwrap_or(schema);
    let is_object = schema["type"] == "object" || schema.as_object().is_some_and(|map| map.is_empty());
    if schema["type"] == "array" {
        return is_free_form(&schema["items"], schemas);
    }
    is_object && schema.get("properties").is_none() && !schema.get("additionalProperties").is_some_and(Value::is_object)
}

fn resolve<'a>(schema: &'a Value, schemas: &'a Value) -> Option<&'a Value> {
    let name = schema.get("$ref")?.as_str()?.strip_prefix("#/components/schemas/")?;
    schemas.get(name)
}

fn type_matches(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

fn check(value: &Value, schema: &Value, schemas: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(flag) = schema.as_bool() {
        if !flag {
            errors.push(format!("{at}: no value is allowed here"));
        }
        return;
    }
    let Some(map) = schema.as_object() else {
        errors.push(format!("{at}: the schema is not an object: {schema}"));
        return;
    };
    for key in map.keys() {
        let known = matches!(
            key.as_str(),
            "$ref" | "type" | "properties" | "required" | "additionalProperties" | "items" | "prefixItems" | "oneOf"
                | "anyOf" | "allOf" | "enum" | "const" | "minimum" | "maximum" | "propertyNames"
        );
        if !known && !ANNOTATIONS.contains(&key.as_str()) {
            errors.push(format!("{at}: the validator does not know the keyword {key:?}"));
        }
    }
    if let Some(reference) = map.get("$ref") {
        match resolve(schema, schemas) {
            Some(target) => check(value, target, schemas, at, errors),
            None => errors.push(format!("{at}: unresolved reference {reference}")),
        }
    }
    if let Some(kind) = map.get("type") {
        let names: Vec<&str> = match kind {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|name| type_matches(value, name)) {
            errors.push(format!("{at}: {value} is not of type {kind}"));
            return;
        }
    }
    if let Some(allowed) = map.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(constant) = map.get("const")
        && constant != value
    {
        errors.push(format!("{at}: {value} is not {constant}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = map.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            errors.push(format!("{at}: {value} is below {minimum}"));
        }
        if let Some(maximum) = map.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            errors.push(format!("{at}: {value} is above {maximum}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = map.get("properties").and_then(Value::as_object);
        for name in map.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(name) {
                errors.push(format!("{at}: the required field {name:?} is missing"));
            }
        }
        for (name, field) in object {
            let here = format!("{at}/{name}");
            if let Some(field_schema) = properties.and_then(|properties| properties.get(name)) {
                check(field, field_schema, schemas, &here, errors);
            } else if let Some(extra) = map.get("additionalProperties") {
                check(field, extra, schemas, &here, errors);
            } else if properties.is_some() {
                errors.push(format!("{here}: the document does not list this field"));
            }
            // Neither: a reference or a oneOf checked above and below, or the free-form
            // object, which `is_free_form` finds.
        }
    }
    if let Some(items) = value.as_array() {
        let prefix = map.get("prefixItems").and_then(Value::as_array);
        for (idx, item) in items.iter().enumerate() {
            let here = format!("{at}/{idx}");
            match (prefix.and_then(|prefix| prefix.get(idx)), map.get("items")) {
                (Some(item_schema), _) => check(item, item_schema, schemas, &here, errors),
                (None, Some(item_schema)) => check(item, item_schema, schemas, &here, errors),
                (None, None) => {}
            }
        }
    }
    if let Some(all) = map.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(value, part, schemas, at, errors);
        }
    }
    if let Some(any) = map.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|part| violations_at(value, part, schemas, at).is_empty())
    {
        errors.push(format!("{at}: {value} matches none of anyOf"));
    }
    if let Some(one) = map.get("oneOf").and_then(Value::as_array) {
        let failures: Vec<Vec<String>> = one.iter().map(|part| violations_at(value, part, schemas, at)).collect();
        let matched = failures.iter().filter(|errors| errors.is_empty()).count();
        if matched != 1 {
            errors.push(format!("{at}: {value} matches {matched} of oneOf (exactly one needed): {failures:?}"));
        }
    }
}

fn violations_at(value: &Value, schema: &Value, schemas: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    check(value, schema, schemas, at, &mut errors);
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(value: Value, schema: Value) -> Vec<String> {
        let schemas = json!({"Row": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer", "minimum": 0}}}});
        violations(&value, &schema, &schemas)
    }

    #[test]
    fn closed_objects_refuse_unlisted_fields_and_references_resolve() {
        let row = json!({"$ref": "#/components/schemas/Row"});
        assert!(check(json!({"id": 3}), row.clone()).is_empty());
        assert_eq!(check(json!({"id": 3, "extra": 1}), row.clone()), ["/extra: the document does not list this field"]);
        assert_eq!(check(json!({}), row.clone()), [": the required field \"id\" is missing"]);
        assert_eq!(check(json!({"id": -1}), row.clone()), ["/id: -1 is below 0"]);
        assert_eq!(check(json!([{"id": "x"}]), json!({"type": "array", "items": row})), ["/0/id: \"x\" is not of type \"integer\""]);
        let map = json!({"type": "object", "additionalProperties": {"type": "integer"}});
        assert!(check(json!({"a": 1, "b": 2}), map.clone()).is_empty());
        assert_eq!(check(json!({"a": "1"}), map).len(), 1);
    }

    #[test]
    fn nullable_tuples_one_of_and_unknown_keywords() {
        assert!(check(json!(null), json!({"type": ["string", "null"]})).is_empty());
        let pair = json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
        assert!(check(json!(["name", ["a"]]), pair.clone()).is_empty());
        assert_eq!(check(json!([1, ["a"]]), pair).len(), 1);
        let tagged = json!({"oneOf": [
            {"type": "object", "required": ["state"], "properties": {"state": {"type": "string", "enum": ["connecting"]}}},
            {"type": "object", "required": ["state", "since"], "properties": {"state": {"type": "string", "enum": ["online"]}, "since": {"type": "integer"}}},
        ]});
        assert!(check(json!({"state": "online", "since": 5}), tagged.clone()).is_empty());
        assert_eq!(check(json!({"state": "offline"}), tagged).len(), 1);
        assert_eq!(check(json!("x"), json!({"type": "string", "pattern": "y"})), [": the validator does not know the keyword \"pattern\""]);
        assert!(is_free_form(&json!({"type": "object"}), &json!({})));
        assert!(is_free_form(&json!({"type": "array", "items": {"type": "object"}}), &json!({})));
        assert!(!is_free_form(&json!({"$ref": "#/components/schemas/Row"}), &json!({"Row": {"type": "object", "properties": {}}})));
    }
}

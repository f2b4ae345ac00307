//! Our JSON Schemas as the providers' constrained decoders take them, and the answers back.
//!
//! The schemas we write (the plan, the tools' arguments) say what we check: optional
//! properties, string lengths, patterns. Strict structured output (OpenAI `strict: true`,
//! Anthropic `output_config.format` and strict tools) wants another shape: every object
//! closed (`additionalProperties: false`), every property required, an optional one
//! nullable instead, and no keyword the decoder cannot enforce. `wire_schema` makes that
//! shape from ours; `drop_nulls` turns the nulls of an answer back into absent properties,
//! so the answer is then checked against our schema, which still enforces everything.

use serde_json::{Map, Value};

/// Keywords constrained decoders do not enforce (or refuse): they stay in our schema, which
/// checks every answer, and are left off the wire.
const LOCAL_ONLY: [&str; 14] = [
    "$schema",
    "title",
    "default",
    "examples",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "maxItems",
];

/// The schema to send. `strict`: the strict shape (closed objects, all properties
/// required, optional ones nullable); otherwise only the local-only keywords are left off.
pub fn wire_schema(schema: &Value, strict: bool) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        if LOCAL_ONLY.contains(&key.as_str()) {
            continue;
        }
        let value = match key.as_str() {
            "properties" => match value {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, p)| (name.clone(), wire_schema(p, strict)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" => wire_schema(value, strict),
            "anyOf" | "oneOf" | "allOf" => match value {
                Value::Array(list) => {
                    Value::Array(list.iter().map(|s| wire_schema(s, strict)).collect())
                }
                other => other.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if !out.contains_key("type")
        && let Some(Value::Array(values)) = out.get("enum")
        && values.iter().all(Value::is_string)
    {
        out.insert("type".into(), Value::from("string"));
    }
    if strict && let Some(Value::Object(props)) = out.get("properties").cloned() {
        let required = required_of(map);
        let mut strict_props = Map::new();
        for (name, prop) in props {
            let prop = match required.contains(&name.as_str()) {
                true => prop,
                false => nullable(prop),
            };
            strict_props.insert(name, prop);
        }
        let mut names: Vec<String> = strict_props.keys().cloned().collect();
        names.sort();
        let names: Vec<Value> = names.into_iter().map(Value::from).collect();
        out.insert("properties".into(), Value::Object(strict_props));
        out.insert("required".into(), Value::Array(names));
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

fn required_of(schema: &Map<String, Value>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `{"type": "string"}` → `{"type": ["string", "null"]}`; an enum also admits null.
fn nullable(mut schema: Value) -> Value {
    let Value::Object(map) = &mut schema else {
        return schema;
    };
    match map.get("type").cloned() {
        Some(Value::String(t)) if t != "null" => {
            map.insert(
                "type".into(),
                Value::Array(vec![Value::from(t), Value::from("null")]),
            );
        }
        Some(Value::Array(mut types)) if !types.contains(&Value::from("null")) => {
            types.push(Value::from("null"));
            map.insert("type".into(), Value::Array(types));
        }
        _ => {}
    }
    if let Some(Value::Array(values)) = map.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    schema
}

/// The answer with every null that stands for an absent optional property removed, as our
/// schema (not the wire's) reads it: a null where our schema has the property optional
/// goes; a null for a required one stays, for the check to report.
pub fn drop_nulls(schema: &Value, value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let required = schema.as_object().map(required_of).unwrap_or_default();
            let props = schema.get("properties");
            Value::Object(
                map.into_iter()
                    .filter(|(k, v)| !v.is_null() || required.contains(&k.as_str()))
                    .map(|(k, v)| {
                        let sub = props.and_then(|p| p.get(&k)).unwrap_or(&Value::Null);
                        let v = drop_nulls(sub, v);
                        (k, v)
                    })
                    .collect(),
            )
        }
        Value::Array(items) => {
            let sub = schema.get("items").unwrap_or(&Value::Null);
            Value::Array(items.into_iter().map(|v| drop_nulls(sub, v)).collect())
        }
        other => other,
    }
}

/// For a model with no structured output: the schema, told in the system prompt.
pub fn schema_in_prompt(schema: &Value) -> String {
    format!(
        "Answer with one JSON document only, no prose and no code fence, matching this JSON Schema: {schema}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ours() -> Value {
        json!({
            "title": "thing", "type": "object", "required": ["key"],
            "properties": {
                "key": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 64},
                "note": {"type": "string"},
                "level": {"enum": ["low", "high"]},
                "tags": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "weight": {"type": "integer", "minimum": 0}}
                }}
            }
        })
    }

    #[test]
    fn the_strict_shape_closes_objects_requires_everything_and_makes_optional_nullable() {
        let wire = wire_schema(&ours(), true);
        assert_eq!(
            wire,
            json!({
                "type": "object", "additionalProperties": false,
                "required": ["key", "level", "note", "tags"],
                "properties": {
                    "key": {"type": "string"},
                    "note": {"type": ["string", "null"]},
                    "level": {"type": ["string", "null"], "enum": ["low", "high", null]},
                    "tags": {"type": ["array", "null"], "items": {
                        "type": "object", "additionalProperties": false,
                        "required": ["name", "weight"],
                        "properties": {"name": {"type": "string"}, "weight": {"type": ["integer", "null"]}}
                    }}
                }
            })
        );
        let loose = wire_schema(&ours(), false);
        assert_eq!(loose["required"], json!(["key"]));
        assert!(loose.get("additionalProperties").is_none());
        assert!(loose["properties"]["key"].get("pattern").is_none());
    }

    #[test]
    fn nulls_for_optional_properties_become_absent_and_required_ones_stay_for_the_check() {
        let answer = json!({"key": "a", "note": null, "level": null,
            "tags": [{"name": "x", "weight": null}, {"name": null}]});
        assert_eq!(
            drop_nulls(&ours(), answer),
            json!({"key": "a", "tags": [{"name": "x"}, {"name": null}]})
        );
    }
}

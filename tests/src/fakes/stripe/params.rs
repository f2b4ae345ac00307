//! Stripe's request bodies: a form in bracket notation (`line_items[0][price]=…`) read
//! into JSON, then checked against the operation's request type as Stripe's official SDK
//! publishes it (`tests/stripe_check/params.py` writes `.local/stripe-params.json`).

use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The request types, by operation (`POST /v1/customers`).
pub struct Types {
    pub source: String,
    operations: Map<String, Value>,
}

/// Where the types are: `STRIPE_PARAMS_PATH`, else the stack's `.local/stripe-params.json`.
fn path() -> std::path::PathBuf {
    match std::env::var("STRIPE_PARAMS_PATH") {
        Ok(path) if !path.is_empty() => path.into(),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.local/stripe-params.json"),
    }
}

/// The types, read once; an error says how to make them.
pub fn types() -> Result<&'static Types, String> {
    static TYPES: OnceLock<Result<Types, String>> = OnceLock::new();
    TYPES
        .get_or_init(|| {
            let path = path();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "{}: {e} (`bash infra/local/stack.sh up` writes it from Stripe's Python SDK)",
                    path.display()
                )
            })?;
            let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            Ok(Types {
                source: value["source"].as_str().unwrap_or_default().to_owned(),
                operations: value["operations"].as_object().cloned().unwrap_or_default(),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A form's fields as JSON: `a[b][0]=x` is `{"a": {"b": ["x"]}}`. Values stay strings, as
/// Stripe receives them.
pub fn decode(fields: &[(String, String)]) -> Result<Value, String> {
    let mut root = Value::Object(Map::new());
    for (key, value) in fields {
        let mut parts = Vec::new();
        let (head, mut rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        parts.push(head.to_owned());
        while let Some(stripped) = rest.strip_prefix('[') {
            let end = stripped
                .find(']')
                .ok_or_else(|| format!("Invalid parameter name: {key}"))?;
            parts.push(stripped[..end].to_owned());
            rest = &stripped[end + 1..];
        }
        if !rest.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("Invalid parameter name: {key}"));
        }
        insert(&mut root, &parts, value.clone(), key)?;
    }
    Ok(arrays(root))
}

fn insert(node: &mut Value, parts: &[String], value: String, key: &str) -> Result<(), String> {
    let Value::Object(map) = node else {
        return Err(format!("Invalid parameter name: {key}"));
    };
    match parts {
        [last] => {
            map.insert(last.clone(), Value::String(value));
            Ok(())
        }
        [first, rest @ ..] => {
            let child = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            insert(child, rest, value, key)
        }
        [] => Err(format!("Invalid parameter name: {key}")),
    }
}

/// Objects whose keys are all indexes become arrays, in index order.
fn arrays(node: Value) -> Value {
    match node {
        Value::Object(map) => {
            let indexed = !map.is_empty() && map.keys().all(|k| k.parse::<usize>().is_ok());
            if indexed {
                let mut items: Vec<(usize, Value)> = map
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(0), arrays(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v).collect())
            } else {
                Value::Object(map.into_iter().map(|(k, v)| (k, arrays(v))).collect())
            }
        }
        other => other,
    }
}

/// Why a request breaks its type: Stripe's message and the parameter it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub param: String,
}

/// Checks `body` against `operation`'s type.
pub fn check(operation: &str, body: &Value) -> Result<(), Refusal> {
    let types = types().map_err(|message| Refusal {
        message,
        param: String::new(),
    })?;
    let Some(schema) = types.operations.get(operation) else {
        return Err(Refusal {
            message: format!("the fake has no request type for {operation}"),
            param: String::new(),
        });
    };
    walk(schema, body, "")
}

fn name(path: &str, key: &str) -> String {
    match path {
        "" => key.to_owned(),
        _ => format!("{path}[{key}]"),
    }
}

fn refuse(message: String, param: &str) -> Result<(), Refusal> {
    Err(Refusal {
        message,
        param: param.to_owned(),
    })
}

fn walk(schema: &Value, value: &Value, path: &str) -> Result<(), Refusal> {
    match schema {
        Value::String(kind) => match (kind.as_str(), value) {
            ("any" | "string", Value::String(_)) | ("any", _) => Ok(()),
            ("integer", Value::String(s)) if s.parse::<i64>().is_ok() => Ok(()),
            ("number", Value::String(s)) if s.parse::<f64>().is_ok() => Ok(()),
            ("boolean", Value::String(s)) if s == "true" || s == "false" => Ok(()),
            (kind, _) => refuse(format!("Invalid {kind}: {value}"), path),
        },
        Value::Object(shape) => {
            if let Some(fields) = shape.get("object").and_then(Value::as_object) {
                let Value::Object(given) = value else {
                    return refuse(format!("Invalid object: {path}"), path);
                };
                for (key, field) in fields {
                    if field["required"] == true && !given.contains_key(key) {
                        return refuse(
                            format!("Missing required param: {}.", name(path, key)),
                            &name(path, key),
                        );
                    }
                }
                for (key, item) in given {
                    let Some(field) = fields.get(key) else {
                        return refuse(
                            format!("Received unknown parameter: {}", name(path, key)),
                            &name(path, key),
                        );
                    };
                    walk(&field["schema"], item, &name(path, key))?;
                }
                return Ok(());
            }
            if let Some(item) = shape.get("array") {
                let Value::Array(items) = value else {
                    return refuse(format!("Invalid array: {path}"), path);
                };
                for (i, v) in items.iter().enumerate() {
                    walk(item, v, &name(path, &i.to_string()))?;
                }
                return Ok(());
            }
            if let Some(item) = shape.get("map") {
                let Value::Object(entries) = value else {
                    return refuse(format!("Invalid hash: {path}"), path);
                };
                for (k, v) in entries {
                    walk(item, v, &name(path, k))?;
                }
                return Ok(());
            }
            if let Some(options) = shape.get("enum").and_then(Value::as_array) {
                return match options.contains(value) {
                    true => Ok(()),
                    false => refuse(
                        format!(
                            "Invalid {path}: must be one of {}",
                            Value::Array(options.clone())
                        ),
                        path,
                    ),
                };
            }
            if let Some(members) = shape.get("any_of").and_then(Value::as_array) {
                let mut first = None;
                for member in members {
                    match walk(member, value, path) {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            first.get_or_insert(e);
                        }
                    }
                }
                return Err(first.unwrap_or(Refusal {
                    message: format!("Invalid {path}"),
                    param: path.to_owned(),
                }));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

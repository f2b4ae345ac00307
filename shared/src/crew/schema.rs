//! JSON Schema checks for what a model writes: the plan, agent answers and tool arguments.
//! A failed check lists every violation with its JSON pointer, so the repair prompt and the
//! recorded error say exactly what was wrong.

use serde_json::Value;

/// What did not match the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct SchemaViolations(pub Vec<String>);

/// A schema compiled once, to check many values.
pub struct Checker(jsonschema::Validator);

impl Checker {
    /// Compiles `schema`; a schema that is itself invalid is reported as a violation.
    pub fn new(schema: &Value) -> Result<Checker, SchemaViolations> {
        jsonschema::validator_for(schema)
            .map(Checker)
            .map_err(|e| SchemaViolations(vec![format!("the schema itself is invalid: {e}")]))
    }

    pub fn check(&self, value: &Value) -> Result<(), SchemaViolations> {
        violations(&self.0, value)
    }
}

/// Checks `value` against `schema`, compiling it for this one check.
pub fn validate(schema: &Value, value: &Value) -> Result<(), SchemaViolations> {
    Checker::new(schema)?.check(value)
}

fn violations(validator: &jsonschema::Validator, value: &Value) -> Result<(), SchemaViolations> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(10)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("at {at}: {e}")
        })
        .collect();
    match errors.is_empty() {
        true => Ok(()),
        false => Err(SchemaViolations(errors)),
    }
}

/// Reads a model's JSON answer (a Markdown code fence around it is accepted) and checks it.
pub fn parse_checked(checker: &Checker, text: &str) -> Result<Value, SchemaViolations> {
    let value: Value = serde_json::from_str(super::planner::strip_fences(text))
        .map_err(|e| SchemaViolations(vec![format!("not valid JSON: {e}")]))?;
    checker.check(&value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_where_and_what() {
        let schema = json!({
            "type": "object", "required": ["path"],
            "properties": {"path": {"type": "string"}, "n": {"type": "integer"}}
        });
        assert!(validate(&schema, &json!({"path": "a"})).is_ok());
        let err = validate(&schema, &json!({"n": "two"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"path\" is a required property"), "{err}");
        assert!(err.contains("at /n:"), "{err}");
        let checker = Checker::new(&schema).unwrap();
        let err = parse_checked(&checker, "not json").unwrap_err().to_string();
        assert!(err.starts_with("not valid JSON"), "{err}");
        assert_eq!(
            parse_checked(&checker, "```json\n{\"path\": \"x\"}\n```").unwrap(),
            json!({"path": "x"})
        );
    }
}

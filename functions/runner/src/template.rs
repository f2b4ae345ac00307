//! Reads `template.yaml`: the queues, bucket, table, state machine and functions with their
//! triggers, so the runner declares nothing twice. CloudFormation's short-form tags
//! (`!Ref`, `!GetAtt`, `!Sub`) are kept as tagged values and resolved against local names.

use serde_norway::Value;
use serde_norway::value::TaggedValue;
use std::collections::BTreeMap;

/// Why the template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("resource {resource}: {problem}")]
    Invalid { resource: String, problem: String },
    #[error("{context} refers to {target}, which is not defined")]
    Dangling { context: String, target: String },
}

fn invalid(resource: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        resource: resource.to_owned(),
        problem: problem.into(),
    }
}

/// What starts a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An SQS event source mapping on the queue with this logical id.
    Sqs {
        queue: String,
        batch_size: u32,
        reports_failures: bool,
    },
    /// A route of the HTTP API: `POST /projects/{project_id}/commands`.
    Http { method: String, path: String },
    /// A route of the WebSocket API: `$connect`, `$disconnect`, `$default`.
    WebSocket { route_key: String },
    /// An EventBridge schedule: `rate(...)` or `cron(...)`.
    Schedule { expression: String },
}

/// A function and what starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub runtime: String,
    /// `MemorySize` (or the global one; Lambda's default 128): what its GB-seconds bill.
    pub memory_mb: u64,
    /// `Timeout` in seconds (or the global one; Lambda's default 3): when Lambda stops an
    /// invocation, and the deadline its context carries.
    pub timeout_secs: u64,
    pub triggers: Vec<Trigger>,
}

/// An SQS queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub visibility_timeout: u32,
    /// The DLQ's logical id and the receive count after which messages move there.
    pub dead_letter: Option<(String, u32)>,
}

/// A state machine: its definition file and the substitutions into it.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachineSpec {
    pub logical_id: String,
    pub definition_uri: String,
    pub substitutions: BTreeMap<String, Value>,
}

/// The parts of `template.yaml` the runner uses.
#[derive(Debug, Clone)]
pub struct Template {
    resources: serde_norway::Mapping,
    /// `Globals.Function.Environment.Variables`, unresolved.
    pub environment: BTreeMap<String, Value>,
    /// `Globals.Function.Runtime`.
    global_runtime: Option<String>,
    global_memory_mb: Option<u64>,
    global_timeout_secs: Option<u64>,
    /// Each parameter's `Default`, where it has one.
    pub parameter_defaults: BTreeMap<String, String>,
}

/// A mapping's string-keyed entries, values unresolved.
fn string_map(value: &Value) -> BTreeMap<String, Value> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let root: Value = serde_norway::from_str(text)?;
        let resources = root
            .get("Resources")
            .and_then(Value::as_mapping)
            .cloned()
            .ok_or_else(|| invalid("Resources", "missing"))?;
        let environment = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .map(string_map)
            .unwrap_or_default();
        let global_runtime = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| str_of(f, "Runtime"))
            .map(str::to_owned);
        let global_memory_mb = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("MemorySize"))
            .and_then(Value::as_u64);
        let global_timeout_secs = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Timeout"))
            .and_then(Value::as_u64);
        let parameter_defaults = root
            .get("Parameters")
            .and_then(Value::as_mapping)
            .map(|params| {
                params
                    .iter()
                    .filter_map(|(name, p)| {
                        // A Number parameter's default may be written as a number.
                        let default = match p.get("Default")? {
                            Value::Number(n) => n.to_string(),
                            other => other.as_str()?.to_owned(),
                        };
                        Some((name.as_str()?.to_owned(), default))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Template {
            resources,
            environment,
            global_runtime,
            global_memory_mb,
            global_timeout_secs,
            parameter_defaults,
        })
    }

    /// `(logical id, properties)` of every resource of `kind`, in template order.
    pub fn of_kind(&self, kind: &str) -> Vec<(String, Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| str_of(r, "Type") == Some(kind))
            .filter_map(|(id, r)| {
                Some((
                    id.as_str()?.to_owned(),
                    r.get("Properties").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect()
    }

    /// Whether a resource with this logical id exists.
    pub fn has(&self, logical_id: &str) -> bool {
        self.resources.contains_key(logical_id)
    }

    pub fn queues(&self) -> Result<Vec<QueueSpec>, TemplateError> {
        self.of_kind("AWS::SQS::Queue")
            .into_iter()
            .map(|(id, props)| {
                let visibility_timeout = props
                    .get("VisibilityTimeout")
                    .and_then(Value::as_u64)
                    .unwrap_or(30) as u32;
                let dead_letter = match props.get("RedrivePolicy") {
                    None => None,
                    Some(policy) => {
                        let target = policy.get("deadLetterTargetArn").ok_or_else(|| {
                            invalid(&id, "RedrivePolicy without deadLetterTargetArn")
                        })?;
                        let (dlq, _) = get_att(target).ok_or_else(|| {
                            invalid(&id, "deadLetterTargetArn must be !GetAtt Queue.Arn")
                        })?;
                        let max = policy
                            .get("maxReceiveCount")
                            .and_then(Value::as_u64)
                            .ok_or_else(|| invalid(&id, "RedrivePolicy without maxReceiveCount"))?;
                        Some((dlq, max as u32))
                    }
                };
                Ok(QueueSpec {
                    logical_id: id,
                    visibility_timeout,
                    dead_letter,
                })
            })
            .collect()
    }

    pub fn state_machines(&self) -> Result<Vec<StateMachineSpec>, TemplateError> {
        self.of_kind("AWS::Serverless::StateMachine")
            .into_iter()
            .map(|(id, props)| {
                let definition_uri = str_of(&props, "DefinitionUri")
                    .ok_or_else(|| invalid(&id, "DefinitionUri is required"))?
                    .to_owned();
                let substitutions = props
                    .get("DefinitionSubstitutions")
                    .map(string_map)
                    .unwrap_or_default();
                Ok(StateMachineSpec {
                    logical_id: id,
                    definition_uri,
                    substitutions,
                })
            })
            .collect()
    }

    pub fn functions(&self) -> Result<Vec<FunctionSpec>, TemplateError> {
        let websocket = self.websocket_routes()?;
        let mut functions = Vec::new();
        for (id, props) in self.of_kind("AWS::Serverless::Function") {
            let resource = &self.resources[id.as_str()];
            let binary = resource
                .get("Metadata")
                .and_then(|m| m.get("BuildProperties"))
                .and_then(|b| str_of(b, "Binary"))
                .ok_or_else(|| invalid(&id, "Metadata.BuildProperties.Binary is required"))?
                .to_owned();
            let runtime = str_of(&props, "Runtime")
                .map(str::to_owned)
                .or_else(|| self.global_runtime.clone())
                .unwrap_or_default();
            let memory_mb = props
                .get("MemorySize")
                .and_then(Value::as_u64)
                .or(self.global_memory_mb)
                .unwrap_or(128);
            let timeout_secs = props
                .get("Timeout")
                .and_then(Value::as_u64)
                .or(self.global_timeout_secs)
                .unwrap_or(3);
            let mut triggers = Vec::new();
            if let Some(events) = props.get("Events").and_then(Value::as_mapping) {
                for (name, event) in events {
                    let name = name.as_str().unwrap_or("");
                    triggers.push(trigger(&id, name, event)?);
                }
            }
            triggers.extend(websocket.iter().filter(|(_, f)| *f == id).map(|(key, _)| {
                Trigger::WebSocket {
                    route_key: key.clone(),
                }
            }));
            functions.push(FunctionSpec {
                logical_id: id,
                binary,
                runtime,
                memory_mb,
                timeout_secs,
                triggers,
            });
        }
        Ok(functions)
    }

    /// `(route key, function logical id)` of every WebSocket route, following
    /// Route.Target → Integration.IntegrationUri → `${Function.Arn}`.
    fn websocket_routes(&self) -> Result<Vec<(String, String)>, TemplateError> {
        let mut routes = Vec::new();
        for (id, props) in self.of_kind("AWS::ApiGatewayV2::Route") {
            let key = str_of(&props, "RouteKey")
                .ok_or_else(|| invalid(&id, "RouteKey is required"))?
                .to_owned();
            let target = props
                .get("Target")
                .and_then(sub_text)
                .ok_or_else(|| invalid(&id, "Target must be !Sub integrations/${Integration}"))?;
            let integration = sub_references(&target)
                .into_iter()
                .next()
                .ok_or_else(|| invalid(&id, "Target names no integration"))?;
            let uri = self
                .resources
                .get(integration.as_str())
                .and_then(|r| r.get("Properties"))
                .and_then(|p| p.get("IntegrationUri"))
                .and_then(sub_text)
                .ok_or_else(|| TemplateError::Dangling {
                    context: format!("route {id}"),
                    target: integration.clone(),
                })?;
            let function = sub_references(&uri)
                .into_iter()
                .find_map(|r| r.strip_suffix(".Arn").map(str::to_owned))
                .ok_or_else(|| invalid(&integration, "IntegrationUri names no function"))?;
            routes.push((key, function));
        }
        Ok(routes)
    }
}

fn trigger(function: &str, name: &str, event: &Value) -> Result<Trigger, TemplateError> {
    let props = event.get("Properties").cloned().unwrap_or(Value::Null);
    let context = format!("{function} event {name}");
    match str_of(event, "Type") {
        Some("SQS") => {
            let queue = props
                .get("Queue")
                .and_then(get_att)
                .map(|(q, _)| q)
                .ok_or_else(|| invalid(&context, "Queue must be !GetAtt Queue.Arn"))?;
            let batch_size = props.get("BatchSize").and_then(Value::as_u64).unwrap_or(10) as u32;
            let reports_failures = props
                .get("FunctionResponseTypes")
                .and_then(Value::as_sequence)
                .is_some_and(|s| {
                    s.iter()
                        .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                });
            Ok(Trigger::Sqs {
                queue,
                batch_size,
                reports_failures,
            })
        }
        Some("HttpApi") => Ok(Trigger::Http {
            method: str_of(&props, "Method")
                .ok_or_else(|| invalid(&context, "Method is required"))?
                .to_uppercase(),
            path: str_of(&props, "Path")
                .ok_or_else(|| invalid(&context, "Path is required"))?
                .to_owned(),
        }),
        Some("Schedule") | Some("ScheduleV2") => Ok(Trigger::Schedule {
            expression: str_of(&props, "Schedule")
                .or_else(|| str_of(&props, "ScheduleExpression"))
                .ok_or_else(|| invalid(&context, "Schedule is required"))?
                .to_owned(),
        }),
        other => Err(invalid(
            &context,
            format!("unsupported event type {other:?}"),
        )),
    }
}

/// `!GetAtt X.Attr` (or the long form) as `(X, Attr)`.
pub fn get_att(value: &Value) -> Option<(String, String)> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
            let text = tagged.value.as_str()?;
            let (id, attr) = text.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Value::Mapping(m) => {
            let parts = m.get("Fn::GetAtt")?.as_sequence()?;
            Some((
                parts.first()?.as_str()?.to_owned(),
                parts.get(1)?.as_str()?.to_owned(),
            ))
        }
        _ => None,
    }
}

/// `!Ref X` (or the long form) as `X`.
pub fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        Value::Mapping(m) => m.get("Ref")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The text of `!Sub "..."` (or a plain string).
pub fn sub_text(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().map(str::to_owned),
        Value::String(s) => Some(s.clone()),
        Value::Mapping(m) => m.get("Fn::Sub")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The `${...}` names in a `!Sub` text.
pub fn sub_references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        names.push(rest[start + 2..start + end].to_owned());
        rest = &rest[start + end + 1..];
    }
    names
}

/// Replaces each `${name}` in `text` with `lookup(name)`; a name it does not know is an error.
pub fn substitute(
    text: &str,
    context: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, TemplateError> {
    let mut out = text.to_owned();
    for name in sub_references(text) {
        let value = lookup(&name).ok_or_else(|| TemplateError::Dangling {
            context: context.to_owned(),
            target: name.clone(),
        })?;
        out = out.replace(&format!("${{{name}}}"), &value);
    }
    Ok(out)
}

/// Every `!Ref`, `!GetAtt` and `${...}` in `value`, for checking that they resolve.
pub fn references_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Tagged(tagged) => {
            let TaggedValue { tag, value: inner } = tagged.as_ref();
            if *tag == "Ref" {
                out.extend(inner.as_str().map(str::to_owned));
            } else if *tag == "GetAtt" {
                out.extend(
                    inner
                        .as_str()
                        .and_then(|t| t.split_once('.'))
                        .map(|(id, _)| id.to_owned()),
                );
            } else if *tag == "Sub" {
                if let Some(text) = inner.as_str() {
                    out.extend(
                        sub_references(text)
                            .into_iter()
                            .map(|r| r.split('.').next().unwrap_or("").to_owned()),
                    );
                }
            } else {
                references_in(inner, out);
            }
        }
        Value::Mapping(m) => m.values().for_each(|v| references_in(v, out)),
        Value::Sequence(s) => s.iter().for_each(|v| references_in(v, out)),
        _ => {}
    }
}

impl Template {
    /// Every name referenced anywhere in the resources and globals that is neither a
    /// resource, a parameter nor a pseudo parameter: what cfn-lint misses inside SAM events
    /// and `!Sub`.
    pub fn dangling_references(&self, parameters: &[&str]) -> Vec<String> {
        let mut refs = Vec::new();
        for resource in self.resources.values() {
            references_in(resource, &mut refs);
        }
        for value in self.environment.values() {
            references_in(value, &mut refs);
        }
        refs.sort();
        refs.dedup();
        refs.into_iter()
            .filter(|r| {
                !r.starts_with("AWS::") && !parameters.contains(&r.as_str()) && !self.has(r)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;

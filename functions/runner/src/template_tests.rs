//! Checks of `template.yaml` that cfn-lint and `sam validate --lint` do not make.

use super::*;

fn template() -> Template {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
        .expect("template.yaml");
    Template::parse(&text).expect("template.yaml parses")
}

fn workspace_binaries() -> Vec<String> {
    let functions = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut binaries = Vec::new();
    for crate_dir in std::fs::read_dir(functions).expect("functions/") {
        let bin = crate_dir.expect("entry").path().join("src/bin");
        if let Ok(files) = std::fs::read_dir(bin) {
            binaries.extend(
                files.filter_map(|f| Some(f.ok()?.path().file_stem()?.to_str()?.to_owned())),
            );
        }
    }
    binaries
}

#[test]
fn every_reference_in_the_template_resolves() {
    let dangling = template().dangling_references(&[
        "Stage",
        "DatabaseUrl",
        "LogLevel",
        "FreeTrialCreditUsd",
        "AiRevenueShare",
        "BillingGraceDays",
        "StripeSecretArn",
        "StripeApiUrl",
        "StripePublishableKey",
        "BillingReturnUrl",
        "EmailProvider",
        "ResendApiKeySecretArn",
        "EmailFrom",
        "AppLinkBase",
        "DatabasePasswordSecretArn",
        "DatabaseCaFile",
        "OidcIssuer",
        "OidcAudience",
        "OidcJwksUrl",
        "ConnectionsKeyFile",
        "GithubOAuthClientId",
        "XOAuthClientId",
        "LinkedinOAuthClientId",
        "OAuthClientSecretsArn",
        "ExpoPushUrl",
        "PushReceiptDelaySeconds",
        "WebhooksAllowLoopback",
        "GraphQlIntrospection",
        "AlarmEmail",
        "LogRetentionDays",
        "VpcSubnetIds",
        "VpcSecurityGroupIds",
        "DatabaseIamAuth",
        "DatabaseIamResourceId",
    ]);
    assert!(dangling.is_empty(), "undefined: {dangling:?}");
}

#[test]
fn every_function_builds_from_a_binary_of_the_workspace_on_provided_al2023() {
    let binaries = workspace_binaries();
    for function in template().functions().unwrap() {
        assert!(
            binaries.contains(&function.binary),
            "{}: no binary {}",
            function.logical_id,
            function.binary
        );
        assert_eq!(
            function.runtime, "provided.al2023",
            "{}",
            function.logical_id
        );
    }
}

#[test]
fn every_step_and_route_is_declared_once() {
    let functions = template().functions().unwrap();
    let mut binaries: Vec<_> = functions.iter().map(|f| f.binary.clone()).collect();
    binaries.sort();
    let before = binaries.len();
    binaries.dedup();
    assert_eq!(binaries.len(), before, "a binary is declared twice");
    assert_eq!(
        before,
        workspace_binaries()
            .iter()
            .filter(|b| b.starts_with("api-")
                || b.starts_with("step-")
                || b.starts_with("ws-")
                || b.starts_with("schedule-"))
            .count()
    );
}

#[test]
fn every_sqs_trigger_reports_failures_within_batch_limits_on_a_queue_with_a_dlq() {
    let template = template();
    let queues = template.queues().unwrap();
    for function in template.functions().unwrap() {
        for trigger in &function.triggers {
            if let Trigger::Sqs {
                queue,
                batch_size,
                reports_failures,
            } = trigger
            {
                assert!(
                    (1..=10).contains(batch_size),
                    "{}: BatchSize {batch_size}",
                    function.logical_id
                );
                assert!(
                    reports_failures,
                    "{}: ReportBatchItemFailures",
                    function.logical_id
                );
                let spec = queues
                    .iter()
                    .find(|q| &q.logical_id == queue)
                    .expect("queue exists");
                let (dlq, max) = spec.dead_letter.clone().expect("a DLQ");
                assert!(
                    template.has(&dlq) && max > 3,
                    "{queue}: DLQ {dlq} after {max} receives"
                );
            }
        }
    }
}

#[test]
fn every_queue_hides_a_message_as_long_as_its_consumer_may_run() {
    let template = template();
    let queues = template.queues().unwrap();
    for function in template.functions().unwrap() {
        for trigger in &function.triggers {
            if let Trigger::Sqs { queue, .. } = trigger {
                let spec = queues.iter().find(|q| &q.logical_id == queue).unwrap();
                assert!(
                    u64::from(spec.visibility_timeout) >= function.timeout_secs,
                    "{queue}: VisibilityTimeout {} < {}'s Timeout {} (Lambda refuses the mapping)",
                    spec.visibility_timeout,
                    function.logical_id,
                    function.timeout_secs
                );
            }
        }
    }
}

#[test]
fn the_plan_and_agent_steps_have_the_time_a_long_model_turn_needs() {
    // One turn of the developer's max_tokens at the slowest healthy pace, after the first byte.
    let patience = autocrew_shared::adapters::llm::Patience::default();
    let routing = autocrew_shared::domain::routing::RoutingPolicy::builtin().unwrap();
    let profiles = autocrew_shared::crew::AgentProfiles::builtin(&routing).unwrap();
    for function in template().functions().unwrap() {
        let Some(step) = autocrew_steps::Step::from_name(&function.binary) else {
            continue;
        };
        let max_tokens = match step {
            autocrew_steps::Step::Agent(agent) => profiles.get(agent).max_tokens,
            autocrew_steps::Step::Plan => {
                profiles
                    .get(autocrew_shared::domain::AgentKind::Orchestrator)
                    .max_tokens
            }
            _ => continue,
        };
        let turn = patience.ceiling(max_tokens).as_secs();
        assert!(
            function.timeout_secs >= turn,
            "{}: Timeout {} s is shorter than one turn of {max_tokens} tokens ({turn} s)",
            function.logical_id,
            function.timeout_secs
        );
    }
}

#[test]
fn a_run_ends_at_its_own_deadline_never_by_a_state_timeout() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/statemachine/run.asl.json"
    );
    let definition: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let longest = u64::from(autocrew_shared::domain::records::MAX_DEADLINE_MINUTES) * 60;
    for state in ["Plan", "Execute"] {
        let timeout = definition["States"][state]["TimeoutSeconds"]
            .as_u64()
            .unwrap();
        assert!(
            timeout > longest,
            "{state} times out after {timeout} s, before a run's longest deadline ({longest} s)"
        );
    }
}

#[test]
fn the_state_machine_definition_exists_and_every_substitution_is_provided() {
    for machine in template().state_machines().unwrap() {
        let path = format!(
            "{}/../../{}",
            env!("CARGO_MANIFEST_DIR"),
            machine.definition_uri
        );
        let definition = std::fs::read_to_string(&path).expect("DefinitionUri file");
        serde_json::from_str::<serde_json::Value>(&definition).expect("the definition is JSON");
        for name in sub_references(&definition) {
            assert!(
                machine.substitutions.contains_key(&name),
                "${{{name}}} has no substitution"
            );
        }
    }
}

#[test]
fn websocket_routes_reach_their_functions() {
    let functions = template().functions().unwrap();
    let keys: Vec<_> = functions
        .iter()
        .flat_map(|f| f.triggers.iter())
        .filter_map(|t| match t {
            Trigger::WebSocket { route_key } => Some(route_key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 3);
    for key in ["$connect", "$disconnect", "$default"] {
        assert!(keys.contains(&key), "{key}");
    }
}

#[test]
fn a_reference_to_a_missing_resource_inside_an_event_or_sub_is_found() {
    let text = r#"
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: x
    Properties:
      Environment:
        Variables:
          URL: !Sub "https://${MissingApi}.example.com/${Queue}"
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt MissingQueue.Arn
"#;
    let dangling = Template::parse(text).unwrap().dangling_references(&[]);
    assert_eq!(dangling, ["MissingApi", "MissingQueue"]);
}

#[test]
fn every_dead_letter_queue_has_an_alarm_on_its_first_message() {
    let template = template();
    let alarmed: Vec<String> = template
        .of_kind("AWS::CloudWatch::Alarm")
        .iter()
        .filter(|(_, properties)| {
            properties["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                && properties["Threshold"].as_i64() == Some(0)
        })
        .filter_map(|(_, alarm)| {
            // `!GetAtt X.QueueName` reads back as a tagged value naming X.
            serde_norway::to_string(&alarm["Dimensions"][0]["Value"]).ok()
        })
        .collect();
    let queues = template.queues().expect("queues");
    let dlqs: Vec<&str> = queues
        .iter()
        .filter_map(|q| q.dead_letter.as_ref().map(|(id, _)| id.as_str()))
        .collect();
    assert!(!dlqs.is_empty());
    for dlq in dlqs {
        assert!(
            alarmed
                .iter()
                .any(|a| a.contains(&format!("{dlq}.QueueName"))),
            "{dlq} has no alarm; alarms: {alarmed:?}"
        );
    }
}

/// Every HTTP trigger of the template is a route of the API's table with the same method
/// and path, and every route has its function: the table the OpenAPI document is built
/// from is the one API Gateway serves.
#[test]
fn the_templates_http_routes_are_the_apis_route_table() {
    use autocrew_api::Route;
    let mut served = Vec::new();
    for function in template().functions().expect("functions") {
        for trigger in &function.triggers {
            if let Trigger::Http { method, path } = trigger {
                let route = Route::from_name(&function.binary)
                    .unwrap_or_else(|| panic!("{}: not an API route", function.binary));
                assert_eq!(
                    route.endpoint(),
                    (method.as_str(), path.as_str()),
                    "{}",
                    function.binary
                );
                served.push(route);
            }
        }
    }
    for route in Route::ALL {
        assert!(
            served.contains(route),
            "{route:?} has no function in template.yaml"
        );
    }
    // And the document has exactly those operations.
    let document = autocrew_api::openapi::document();
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            let endpoint = Route::ALL
                .iter()
                .map(|r| r.endpoint())
                .find(|(m, p)| m.eq_ignore_ascii_case(method) && p.replace("+}", "}") == *path);
            assert!(endpoint.is_some(), "{method} {path} is not a route");
            operations += 1;
        }
    }
    assert_eq!(operations, Route::ALL.len());
}

/// `openapi.json` is the document the code builds; `make openapi` writes it again.
#[test]
fn the_committed_openapi_json_is_the_one_the_code_builds() {
    committed_is_built("openapi.json", autocrew_api::openapi::document());
}

/// `docs/websocket.schema.json` is the protocol's schema the code builds; `make openapi`
/// writes it again.
#[test]
fn the_committed_websocket_schema_is_the_one_the_code_builds() {
    committed_is_built(
        "docs/websocket.schema.json",
        &autocrew_shared::domain::realtime::protocol_schema(),
    );
}

/// `docs/schema.graphql` is the GraphQL schema the code builds; `make openapi` writes it
/// again.
#[test]
fn the_committed_graphql_schema_is_the_one_the_code_builds() {
    committed_text_is_built("docs/schema.graphql", autocrew_api::graphql::sdl());
}

/// The file at `path` (from the repository's root) holds `built`, pretty-printed;
/// `UPDATE_OPENAPI=1` writes it first.
fn committed_is_built(path: &str, built: &serde_json::Value) {
    let built = format!("{}\n", serde_json::to_string_pretty(built).expect("json"));
    committed_text_is_built(path, built);
}

/// The file at `path` (from the repository's root) holds `built`; `UPDATE_OPENAPI=1`
/// writes it first.
fn committed_text_is_built(path: &str, built: String) {
    let file = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&file, &built).expect("the file written");
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == built,
        "{path} differs from what the code builds: run `make openapi`"
    );
}

/// CloudWatch keeps a log group forever unless told: every function's is declared, named
/// as Lambda writes it, with the stack's retention.
#[test]
fn every_function_has_its_log_group_with_the_stacks_retention() {
    let template = template();
    let groups: std::collections::HashMap<String, Value> = template
        .of_kind("AWS::Logs::LogGroup")
        .into_iter()
        .collect();
    for function in template.functions().unwrap() {
        let id = &function.logical_id;
        let group = groups
            .get(&format!("{id}LogGroup"))
            .unwrap_or_else(|| panic!("{id} has no {id}LogGroup"));
        assert_eq!(
            crate::template::sub_text(&group["LogGroupName"]).as_deref(),
            Some(format!("/aws/lambda/${{{id}}}").as_str()),
            "{id}'s log group is not the one Lambda writes to"
        );
        assert_eq!(
            crate::template::reference(&group["RetentionInDays"]).as_deref(),
            Some("LogRetentionDays"),
            "{id}'s log group keeps logs forever"
        );
    }
}

/// One bootstrap serves every function on Lambda (functions/lambda), by the name its
/// Handler gives: each function's Handler is its own name.
#[test]
fn every_functions_handler_names_the_function_the_bootstrap_serves() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
        .expect("template.yaml");
    let template = template();
    let handlers: std::collections::HashMap<String, Value> = template
        .of_kind("AWS::Serverless::Function")
        .into_iter()
        .collect();
    for function in template.functions().unwrap() {
        let handler = handlers[&function.logical_id]["Handler"].as_str();
        assert_eq!(
            handler,
            Some(function.binary.as_str()),
            "{}'s Handler must be {}",
            function.logical_id,
            function.binary
        );
    }
    assert!(!text.contains("Handler: bootstrap"));
}

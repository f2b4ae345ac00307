//! Creates the template's queues, bucket, table and state machine in the local emulator,
//! named `<prefix>-<LogicalId>`, and resolves the functions' environment against them.

use crate::template::{Template, TemplateError, get_att, reference, sub_text, substitute};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("could not create {resource} in the emulator")]
    Aws {
        resource: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not read {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn aws_error(
    resource: &str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ProvisionError {
    let resource = resource.to_owned();
    move |source| ProvisionError::Aws { resource, source }
}

/// What was created, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// Queue logical id → (URL, ARN, name).
    pub queues: HashMap<String, (String, String, String)>,
    /// Bucket and table logical id → name.
    pub names: HashMap<String, String>,
    /// State machine logical id → ARN.
    pub state_machines: HashMap<String, String>,
    /// Secret logical id → ARN (what `!Ref` gives for a secret).
    pub secrets: HashMap<String, String>,
    /// KMS keys: none is made locally (a local key file stands in), so a reference to one
    /// is empty.
    pub kms_keys: Vec<String>,
    /// IAM role logical id → ARN (no role is made locally; the emulator takes any).
    pub roles: HashMap<String, String>,
    /// What `AWS::StackName` resolves to: the prefix of every name made.
    pub stack: String,
}

impl Provisioned {
    /// What `!Ref X` means locally.
    fn reference(&self, id: &str) -> Option<String> {
        self.queues
            .get(id)
            .map(|(url, _, _)| url.clone())
            .or_else(|| self.names.get(id).cloned())
            .or_else(|| self.state_machines.get(id).cloned())
            .or_else(|| self.secrets.get(id).cloned())
            .or_else(|| self.kms_keys.iter().any(|k| k == id).then(String::new))
    }

    /// What `!GetAtt X.Attr` means locally.
    fn attribute(&self, id: &str, attr: &str) -> Option<String> {
        match attr {
            "Arn" => self
                .queues
                .get(id)
                .map(|(_, arn, _)| arn.clone())
                .or_else(|| self.state_machines.get(id).cloned())
                .or_else(|| self.roles.get(id).cloned()),
            "QueueName" => self.queues.get(id).map(|(_, _, name)| name.clone()),
            "QueueUrl" => self.queues.get(id).map(|(url, _, _)| url.clone()),
            "Name" => self.names.get(id).cloned(),
            _ => None,
        }
    }
}

/// Names that resolve outside the template: parameters, pseudo parameters, and the APIs
/// the runner itself serves.
pub struct Outside {
    pub region: String,
    pub parameters: HashMap<String, String>,
    /// What a URL built from the HTTP or the WebSocket API's id resolves to: the runner's
    /// own address serves both APIs and `@connections`.
    pub own_url: String,
}

impl Outside {
    /// `given` parameters over the template's defaults, as CloudFormation resolves them.
    pub fn new(
        template: &Template,
        region: &str,
        given: impl IntoIterator<Item = (String, String)>,
        own_url: String,
    ) -> Outside {
        let mut parameters: HashMap<String, String> = template
            .parameter_defaults
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        parameters.extend(given);
        Outside {
            region: region.to_owned(),
            parameters,
            own_url,
        }
    }
}

/// Resolves one template value to a string.
pub fn resolve(
    value: &Value,
    done: &Provisioned,
    outside: &Outside,
    context: &str,
) -> Result<String, TemplateError> {
    let dangling = |target: String| TemplateError::Dangling {
        context: context.to_owned(),
        target,
    };
    if let Some(id) = reference(value) {
        return done
            .reference(&id)
            .or_else(|| outside.parameters.get(&id).cloned())
            .ok_or_else(|| dangling(id));
    }
    if let Some((id, attr)) = get_att(value) {
        return done
            .attribute(&id, &attr)
            .ok_or_else(|| dangling(format!("{id}.{attr}")));
    }
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => {
            let text = sub_text(value).ok_or_else(|| dangling(format!("{value:?}")))?;
            // A `!Sub` URL built from an API's id (the WebSocket callback URL, the public
            // base URL) is the runner's own address.
            if text.contains("${WebSocketApi}") || text.contains("${HttpApi}") {
                return Ok(outside.own_url.clone());
            }
            substitute(&text, context, &|name| match name.split_once('.') {
                Some((id, attr)) => done.attribute(id, attr),
                None if name == "AWS::Region" => Some(outside.region.clone()),
                None if name == "AWS::AccountId" => Some("123456789012".into()),
                None if name == "AWS::Partition" => Some("aws".into()),
                None if name == "AWS::StackName" => Some(done.stack.clone()),
                None => done
                    .reference(name)
                    .or_else(|| outside.parameters.get(name).cloned()),
            })
        }
    }
}

/// Creates every queue (dead-letter queues first), bucket, table and state machine.
pub async fn provision(
    template: &Template,
    sdk: &SdkConfig,
    prefix: &str,
    root: &Path,
    outside: &Outside,
) -> Result<Provisioned, ProvisionError> {
    let mut done = Provisioned {
        stack: prefix.to_owned(),
        ..Provisioned::default()
    };
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = template.queues()?;
    // Queues without a DLQ (the DLQs themselves) first, so redrive targets exist.
    queues.sort_by_key(|q| q.dead_letter.is_some());
    for queue in queues {
        let name = format!("{prefix}-{}", queue.logical_id);
        let mut request = sqs.create_queue().queue_name(&name).attributes(
            QueueAttributeName::VisibilityTimeout,
            queue.visibility_timeout.to_string(),
        );
        if let Some((dlq, max)) = &queue.dead_letter {
            let (_, arn, _) = done
                .queues
                .get(dlq)
                .ok_or_else(|| TemplateError::Dangling {
                    context: queue.logical_id.clone(),
                    target: dlq.clone(),
                })?;
            let policy = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":{max}}}"#);
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let url = request
            .send()
            .await
            .map_err(|e| aws_error(&name)(Box::new(e)))?
            .queue_url
            .unwrap_or_default();
        let arn = format!("arn:aws:sqs:{}:123456789012:{name}", outside.region);
        done.queues.insert(queue.logical_id, (url, arn, name));
    }

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    for (id, _) in template.of_kind("AWS::S3::Bucket") {
        let name = format!("{prefix}-{id}").to_lowercase();
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => return Err(aws_error(&name)(Box::new(e))),
        }
        done.names.insert(id, name);
    }

    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for (id, props) in template.of_kind("AWS::DynamoDB::Table") {
        let name = format!("{prefix}-{id}");
        create_table(&dynamodb, &name, &props)
            .await
            .map_err(aws_error(&name))?;
        done.names.insert(id, name);
    }

    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    for (id, props) in template.of_kind("AWS::SecretsManager::Secret") {
        let name = format!("{prefix}-{id}");
        let arn = create_secret(&secrets, &name, &props)
            .await
            .map_err(aws_error(&name))?;
        done.secrets.insert(id, arn);
    }

    // Project schedules' timers live in these groups (the runner fires the schedules itself;
    // the API keeps their timers here as on AWS).
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    for (id, _) in template.of_kind("AWS::Scheduler::ScheduleGroup") {
        let name = format!("{prefix}-{id}");
        match scheduler.create_schedule_group().name(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) => {}
            Err(e) => return Err(aws_error(&name)(Box::new(e))),
        }
        done.names.insert(id, name);
    }
    for (id, _) in template.of_kind("AWS::IAM::Role") {
        let arn = format!("arn:aws:iam::123456789012:role/{prefix}-{id}");
        done.roles.insert(id, arn);
    }

    done.kms_keys = template
        .of_kind("AWS::KMS::Key")
        .into_iter()
        .map(|(id, _)| id)
        .collect();

    let sfn = aws_sdk_sfn::Client::new(sdk);
    for machine in template.state_machines()? {
        let path = root.join(&machine.definition_uri);
        let definition = std::fs::read_to_string(&path).map_err(|source| ProvisionError::File {
            path: path.display().to_string(),
            source,
        })?;
        let mut values = BTreeMap::new();
        for (key, value) in &machine.substitutions {
            values.insert(
                key.clone(),
                resolve(value, &done, outside, &machine.logical_id)?,
            );
        }
        let definition = substitute(&definition, &machine.logical_id, &|name| {
            values.get(name).cloned()
        })?;
        let name = format!("{prefix}-{}", machine.logical_id);
        let role = "arn:aws:iam::123456789012:role/autocrew-local-states";
        let arn = match sfn
            .create_state_machine()
            .name(&name)
            .definition(&definition)
            .role_arn(role)
            .send()
            .await
        {
            Ok(out) => out.state_machine_arn,
            // A runner started again on the same emulator: keep the machine, update it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_state_machine_already_exists()) =>
            {
                let arn = format!(
                    "arn:aws:states:{}:123456789012:stateMachine:{name}",
                    outside.region
                );
                sfn.update_state_machine()
                    .state_machine_arn(&arn)
                    .definition(&definition)
                    .send()
                    .await
                    .map_err(|e| aws_error(&name)(Box::new(e)))?;
                arn
            }
            Err(e) => return Err(aws_error(&name)(Box::new(e))),
        };
        done.state_machines.insert(machine.logical_id, arn);
    }
    Ok(done)
}

/// Creates a secret once, as CloudFormation would: `SecretString` as given, or
/// `GenerateSecretString`'s template with a random alphanumeric value at its key. A secret
/// that already exists (a runner started again on the same emulator) is kept, so tokens it
/// signed stay valid. Returns its ARN.
async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    props: &Value,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let value = match (props.get("SecretString"), props.get("GenerateSecretString")) {
        (Some(Value::String(given)), _) => given.clone(),
        (_, Some(generate)) => {
            let mut fields: serde_json::Map<String, serde_json::Value> = generate
                .get("SecretStringTemplate")
                .and_then(Value::as_str)
                .map(serde_json::from_str)
                .transpose()?
                .unwrap_or_default();
            let key = generate
                .get("GenerateStringKey")
                .and_then(Value::as_str)
                .unwrap_or("password");
            let length = generate
                .get("PasswordLength")
                .and_then(Value::as_u64)
                .unwrap_or(32) as usize;
            use rand::Rng;
            let random: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(length)
                .map(char::from)
                .collect();
            fields.insert(key.to_owned(), serde_json::Value::String(random));
            serde_json::Value::Object(fields).to_string()
        }
        _ => String::new(),
    };
    match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(out) => Ok(out.arn.unwrap_or_default()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            let described = client.describe_secret().secret_id(name).send().await?;
            Ok(described.arn.unwrap_or_default())
        }
        Err(e) => Err(Box::new(e)),
    }
}

/// A GSI's `Projection` as the template declares it (`KEYS_ONLY` when absent).
fn projection(declared: Option<&Value>) -> Projection {
    let kind = match declared
        .and_then(|p| p.get("ProjectionType"))
        .and_then(Value::as_str)
    {
        Some("ALL") => ProjectionType::All,
        Some("INCLUDE") => ProjectionType::Include,
        _ => ProjectionType::KeysOnly,
    };
    let included = declared
        .and_then(|p| p.get("NonKeyAttributes"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned);
    Projection::builder()
        .projection_type(kind)
        .set_non_key_attributes(Some(included.collect::<Vec<_>>()).filter(|a| !a.is_empty()))
        .build()
}

/// Creates a table from its template properties (keys, GSIs and their projections), once.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    props: &Value,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let key_of =
        |element: &Value| -> Result<KeySchemaElement, Box<dyn std::error::Error + Send + Sync>> {
            let key_type = if element.get("KeyType").and_then(Value::as_str) == Some("RANGE") {
                KeyType::Range
            } else {
                KeyType::Hash
            };
            Ok(KeySchemaElement::builder()
                .attribute_name(
                    element
                        .get("AttributeName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
                .key_type(key_type)
                .build()?)
        };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for attribute in props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let kind = match attribute.get("AttributeType").and_then(Value::as_str) {
            Some("N") => ScalarAttributeType::N,
            Some("B") => ScalarAttributeType::B,
            _ => ScalarAttributeType::S,
        };
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(
                    attribute
                        .get("AttributeName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
                .attribute_type(kind)
                .build()?,
        );
    }
    for element in props
        .get("KeySchema")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        request = request.key_schema(key_of(element)?);
    }
    for index in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(
                index
                    .get("IndexName")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
            .projection(projection(index.get("Projection")));
        for element in index
            .get("KeySchema")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            gsi = gsi.key_schema(key_of(element)?);
        }
        request = request.global_secondary_indexes(gsi.build()?);
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(Box::new(e)),
    }
}

/// The functions' environment (`Globals.Function.Environment.Variables`), resolved.
pub fn environment(
    template: &Template,
    done: &Provisioned,
    outside: &Outside,
) -> Result<HashMap<String, String>, TemplateError> {
    template
        .environment
        .iter()
        .map(|(name, value)| Ok((name.clone(), resolve(value, done, outside, name)?)))
        .collect()
}

//! The AWS adapters against moto: SQS, S3, DynamoDB and Step Functions.

use anyhow::Context;
use autocrew_shared::adapters::aws::{
    DynamoConnectionRegistry, S3BlobStore, SfnStateMachine, SqsQueue,
};
use autocrew_shared::domain::{ProjectId, UserId};
use autocrew_shared::ports::{
    BlobError, BlobStore, ConnectionRegistry, ExecutionStatus, Follower, Queue, RegistryError,
    Session, StateMachine, StateMachineError,
};
use autocrew_tests::{sdk, unique};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use std::time::{Duration, Instant};

const NOW: Duration = Duration::ZERO;

pub(crate) async fn create_queue(
    sqs: &SqsQueue,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<String> {
    let mut request = sqs.client().create_queue().queue_name(name);
    for (k, v) in attributes {
        request = request.attributes(k.clone(), v);
    }
    request
        .send()
        .await?
        .queue_url
        .context("CreateQueue returned no URL")
}

pub(crate) async fn queue_arn(sqs: &SqsQueue, url: &str) -> anyhow::Result<String> {
    let out = sqs
        .client()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("no QueueArn")
}

#[tokio::test]
async fn sqs_hides_a_received_message_and_deletes_it_when_handled() -> anyhow::Result<()> {
    let sqs = SqsQueue::new(&sdk().await?);
    let url = create_queue(&sqs, &unique("work"), &[]).await?;
    let sent_id = sqs.send(&url, r#"{"task":"brand"}"#).await?;

    let first = sqs
        .receive(&url, 10, Duration::from_secs(1), Duration::from_secs(30))
        .await?;
    let while_hidden = sqs.receive(&url, 10, NOW, Duration::from_secs(30)).await?;
    sqs.delete(&url, &first[0].receipt_handle).await?;
    sqs.change_visibility(&url, &first[0].receipt_handle, NOW)
        .await
        .ok();
    let after_delete = sqs.receive(&url, 10, NOW, Duration::from_secs(30)).await?;

    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].message_id.as_str(),
            first[0].body.as_str(),
            first[0].receive_count
        ),
        (sent_id.as_str(), r#"{"task":"brand"}"#, 1)
    );
    assert!(
        while_hidden.is_empty(),
        "a received message stays hidden for its visibility timeout"
    );
    assert!(
        after_delete.is_empty(),
        "a deleted message never comes back"
    );
    Ok(())
}

#[tokio::test]
async fn sqs_redelivers_an_unhandled_message_and_then_moves_it_to_the_dlq() -> anyhow::Result<()> {
    let sqs = SqsQueue::new(&sdk().await?);
    let dlq = create_queue(&sqs, &unique("work-dlq"), &[]).await?;
    let redrive =
        json!({"deadLetterTargetArn": queue_arn(&sqs, &dlq).await?, "maxReceiveCount": 2})
            .to_string();
    let url = create_queue(
        &sqs,
        &unique("work"),
        &[(QueueAttributeName::RedrivePolicy, redrive)],
    )
    .await?;
    sqs.send(&url, "not json at all").await?;

    // Each failed handling gives the message back at once (visibility 0) instead of waiting.
    let mut counts = Vec::new();
    for _ in 0..2 {
        let got = sqs
            .receive(&url, 1, Duration::from_secs(1), Duration::from_secs(30))
            .await?;
        counts.push(got[0].receive_count);
        sqs.change_visibility(&url, &got[0].receipt_handle, NOW)
            .await?;
    }
    let third = sqs.receive(&url, 1, NOW, Duration::from_secs(30)).await?;
    let dead = sqs
        .receive(&dlq, 1, Duration::from_secs(1), Duration::from_secs(30))
        .await?;

    assert_eq!(counts, [1, 2]);
    assert!(
        third.is_empty(),
        "past maxReceiveCount the message leaves the queue"
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "not json at all");
    Ok(())
}

#[tokio::test]
async fn s3_stores_an_artifact_with_its_size_and_checksum_and_serves_a_presigned_url()
-> anyhow::Result<()> {
    let sdk = sdk().await?;
    let bucket = unique("artifacts");
    let store = S3BlobStore::new(&sdk, &bucket);
    store
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await?;
    let body = br#"{"name":"keto-recipes","private":true}"#.to_vec();

    let stored = store
        .put("runs/r1/app/package.json", body.clone(), "application/json")
        .await?;
    let read = store.get("runs/r1/app/package.json").await?;
    let url = store
        .presigned_get("runs/r1/app/package.json", Duration::from_secs(300))
        .await?;
    let fetched = reqwest::get(&url).await?;
    let status = fetched.status();
    let fetched = fetched.bytes().await?;
    let missing = store.get("runs/r1/nothing-here").await;

    assert_eq!(stored.size_bytes, body.len() as u64);
    // sha256sum of the same bytes, computed outside the project.
    assert_eq!(
        stored.checksum_sha256,
        "7fe76dfcd29e425767b61047990a71876530dd894b3374f167d53df373609a48"
    );
    assert_eq!(read, body);
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(
        status.is_success(),
        "GET on the presigned URL answered {status}"
    );
    assert_eq!(fetched.as_ref(), body.as_slice());
    assert!(
        matches!(missing, Err(BlobError::NotFound { .. })),
        "{missing:?}"
    );
    Ok(())
}

#[tokio::test]
async fn dynamodb_registers_a_connection_once_follows_several_projects_and_forgets_them_all()
-> anyhow::Result<()> {
    let table = unique("connections");
    let registry = DynamoConnectionRegistry::new(&sdk().await?, &table);
    autocrew_tests::create_connections_table(registry.client(), &table).await?;
    let (user, one, two) = (UserId::new(), ProjectId::new(), ProjectId::new());
    let session = Session {
        user,
        expires_at: 2_000_000_000,
    };

    registry.register("conn-1", session).await?;
    let twice = registry.register("conn-1", session).await;
    registry.register("conn-2", session).await?;
    registry.subscribe("conn-1", one).await?;
    registry.subscribe("conn-1", two).await?;
    registry.subscribe("conn-1", two).await?;
    registry.subscribe("conn-2", two).await?;
    let unknown = registry.subscribe("conn-404", one).await;
    registry.renew("conn-1", 2_000_000_900).await?;
    let renewed = registry.session("conn-1").await?;
    let mut followed = registry.subscriptions("conn-1").await?;
    followed.sort();
    let mut followers = registry.subscribers(two).await?;
    followers.sort_by(|a, b| a.connection_id.cmp(&b.connection_id));
    let left = registry.unsubscribe("conn-1", one).await?;
    let left_again = registry.unsubscribe("conn-1", one).await?;
    let after_leaving = registry.subscribers(one).await?;
    registry.unregister("conn-1").await?;
    let after = registry.subscribers(two).await?;

    assert!(
        matches!(twice, Err(RegistryError::AlreadyRegistered(ref id)) if id == "conn-1"),
        "{twice:?}"
    );
    assert!(
        matches!(unknown, Err(RegistryError::NotRegistered(_))),
        "{unknown:?}"
    );
    assert_eq!(
        renewed.map(|s| (s.user, s.expires_at)),
        Some((user, 2_000_000_900))
    );
    let mut expected = vec![one, two];
    expected.sort();
    assert_eq!(followed, expected);
    assert_eq!(
        followers,
        [
            Follower {
                connection_id: "conn-1".into(),
                expires_at: 2_000_000_900
            },
            Follower {
                connection_id: "conn-2".into(),
                expires_at: 2_000_000_000
            }
        ],
        "each follower with its token's expiry, a renewal included"
    );
    assert_eq!((left, left_again), (true, false));
    assert!(after_leaving.is_empty());
    assert_eq!(
        after.len(),
        1,
        "conn-1's subscriptions went with it: {after:?}"
    );
    assert_eq!(registry.session("conn-1").await?, None);
    Ok(())
}

/// A one-step machine that sends its task token to `queue_url` and waits for the callback.
pub(crate) async fn callback_machine(
    sfn: &SfnStateMachine,
    queue_url: &str,
) -> anyhow::Result<String> {
    let definition = json!({
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {"input.$": "$", "token.$": "$$.Task.Token"}
                },
                "TimeoutSeconds": 60,
                "HeartbeatSeconds": 30,
                "End": true
            }
        }
    });
    let out = sfn
        .client()
        .create_state_machine()
        .name(unique("lifecycle"))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/autocrew-states")
        .send()
        .await?;
    Ok(out.state_machine_arn)
}

/// Polls until the execution leaves RUNNING, for at most 30 s.
pub(crate) async fn wait_for_end(
    sfn: &SfnStateMachine,
    arn: &str,
) -> anyhow::Result<(ExecutionStatus, Option<serde_json::Value>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, output) = sfn.describe(arn).await?;
        if status != ExecutionStatus::Running {
            return Ok((status, output));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "execution {arn} still running after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Receives the step's message and returns its task token and input.
pub(crate) async fn take_token(
    sqs: &SqsQueue,
    url: &str,
) -> anyhow::Result<(String, serde_json::Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(message) = sqs
            .receive(url, 1, Duration::from_secs(1), Duration::from_secs(30))
            .await?
            .pop()
        {
            sqs.delete(url, &message.receipt_handle).await?;
            let mut body: serde_json::Value = serde_json::from_str(&message.body)?;
            let token = body["token"]
                .as_str()
                .context("message without a token")?
                .to_owned();
            return Ok((token, body["input"].take()));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no task token arrived within 30 s"
        );
    }
}

#[tokio::test]
async fn a_wait_for_task_token_step_completes_when_the_adapter_sends_task_success()
-> anyhow::Result<()> {
    let sdk = sdk().await?;
    let (sqs, sfn) = (SqsQueue::new(&sdk), SfnStateMachine::new(&sdk));
    let url = create_queue(&sqs, &unique("plan"), &[]).await?;
    let machine = callback_machine(&sfn, &url).await?;
    let name = unique("run");

    let execution = sfn
        .start(&machine, &name, &json!({"run_id": "r-1"}))
        .await?;
    let retried = sfn
        .start(&machine, &name, &json!({"run_id": "r-1"}))
        .await?;
    let conflicting = sfn.start(&machine, &name, &json!({"run_id": "r-2"})).await;
    let (token, input) = take_token(&sqs, &url).await?;
    sfn.heartbeat(&token).await?;
    sfn.task_success(&token, &json!({"tasks": 6})).await?;
    let (status, output) = wait_for_end(&sfn, &execution).await?;

    assert!(execution.ends_with(&name), "{execution}");
    assert_eq!(
        retried, execution,
        "a retried start with the same name and input is the same execution"
    );
    assert!(
        matches!(conflicting, Err(StateMachineError::ExecutionExists { .. })),
        "{conflicting:?}"
    );
    assert_eq!(input, json!({"run_id": "r-1"}));
    assert_eq!(status, ExecutionStatus::Succeeded);
    assert_eq!(output, Some(json!({"tasks": 6})));
    Ok(())
}

#[tokio::test]
async fn a_wait_for_task_token_step_fails_the_execution_on_task_failure() -> anyhow::Result<()> {
    let sdk = sdk().await?;
    let (sqs, sfn) = (SqsQueue::new(&sdk), SfnStateMachine::new(&sdk));
    let url = create_queue(&sqs, &unique("plan"), &[]).await?;
    let machine = callback_machine(&sfn, &url).await?;

    let execution = sfn.start(&machine, &unique("run"), &json!({})).await?;
    let (token, _) = take_token(&sqs, &url).await?;
    sfn.task_failure(&token, "PlanRejected", "the plan has a cycle")
        .await?;
    let (status, _) = wait_for_end(&sfn, &execution).await?;

    assert_eq!(status, ExecutionStatus::Failed);
    Ok(())
}

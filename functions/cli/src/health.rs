//! `autocrew health`: one line per dependency, through the project's own adapters and
//! clients, failing on the first that does not answer.

use anyhow::{Context, ensure};
use autocrew_shared::adapters::aws;
use autocrew_shared::adapters::postgres::{MIGRATIONS, Pool};
use autocrew_shared::config::Config;
use std::time::Instant;

pub async fn check(config: &Config, pool: &Pool) -> anyhow::Result<()> {
    let started = Instant::now();
    let client = pool.get().await.context("Postgres: cannot connect")?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
                    (SELECT count(*) FROM schema_migrations)",
            &[],
        )
        .await
        .context("Postgres: schema not migrated (run `autocrew migrate`)")?;
    let (version, vector, applied): (String, Option<String>, i64) =
        (row.get(0), row.get(1), row.get(2));
    let vector = vector.context("Postgres: the pgvector extension is not installed")?;
    ensure!(
        applied as usize == MIGRATIONS.len(),
        "Postgres: {applied} of {} migrations applied",
        MIGRATIONS.len()
    );
    println!("ok  postgres {version}, pgvector {vector}, {applied} migrations applied");

    let sdk = aws::sdk_config(&config.aws).await;
    let endpoint = config.aws.endpoint_url.as_deref().unwrap_or("AWS");
    let queues = aws_sdk_sqs::Client::new(&sdk)
        .list_queues()
        .send()
        .await
        .context("SQS did not answer")?;
    println!(
        "ok  sqs at {endpoint}: {} queues",
        queues.queue_urls().len()
    );
    let buckets = aws::S3BlobStore::new(&sdk, "")
        .client()
        .list_buckets()
        .send()
        .await
        .context("S3 did not answer")?;
    println!("ok  s3 at {endpoint}: {} buckets", buckets.buckets().len());
    let tables = aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await
        .context("DynamoDB did not answer")?;
    println!(
        "ok  dynamodb at {endpoint}: {} tables",
        tables.table_names().len()
    );
    let machines = aws_sdk_sfn::Client::new(&sdk)
        .list_state_machines()
        .send()
        .await
        .context("Step Functions did not answer")?;
    println!(
        "ok  stepfunctions at {endpoint}: {} state machines",
        machines.state_machines().len()
    );
    println!("healthy in {} ms", started.elapsed().as_millis());
    Ok(())
}

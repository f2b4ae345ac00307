//! Applies `migrations/*.sql` in order, each once. Safe to run concurrently and repeatedly:
//! an advisory lock serialises migrators, and applied versions are skipped.

use super::Pool;
use sha2::{Digest, Sha256};

/// Every migration, in order. A test checks this list against the folder.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_schema",
        include_str!("../../../../migrations/0001_schema.sql"),
    ),
    (
        "0002_runs_callbacks_and_tokens",
        include_str!("../../../../migrations/0002_runs_callbacks_and_tokens.sql"),
    ),
    (
        "0003_budgets",
        include_str!("../../../../migrations/0003_budgets.sql"),
    ),
    (
        "0004_llm_gateway",
        include_str!("../../../../migrations/0004_llm_gateway.sql"),
    ),
    (
        "0005_durable_runs",
        include_str!("../../../../migrations/0005_durable_runs.sql"),
    ),
    (
        "0006_reservation_release",
        include_str!("../../../../migrations/0006_reservation_release.sql"),
    ),
    (
        "0007_approvals",
        include_str!("../../../../migrations/0007_approvals.sql"),
    ),
    (
        "0008_accounts",
        include_str!("../../../../migrations/0008_accounts.sql"),
    ),
    (
        "0009_api_surface",
        include_str!("../../../../migrations/0009_api_surface.sql"),
    ),
    (
        "0010_rate_limits",
        include_str!("../../../../migrations/0010_rate_limits.sql"),
    ),
    (
        "0011_conversations_uploads",
        include_str!("../../../../migrations/0011_conversations_uploads.sql"),
    ),
    (
        "0012_external_identities",
        include_str!("../../../../migrations/0012_external_identities.sql"),
    ),
    (
        "0013_connections",
        include_str!("../../../../migrations/0013_connections.sql"),
    ),
    (
        "0014_tool_policies",
        include_str!("../../../../migrations/0014_tool_policies.sql"),
    ),
    (
        "0015_deployments",
        include_str!("../../../../migrations/0015_deployments.sql"),
    ),
    (
        "0016_long_jobs",
        include_str!("../../../../migrations/0016_long_jobs.sql"),
    ),
    (
        "0017_device_flows",
        include_str!("../../../../migrations/0017_device_flows.sql"),
    ),
    (
        "0018_oauth_web_flows",
        include_str!("../../../../migrations/0018_oauth_web_flows.sql"),
    ),
    (
        "0019_invocations",
        include_str!("../../../../migrations/0019_invocations.sql"),
    ),
    (
        "0020_waits",
        include_str!("../../../../migrations/0020_waits.sql"),
    ),
    (
        "0021_status_enums",
        include_str!("../../../../migrations/0021_status_enums.sql"),
    ),
    (
        "0022_schedules",
        include_str!("../../../../migrations/0022_schedules.sql"),
    ),
    (
        "0023_memory",
        include_str!("../../../../migrations/0023_memory.sql"),
    ),
    (
        "0024_user_timezone",
        include_str!("../../../../migrations/0024_user_timezone.sql"),
    ),
    (
        "0025_analytics_ingest",
        include_str!("../../../../migrations/0025_analytics_ingest.sql"),
    ),
    (
        "0026_daily_loop",
        include_str!("../../../../migrations/0026_daily_loop.sql"),
    ),
    (
        "0027_replan",
        include_str!("../../../../migrations/0027_replan.sql"),
    ),
    (
        "0028_billing",
        include_str!("../../../../migrations/0028_billing.sql"),
    ),
    (
        "0029_notices",
        include_str!("../../../../migrations/0029_notices.sql"),
    ),
    (
        "0030_traces",
        include_str!("../../../../migrations/0030_traces.sql"),
    ),
];

/// Arbitrary but fixed: the advisory lock key for migrations.
const LOCK_KEY: i64 = 0x6175_746f_6372_6577; // "autocrew"

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("could not get a database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migration {version} failed")]
    Apply {
        version: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(
        "migration {version} was changed after it was applied (checksum {applied} in the database, {file} in the file)"
    )]
    Changed {
        version: String,
        applied: String,
        file: String,
    },
    #[error("the database failed while migrating")]
    Database(#[from] tokio_postgres::Error),
}

/// What a run of `migrate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: Vec<String>,
    pub already_applied: usize,
}

/// Applies the migrations not applied yet.
pub async fn migrate(pool: &Pool) -> Result<MigrationReport, MigrationError> {
    let mut client = pool.get().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let outcome = apply_pending(&mut client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let report = outcome?;
    unlocked?;
    Ok(report)
}

async fn apply_pending(
    client: &mut deadpool_postgres::Client,
) -> Result<MigrationReport, MigrationError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version text PRIMARY KEY,
                 checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let mut report = MigrationReport {
        applied: Vec::new(),
        already_applied: 0,
    };
    for (version, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        let row = client
            .query_opt(
                "SELECT checksum FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?;
        if let Some(row) = row {
            let applied: String = row.get(0);
            if applied != checksum {
                return Err(MigrationError::Changed {
                    version: version.to_string(),
                    applied,
                    file: checksum,
                });
            }
            report.already_applied += 1;
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|source| MigrationError::Apply {
                version: version.to_string(),
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
            &[version, &checksum],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, "applied migration");
        report.applied.push(version.to_string());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_file_in_the_migrations_folder_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_owned())
            .collect();
        files.sort();
        let listed: Vec<&str> = super::MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(files, listed);
    }
}

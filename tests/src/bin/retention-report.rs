//! `retention-report`: what the retention policy keeps of 1,000 ended runs. A real run of
//! the demo command (the latest succeeded one in the database) is copied N times under a
//! new user and project, as if those runs had ended `--age-days` ago (with an expired
//! cache entry per model call), then the policy is applied as the sweep applies it, batch
//! after batch, and each table's rows and bytes for that project are printed before and
//! after. Needs the local stack's environment; the copies are deleted at the end.

use anyhow::Context;
use autocrew_shared::adapters::postgres::{self, PgRetention};
use autocrew_shared::config::DatabaseConfig;
use autocrew_shared::domain::retention::RetentionPolicy;
use autocrew_shared::ports::Retention;
use clap::Parser;
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "Table sizes before and after the retention policy, on N copies of a real run.")]
struct Args {
    /// How many runs to copy.
    #[arg(long, default_value_t = 1000)]
    runs: u32,
    /// The run to copy (default: the latest succeeded run).
    #[arg(long)]
    from_run: Option<Uuid>,
    /// How long ago the copies ended.
    #[arg(long, default_value_t = 40)]
    age_days: i32,
    /// Keep the copies (default: delete them at the end).
    #[arg(long)]
    keep: bool,
}

/// Copies the source run once, under `project`/`user`, as if it ended now (the copies are
/// aged once measured); its events take sequence numbers after `$5`. One statement.
const COPY: &str = "
WITH src AS (SELECT * FROM runs WHERE id = $1),
r AS (
    INSERT INTO runs SELECT (jsonb_populate_record(NULL::runs, to_jsonb(src) || jsonb_build_object(
        'id', $2::uuid, 'project_id', $3::uuid, 'user_id', $4::uuid,
        'execution_name', 'copy-' || $2::text, 'execution_arn', NULL, 'execute_token', NULL,
        'created_at', now(), 'started_at', now(),
        'completed_at', now()))).* FROM src RETURNING id),
m AS (SELECT id AS old, gen_random_uuid() AS new FROM tasks WHERE run_id = $1),
t AS (
    INSERT INTO tasks SELECT (jsonb_populate_record(NULL::tasks, to_jsonb(x) || jsonb_build_object(
        'id', m.new, 'run_id', $2::uuid, 'project_id', $3::uuid, 'parent_task_id', NULL,
        'completed_at', now()))).*
    FROM tasks x JOIN m ON m.old = x.id WHERE EXISTS (SELECT 1 FROM r) RETURNING id),
d AS (
    INSERT INTO task_dependencies (task_id, depends_on)
    SELECT a.new, b.new FROM task_dependencies x JOIN m a ON a.old = x.task_id JOIN m b ON b.old = x.depends_on
    WHERE EXISTS (SELECT 1 FROM t) RETURNING 1),
at AS (
    INSERT INTO task_attempts (task_id, attempt_no, status, error, started_at, finished_at, heartbeat_at)
    SELECT m.new, x.attempt_no, x.status, x.error, now(),
           now(), now()
    FROM task_attempts x JOIN m ON m.old = x.task_id WHERE EXISTS (SELECT 1 FROM t) RETURNING 1),
e AS (
    INSERT INTO events (project_id, run_id, seq, kind, payload, created_at)
    SELECT $3::uuid, $2::uuid, $5 + row_number() OVER (ORDER BY x.seq), x.kind, x.payload,
           now()
    FROM events x WHERE x.run_id = $1 AND EXISTS (SELECT 1 FROM r) RETURNING 1),
c AS (
    INSERT INTO llm_calls SELECT (jsonb_populate_record(NULL::llm_calls, to_jsonb(x) || jsonb_build_object(
        'id', gen_random_uuid(), 'user_id', $4::uuid, 'project_id', $3::uuid, 'run_id', $2::uuid,
        'task_id', (SELECT m.new FROM m WHERE m.old = x.task_id)))).*
    FROM llm_calls x WHERE x.run_id = $1 AND EXISTS (SELECT 1 FROM t) RETURNING 1),
k AS (
    INSERT INTO llm_response_cache (key, provider, model, response, created_at, expires_at)
    SELECT encode(sha256(convert_to(x.id::text || $2::text, 'UTF8')), 'hex'), x.provider, x.model,
           jsonb_build_object('copied_from', x.id), now(),
           now()
    FROM llm_calls x WHERE x.run_id = $1 AND EXISTS (SELECT 1 FROM r) RETURNING 1),
a AS (
    INSERT INTO artifacts SELECT (jsonb_populate_record(NULL::artifacts, to_jsonb(x) || jsonb_build_object(
        'id', gen_random_uuid(), 'project_id', $3::uuid, 'run_id', $2::uuid,
        'task_id', (SELECT m.new FROM m WHERE m.old = x.task_id), 'key', x.key || '.copy-' || $2::text))).*
    FROM artifacts x WHERE x.run_id = $1 AND EXISTS (SELECT 1 FROM t) RETURNING 1)
SELECT (SELECT count(*) FROM e)";

/// Each table's rows and bytes (the rows' own size, `pg_column_size`) for the project.
const SIZES: &[(&str, &str)] = &[
    (
        "runs",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM runs x WHERE project_id = $1",
    ),
    (
        "tasks",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM tasks x WHERE project_id = $1",
    ),
    (
        "task_attempts",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM task_attempts x JOIN tasks t ON t.id = x.task_id WHERE t.project_id = $1",
    ),
    (
        "events",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM events x WHERE project_id = $1",
    ),
    (
        "llm_calls",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM llm_calls x WHERE project_id = $1",
    ),
    (
        "artifacts",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM artifacts x WHERE project_id = $1",
    ),
    (
        "llm_response_cache",
        "SELECT count(*), coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM llm_response_cache x WHERE response ? 'copied_from' ",
    ),
];

/// Makes the project's runs (and their attempts and cache entries) `days` old.
async fn age(db: &tokio_postgres::Client, project: Uuid, days: i32) -> anyhow::Result<()> {
    db.batch_execute("BEGIN").await?;
    db.execute(
        "UPDATE runs SET created_at = now() - make_interval(days => $2), started_at = now() - make_interval(days => $2),
                         completed_at = now() - make_interval(days => $2)
         WHERE project_id = $1",
        &[&project, &days],
    )
    .await?;
    db.execute(
        "UPDATE task_attempts a SET started_at = now() - make_interval(days => $2),
                                  finished_at = now() - make_interval(days => $2)
         FROM tasks t WHERE t.id = a.task_id AND t.project_id = $1",
        &[&project, &days],
    )
    .await?;
    db.execute(
        "UPDATE llm_response_cache SET created_at = now() - make_interval(days => $1),
                                       expires_at = now() - make_interval(days => $1)
         WHERE response ? 'copied_from'",
        &[&days],
    )
    .await?;
    db.batch_execute("COMMIT").await?;
    Ok(())
}

async fn sizes(db: &tokio_postgres::Client, project: Uuid) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    for (_, sql) in SIZES {
        let row = if sql.contains("$1") {
            db.query_one(*sql, &[&project]).await?
        } else {
            db.query_one(*sql, &[]).await?
        };
        out.push((row.get(0), row.get(1)));
    }
    Ok(out)
}

fn kib(bytes: i64) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (url, db) = autocrew_tests::stack_database().await?;
    let source: Uuid = match args.from_run {
        Some(run) => run,
        None => db
            .query_opt(
                "SELECT r.id FROM runs r WHERE r.status = 'succeeded'
                   AND EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.id)
                 ORDER BY r.completed_at DESC LIMIT 1",
                &[],
            )
            .await?
            .context("no succeeded run to copy: run `make demo` first")?
            .get(0),
    };
    let (user, project) = (Uuid::new_v4(), Uuid::new_v4());
    db.execute(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, 'Retention report')",
        &[
            &user,
            &format!("retention-{}@autocrew.local", user.simple()),
        ],
    )
    .await?;
    db.execute(
        "INSERT INTO projects (id, user_id, name) VALUES ($1, $2, 'Retention report')",
        &[&project, &user],
    )
    .await?;
    let copy = db.prepare(COPY).await?;
    let mut seq = 0i64;
    for _ in 0..args.runs {
        let events: i64 = db
            .query_one(&copy, &[&source, &Uuid::new_v4(), &project, &user, &seq])
            .await?
            .get(0);
        seq += events;
    }
    db.execute(
        "UPDATE projects SET last_event_seq = $2 WHERE id = $1",
        &[&project, &seq],
    )
    .await?;
    let before = sizes(&db, project).await?;
    // Only now do the copies become old: a sweep running meanwhile (the runner's) cannot
    // have pruned them before they were measured.
    age(&db, project, args.age_days).await?;

    let pool = postgres::connect(&DatabaseConfig {
        url: autocrew_shared::config::Secret::new(url.clone()),
        pool_size: 2,
        password_secret: None,
        password: None,
        ca_file: None,
        iam_auth: false,
        iam_signer: None,
    })?;
    let retention = PgRetention::new(pool);
    let policy = RetentionPolicy::embedded();
    let mut sweeps = 0;
    loop {
        let report = retention.apply(&policy).await?;
        sweeps += 1;
        if report == Default::default() {
            break;
        }
    }
    let after = sizes(&db, project).await?;

    println!(
        "retention on {} copies of run {source} (ended {} days ago), policy shared/data/retention.json, {} sweep(s) of at most {} rows per kind",
        args.runs,
        args.age_days,
        sweeps - 1,
        policy.batch
    );
    println!(
        "  {:<20} {:>10} {:>10} {:>12} {:>12}",
        "table", "rows", "rows after", "bytes", "bytes after"
    );
    let (mut total_before, mut total_after) = (0, 0);
    for (((name, _), (rows, bytes)), (rows_after, bytes_after)) in
        SIZES.iter().zip(&before).zip(&after)
    {
        println!(
            "  {name:<20} {rows:>10} {rows_after:>10} {:>12} {:>12}",
            kib(*bytes),
            kib(*bytes_after)
        );
        total_before += bytes;
        total_after += bytes_after;
    }
    println!(
        "  {:<20} {:>10} {:>10} {:>12} {:>12}  ({:.0}% kept)",
        "total",
        "",
        "",
        kib(total_before),
        kib(total_after),
        100.0 * total_after as f64 / total_before.max(1) as f64
    );
    if !args.keep {
        db.execute("DELETE FROM users WHERE id = $1", &[&user])
            .await?;
        db.execute(
            "DELETE FROM llm_response_cache WHERE response ? 'copied_from'",
            &[],
        )
        .await?;
    }
    Ok(())
}

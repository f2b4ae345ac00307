//! What the engine asks of Postgres, from the server's own statement log: while a trace is
//! on (`log_statement = all`, each line prefixed with its session), every statement and
//! every transaction is counted and sorted by what it touches. A statement outside
//! `BEGIN`/`COMMIT` is a transaction of its own (Postgres counts it as a commit too).

use std::collections::BTreeMap;

/// The session marker the trace puts at the start of each log line.
const MARK: &str = "@@";

/// Statements and transactions (commits), each by category.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub statements: BTreeMap<&'static str, u64>,
    /// A transaction counts under the category of its first statement.
    pub commits: BTreeMap<&'static str, u64>,
}

impl Trace {
    pub fn total_statements(&self) -> u64 {
        self.statements.values().sum()
    }

    pub fn total_commits(&self) -> u64 {
        self.commits.values().sum()
    }
}

/// What a statement is about, by the tables it names (the first match wins).
pub fn category(sql: &str) -> &'static str {
    let has = |words: &[&str]| words.iter().any(|w| sql.contains(w));
    if has(&["pg_stat_", "ALTER SYSTEM", "pg_reload_conf"]) {
        "bench"
    } else if has(&["INTO events", "last_event_seq", "FROM events"]) {
        "events"
    } else if has(&["outbox"]) {
        "outbox (dispatch)"
    } else if has(&["approvals"]) {
        "approvals"
    } else if has(&["heartbeat_at = now()"]) {
        "heartbeats"
    } else if has(&[
        "llm_calls",
        "budget_reservations",
        "user_period_spend",
        "llm_provider_slots",
        "UPDATE runs SET reserved_micro_usd",
    ]) {
        "ledger, budget, slots"
    } else if has(&["llm_response_cache", "llm_semantic_cache"]) {
        "model cache"
    } else if has(&["idempotency_keys", "artifacts"]) {
        "artifacts"
    } else if has(&["tasks", "task_attempts", "task_dependencies"]) {
        "tasks"
    } else if has(&["runs"]) {
        "runs (plan, compile, notify)"
    } else if has(&[
        "users",
        "projects",
        "refresh_tokens",
        "email_tokens",
        "mail_outbox",
    ]) {
        "users, projects, tokens"
    } else {
        "other"
    }
}

/// The SQL of one log line, if it logs a statement: `LOG:  statement: ...` (simple
/// protocol) or `LOG:  execute <name>: ...` (extended).
fn statement(rest: &str) -> Option<&str> {
    let rest = rest.split_once("LOG:  ")?.1;
    if let Some(sql) = rest.strip_prefix("statement: ") {
        return Some(sql);
    }
    let rest = rest.strip_prefix("execute ")?;
    Some(rest.split_once(':')?.1.trim_start())
}

/// Counts the statements and transactions of a statement log written with the trace's line
/// prefix. Lines that do not log a statement (parameters, other messages) are skipped.
pub fn parse(log: &str) -> Trace {
    let mut trace = Trace::default();
    // Session → the category of the open transaction's first statement (None: just begun).
    let mut open: BTreeMap<String, Option<&'static str>> = BTreeMap::new();
    for (session, sql) in records(log) {
        let word = sql.trim().trim_end_matches(';').to_ascii_uppercase();
        match word.as_str() {
            "BEGIN" | "START TRANSACTION" => {
                open.insert(session, None);
            }
            "COMMIT" | "ROLLBACK" | "END" => {
                let first = open
                    .remove(&session)
                    .flatten()
                    .unwrap_or("empty transaction");
                if first != "bench" {
                    *trace.commits.entry(first).or_default() += 1;
                }
            }
            _ => {
                let kind = category(&sql);
                if kind == "bench" {
                    continue;
                }
                *trace.statements.entry(kind).or_default() += 1;
                match open.get_mut(&session) {
                    Some(first) => {
                        first.get_or_insert(kind);
                    }
                    None => *trace.commits.entry(kind).or_default() += 1,
                }
            }
        }
    }
    trace
}

/// Each logged statement as (session, whole SQL): a statement's continuation lines (those
/// without the prefix) are joined to it.
fn records(log: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    // Whether the last prefixed line was a statement (its continuations belong to it).
    let mut in_statement = false;
    for line in log.lines() {
        let Some(rest) = line.strip_prefix(MARK) else {
            if in_statement && let Some((_, sql)) = out.last_mut() {
                sql.push('\n');
                sql.push_str(line);
            }
            continue;
        };
        in_statement = false;
        let Some((session, rest)) = rest.split_once(MARK) else {
            continue;
        };
        if let Some(sql) = statement(rest) {
            out.push((session.to_owned(), sql.to_owned()));
            in_statement = true;
        }
    }
    out
}

/// Turns the statement log on, with the trace's line prefix (superuser).
pub async fn start(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    db.batch_execute("ALTER SYSTEM SET log_statement = 'all'")
        .await?;
    db.batch_execute(&format!(
        "ALTER SYSTEM SET log_line_prefix = '{MARK}%c{MARK} '"
    ))
    .await?;
    db.batch_execute("SELECT pg_reload_conf()").await?;
    // Every backend reloads on its next command; give the signal time to arrive.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    Ok(())
}

/// Turns the statement log off again.
pub async fn stop(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    db.batch_execute("ALTER SYSTEM RESET log_statement").await?;
    db.batch_execute("ALTER SYSTEM RESET log_line_prefix")
        .await?;
    db.batch_execute("SELECT pg_reload_conf()").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_transactions_are_counted_by_what_they_touch() {
        let log = "\
@@a.1@@ LOG:  statement: BEGIN
@@a.1@@ LOG:  execute s1: SELECT run_id FROM tasks WHERE id = $1
@@a.1@@ DETAIL:  parameters: $1 = 'x'
@@a.1@@ LOG:  execute s2:
\tINSERT INTO events (project_id, seq)
\tVALUES ($1, $2)
@@b.2@@ LOG:  execute <unnamed>: UPDATE task_attempts a SET heartbeat_at = now() FROM tasks t
@@a.1@@ LOG:  statement: COMMIT
@@c.3@@ LOG:  execute s9: SELECT xact_commit FROM pg_stat_database
@@b.2@@ LOG:  execute s4: DELETE FROM outbox WHERE id = ANY($1)
2026-12-01 LOG:  checkpoint starting: time
";
        let trace = parse(log);
        assert_eq!(trace.total_statements(), 4);
        assert_eq!(trace.statements["events"], 1);
        assert_eq!(trace.statements["heartbeats"], 1);
        assert_eq!(trace.total_commits(), 3, "{trace:?}");
        assert_eq!(trace.commits["tasks"], 1);
        assert_eq!(trace.commits["outbox (dispatch)"], 1);
        assert!(!trace.commits.contains_key("bench"));
    }
}

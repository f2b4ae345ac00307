//! Issue 4's done-when, as a user runs it: the runner and the CLI's `run`, with
//! `OPENAI_BASE_URL` pointing at a server that speaks the Chat Completions wire format (the
//! offline model behind it) and the operator's price table. The run completes on that
//! provider, streaming its agents' turns, and the cost report matches the token counts the
//! server reported, to the micro-dollar.

use autocrew_shared::domain::MicroUsd;
use autocrew_tests::compatible_server::CompatibleServer;
use autocrew_tests::{TestDb, run_on_compatible};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_run_command_completes_on_an_openai_compatible_server_with_costs_to_the_micro_dollar()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let server = CompatibleServer::start(0).await?;
    let report = run_on_compatible(&db, &server, &[], Duration::from_secs(120)).await?;

    assert!(report.succeeded, "the run failed: {}", report.run);
    let served = server.usage();
    let totals = &report.run["totals"];
    assert_eq!(
        totals["calls"].as_u64(),
        // The designer's logo and icon are the offline drawing's (no image model there), and
        // memory's embeddings the offline embedder's.
        Some(
            served.len() as u64
                + 2
                + autocrew_tests::memory_embeddings(
                    report.run["tasks"].as_array().map(Vec::len).unwrap_or(0)
                )
        ),
        "every call reached the server: {} {:#?}",
        report.costs,
        report.run["tasks"]
    );
    // The two images, drawn offline at $0, are on the ledger with their tokens too, and so
    // are memory's embeddings (offline, $0).
    let run_id = uuid::Uuid::parse_str(report.run["run"]["id"].as_str().unwrap_or_default())?;
    let drawn = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint
             FROM llm_calls WHERE run_id = $1 AND model IN ('offline-draw-1', 'offline-hash-1536')",
            &[&run_id],
        )
        .await?;
    let (drawn_in, drawn_out): (i64, i64) = (drawn.get(0), drawn.get(1));
    let input: u64 = served.iter().map(|u| u64::from(u.input)).sum::<u64>() + drawn_in as u64;
    let output: u64 = served.iter().map(|u| u64::from(u.output)).sum::<u64>() + drawn_out as u64;
    assert_eq!(
        (
            totals["usage"]["input"].as_u64(),
            totals["usage"]["output"].as_u64()
        ),
        (Some(input), Some(output))
    );
    // $0.10 and $0.40 per million tokens, each call rounded up to the micro-dollar.
    let expected: i64 = served
        .iter()
        .map(|u| {
            MicroUsd::for_tokens(u.input.into(), MicroUsd(100_000)).0
                + MicroUsd::for_tokens(u.output.into(), MicroUsd(400_000)).0
        })
        .sum();
    assert_eq!(totals["cost"].as_i64(), Some(expected));
    assert!(expected > 0);
    assert_eq!(
        report.costs["total"]["cost_micro_usd"].as_i64(),
        Some(expected),
        "GET /costs agrees"
    );
    assert_eq!(
        report.run["run"]["spent"].as_i64(),
        Some(expected),
        "the budget was charged the same"
    );
    // The agents' turns streamed: their text reached the app as progress events.
    assert!(report.events.iter().any(|e| {
        e["kind"] == "task_progress"
            && e["payload"]["delta"]
                .as_str()
                .is_some_and(|d| d.contains("\"path\""))
    }));
    Ok(())
}

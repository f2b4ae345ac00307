//! `GET /costs` (rollups over the ledger) and `PATCH /me` (the semantic cache opt-in), with
//! the payloads in `events/`.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use autocrew_api::Route;
use autocrew_shared::adapters::postgres::PgLedger;
use autocrew_shared::domain::records::{Attribution, LlmCall, TokenUsage};
use autocrew_shared::domain::{AgentKind, LlmCallOutcome, MicroUsd, ProjectId, UserId};
use autocrew_shared::ports::Ledger;
use autocrew_tests::TestDb;
use chrono::{Duration, Utc};
use serde_json::json;

async fn record(
    db: &TestDb,
    user: &str,
    project: &str,
    agent: AgentKind,
    model: &str,
    outcome: LlmCallOutcome,
    cost: i64,
) -> anyhow::Result<()> {
    let ledger = PgLedger::new(db.pool.clone());
    ledger
        .record(&LlmCall {
            attribution: Attribution {
                user_id: UserId::parse("user", user)?,
                project_id: ProjectId::parse("project", project)?,
                run_id: None,
                task_id: None,
                agent,
            },
            provider: "openai".into(),
            model: model.into(),
            outcome,
            usage: TokenUsage {
                input: 100,
                output: 10,
                cache_write: 0,
                cache_read: 0,
            },
            cost: MicroUsd(cost),
            latency_ms: 5,
            error: None,
            attempt: 1,
            waited_ms: 0,
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn costs_roll_up_by_agent_and_model_over_a_period_for_the_caller_only() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let token = user(&state, "ana@example.com").await?;
    let project = project(&state, &token).await?;
    let other = user(&state, "bo@example.com").await?;
    let other_project = crate::api::project(&state, &other).await?;
    let owner = |t: &str| {
        let keys = state.keys.clone();
        let t = t.to_owned();
        async move { anyhow::Ok(keys.verify(&t).await?.to_string()) }
    };
    let ana = owner(&token).await?;
    let bo = owner(&other).await?;
    record(
        &db,
        &ana,
        &project,
        AgentKind::Developer,
        "gpt-6-sol",
        LlmCallOutcome::Ok,
        300,
    )
    .await?;
    record(
        &db,
        &ana,
        &project,
        AgentKind::Developer,
        "gpt-6-sol",
        LlmCallOutcome::Error,
        0,
    )
    .await?;
    record(
        &db,
        &ana,
        &project,
        AgentKind::Marketer,
        "gpt-6-luna",
        LlmCallOutcome::Ok,
        120,
    )
    .await?;
    record(
        &db,
        &ana,
        &project,
        AgentKind::Marketer,
        "gpt-6-luna",
        LlmCallOutcome::CacheHit,
        0,
    )
    .await?;
    record(
        &db,
        &bo,
        &other_project,
        AgentKind::Developer,
        "gpt-6-sol",
        LlmCallOutcome::Ok,
        999,
    )
    .await?;
    let today = Utc::now().date_naive();
    let (from, to) = (
        (today - Duration::days(1)).to_string(),
        (today + Duration::days(1)).to_string(),
    );
    let period = [
        ("2026-11-01", from.as_str()),
        ("2026-12-01", to.as_str()),
        (SAMPLE_TOKEN, token.as_str()),
    ];

    let (status, by_agent) = call(
        &state,
        Route::GetCosts,
        event("apigw-get-costs.json", &period)?,
    )
    .await?;

    assert_eq!(status, 200, "{by_agent}");
    let groups: Vec<_> = by_agent["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            (
                g["key"].clone(),
                g["calls"].clone(),
                g["cache_hits"].clone(),
                g["failed"].clone(),
                g["cost"].clone(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (json!("developer"), json!(2), json!(0), json!(1), json!(300)),
            (json!("marketer"), json!(2), json!(1), json!(0), json!(120))
        ],
        "the other user's 999 is not counted"
    );
    assert_eq!(
        by_agent["total"],
        json!({"calls": 4, "cost_micro_usd": 420, "cost": "$0.000420"})
    );
    assert_eq!(by_agent["ai_budget"]["plan"], "free");

    let model = [
        ("by=agent", "by=model"),
        ("\"by\": \"agent\"", "\"by\": \"model\""),
    ];
    let swaps: Vec<_> = model.iter().chain(period.iter()).copied().collect();
    let (status, by_model) = call(
        &state,
        Route::GetCosts,
        event("apigw-get-costs.json", &swaps)?,
    )
    .await?;
    assert_eq!(status, 200, "{by_model}");
    let keys: Vec<_> = by_model["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["key"].clone())
        .collect();
    assert_eq!(
        keys,
        [json!("openai/gpt-6-sol"), json!("openai/gpt-6-luna")]
    );

    let (status, bad) = call(
        &state,
        Route::GetCosts,
        event(
            "apigw-get-costs.json",
            &[
                ("by=agent", "by=colour"),
                ("\"agent\"", "\"colour\""),
                (SAMPLE_TOKEN, token.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 400);
    assert!(
        bad.to_string().contains("colour") && bad.to_string().contains("by"),
        "{bad}"
    );
    let backwards = [
        ("2026-11-01", to.as_str()),
        ("2026-12-01", from.as_str()),
        (SAMPLE_TOKEN, token.as_str()),
    ];
    let (status, bad) = call(
        &state,
        Route::GetCosts,
        event("apigw-get-costs.json", &backwards)?,
    )
    .await?;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.to_string().contains("must be after from"), "{bad}");
    let foreign = [
        (
            "to=2026-12-01",
            &*format!("to={to}&project_id={other_project}"),
        ),
        (
            "\"to\": \"2026-12-01\"",
            &*format!("\"to\": \"{to}\", \"project_id\": \"{other_project}\""),
        ),
        ("2026-11-01", from.as_str()),
        (SAMPLE_TOKEN, token.as_str()),
    ];
    let (status, _) = call(
        &state,
        Route::GetCosts,
        event("apigw-get-costs.json", &foreign)?,
    )
    .await?;
    assert_eq!(status, 404, "another user's project is not found");
    Ok(())
}

#[tokio::test]
async fn a_user_opts_in_and_out_of_the_semantic_cache() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let token = user(&state, "ana@example.com").await?;
    let me = |threshold: &str| {
        event(
            "apigw-update-me.json",
            &[("0.92", threshold), (SAMPLE_TOKEN, token.as_str())],
        )
    };

    let (status, on) = call(&state, Route::UpdateMe, me("0.92")?).await?;
    assert_eq!(status, 200, "{on}");
    assert!(
        (on["user"]["semantic_cache_threshold"]
            .as_f64()
            .unwrap_or(0.0)
            - 0.92)
            .abs()
            < 1e-6,
        "{on}"
    );

    let (status, bad) = call(&state, Route::UpdateMe, me("1.5")?).await?;
    assert_eq!(status, 400);
    assert!(
        bad.to_string().contains("semantic_cache_threshold"),
        "{bad}"
    );

    let (status, off) = call(&state, Route::UpdateMe, me("null")?).await?;
    assert_eq!(
        (status, off["user"]["semantic_cache_threshold"].clone()),
        (200, json!(null))
    );

    let (status, unknown) = call(
        &state,
        Route::UpdateMe,
        event(
            "apigw-update-me.json",
            &[
                ("semantic_cache_threshold", "colour"),
                (SAMPLE_TOKEN, token.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 400, "{unknown}");

    // The time zone: set alone (the cache setting stays), then a schedule made without
    // one keeps the user's clock.
    let tokyo =
        me("0.92")?.map(|_| lambda_http::Body::Text(r#"{"timezone": "Asia/Tokyo"}"#.into()));
    let (status, set) = call(&state, Route::UpdateMe, tokyo).await?;
    assert_eq!(
        (status, set["user"]["timezone"].as_str()),
        (200, Some("Asia/Tokyo")),
        "{set}"
    );
    let mars =
        me("0.92")?.map(|_| lambda_http::Body::Text(r#"{"timezone": "Mars/Olympus"}"#.into()));
    let (status, bad) = call(&state, Route::UpdateMe, mars).await?;
    assert_eq!(
        (status, bad["field"].as_str()),
        (400, Some("timezone")),
        "{bad}"
    );
    let keto = crate::api::project(&state, &token).await?;
    let schedule = event(
        "apigw-create-schedule.json",
        &[
            (SAMPLE_TOKEN, token.as_str()),
            ("6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21", keto.as_str()),
        ],
    )?
    .map(|_| {
        lambda_http::Body::Text(
            r#"{"expression": "cron(0 8 * * ? *)", "command": "Draft today's post"}"#.into(),
        )
    });
    let (status, made) = call(&state, Route::CreateSchedule, schedule).await?;
    assert_eq!(
        (status, made["timezone"].as_str()),
        (201, Some("Asia/Tokyo")),
        "{made}"
    );
    Ok(())
}

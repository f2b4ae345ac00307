//! Schedules through the API and fired by a controllable clock: the expression grammar
//! with a 400 naming the field, each user's schedules their own, one run per fire however
//! often it is delivered, overlap and catch-up by policy, and a fire's run an ordinary run
//! marked with its schedule.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use autocrew_api::Route;
use autocrew_shared::domain::schedule::Schedule;
use autocrew_shared::domain::{FireOutcome, RunId, RunStatus, ScheduleId};
use autocrew_shared::ports::{Effects, Publisher, ScheduleStore};
use autocrew_shared::services::scheduler::Scheduler;
use autocrew_tests::TestDb;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::sync::{Arc, Mutex};

const SAMPLE_PROJECT: &str = "6f1c2a4e-2b7d-4c1e-9a55-3f0d8e7b1a21";
const SAMPLE_SCHEDULE: &str = "5b2f3c1d-8e4a-4f6b-9c2d-1a7e3f5b9c04";

/// A create request for `project` as `token`, its body's fields replaced by `body`.
fn create(token: &str, project: &str, body: &Value) -> anyhow::Result<lambda_http::Request> {
    let request = event(
        "apigw-create-schedule.json",
        &[(SAMPLE_TOKEN, token), (SAMPLE_PROJECT, project)],
    )?;
    Ok(request.map(|_| lambda_http::Body::Text(body.to_string())))
}

fn on(file: &str, token: &str, schedule: &str) -> anyhow::Result<lambda_http::Request> {
    event(file, &[(SAMPLE_TOKEN, token), (SAMPLE_SCHEDULE, schedule)])
}

/// What the scheduler published, kept for the test to read.
#[derive(Default)]
struct Kept(Mutex<Vec<Effects>>);

#[async_trait::async_trait]
impl Publisher for Kept {
    async fn publish(&self, effects: Effects) {
        if let Ok(mut kept) = self.0.lock() {
            kept.push(effects);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_is_made_read_changed_paused_and_deleted_by_its_owner_only() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ben = user(&state, "ben@example.com").await?;
    let keto = project(&state, &ana).await?;

    let body = serde_json::json!({
        "expression": "cron(0 8 * * ? *)", "timezone": "Europe/Paris",
        "command": "Draft today's post", "budget_usd": 2.5, "overlap": "queue"
    });
    let (status, made) = call(&state, Route::CreateSchedule, create(&ana, &keto, &body)?).await?;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(made["timezone"], "Europe/Paris");
    assert_eq!(made["budget_micro_usd"], 2_500_000);
    assert_eq!(made["overlap"], "queue");
    assert_eq!(made["catch_up"], "skip");
    let next: DateTime<Utc> = serde_json::from_value(made["next_fire_at"].clone())?;
    let paris =
        autocrew_shared::domain::schedule::time_zone("Europe/Paris").map_err(anyhow::Error::msg)?;
    let local = next.with_timezone(&paris);
    assert_eq!(local.format("%H:%M").to_string(), "08:00", "{next}");

    let (status, listed) = call(
        &state,
        Route::ListSchedules,
        event(
            "apigw-list-schedules.json",
            &[
                (SAMPLE_TOKEN, ana.as_str()),
                (SAMPLE_PROJECT, keto.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(
        (status, listed["schedules"][0]["id"].as_str()),
        (200, Some(id.as_str()))
    );

    // Paused: no next fire; resumed: the next 08:00 again.
    let (status, paused) = call(
        &state,
        Route::UpdateSchedule,
        on("apigw-update-schedule.json", &ana, &id)?,
    )
    .await?;
    assert_eq!(
        (
            status,
            paused["enabled"].clone(),
            paused["next_fire_at"].clone()
        ),
        (200, Value::Bool(false), Value::Null),
        "{paused}"
    );
    let resume = on("apigw-update-schedule.json", &ana, &id)?.map(|_| {
        lambda_http::Body::Text(r#"{"enabled": true, "expression": "rate(2 hours)"}"#.into())
    });
    let (status, resumed) = call(&state, Route::UpdateSchedule, resume).await?;
    assert_eq!(
        (status, resumed["expression"].as_str()),
        (200, Some("rate(2 hours)")),
        "{resumed}"
    );
    assert!(resumed["next_fire_at"].is_string());

    // Another user sees none of it, and cannot change or delete it.
    for (route, file) in [
        (Route::GetSchedule, "apigw-get-schedule.json"),
        (Route::UpdateSchedule, "apigw-update-schedule.json"),
        (Route::ListFires, "apigw-list-fires.json"),
        (Route::DeleteSchedule, "apigw-delete-schedule.json"),
    ] {
        let (status, body) = call(&state, route, on(file, &ben, &id)?).await?;
        assert_eq!(status, 404, "{route:?} as Ben: {body}");
    }
    let (status, body) = call(&state, Route::CreateSchedule, create(&ben, &keto, &body)?).await?;
    assert_eq!(status, 404, "a schedule on Ana's project, as Ben: {body}");

    let (status, _) = call(
        &state,
        Route::DeleteSchedule,
        on("apigw-delete-schedule.json", &ana, &id)?,
    )
    .await?;
    assert_eq!(status, 204);
    let (status, _) = call(
        &state,
        Route::GetSchedule,
        on("apigw-get-schedule.json", &ana, &id)?,
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_schedule_is_a_400_naming_its_field() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let keto = project(&state, &ana).await?;
    let cases = [
        (
            serde_json::json!({"expression": "cron(0 8 * * *)", "command": "x"}),
            "expression",
        ),
        (
            serde_json::json!({"expression": "cron(0 8 * * 1 *)", "command": "x"}),
            "expression",
        ),
        (
            serde_json::json!({"expression": "rate(1 minutes)", "command": "x"}),
            "expression",
        ),
        (
            serde_json::json!({"expression": "at(2020-01-01T08:00:00)", "command": "x"}),
            "expression",
        ),
        (
            serde_json::json!({"expression": "every morning", "command": "x"}),
            "expression",
        ),
        (
            serde_json::json!({"expression": "rate(1 hour)", "timezone": "Mars/Olympus", "command": "x"}),
            "timezone",
        ),
        (
            serde_json::json!({"expression": "rate(1 hour)", "command": "  "}),
            "command",
        ),
        (
            serde_json::json!({"expression": "rate(1 hour)", "command": "x", "budget_usd": 0}),
            "budget_usd",
        ),
        // A value outside an enum is named by serde's message, as for every body.
        (
            serde_json::json!({"expression": "rate(1 hour)", "command": "x", "overlap": "stack"}),
            "body.field",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) =
            call(&state, Route::CreateSchedule, create(&ana, &keto, &body)?).await?;
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(field)),
            "{body}: {answer}"
        );
    }
    Ok(())
}

/// The schedule `id` as its store keeps it.
async fn kept(
    store: &dyn ScheduleStore,
    owner: autocrew_shared::domain::UserId,
    id: &str,
) -> anyhow::Result<Schedule> {
    Ok(store
        .schedule(owner, ScheduleId::parse("schedule_id", id)?)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_starts_one_marked_run_however_often_it_is_delivered_and_follows_overlap()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    let keto = project(&state, &ana).await?;
    let body = serde_json::json!({"expression": "rate(1 hour)", "command": "Post the day's update", "overlap": "queue"});
    let (_, made) = call(&state, Route::CreateSchedule, create(&ana, &keto, &body)?).await?;
    let id = made["id"].as_str().unwrap_or_default().to_owned();
    let schedule = kept(&*state.schedules, ana_id, &id).await?;
    let due = schedule
        .next_fire_at
        .ok_or_else(|| anyhow::anyhow!("a next fire"))?;

    // The controllable clock: the scheduler is told what time it is.
    let published = Arc::new(Kept::default());
    let scheduler = Scheduler {
        schedules: state.schedules.clone(),
        publisher: published.clone(),
    };
    let early = scheduler.tick(due - Duration::seconds(1), 10).await?;
    assert!(early.fired.is_empty(), "nothing is due a second early");
    let tick = scheduler.tick(due + Duration::seconds(5), 10).await?;
    let [fired] = tick.fired.as_slice() else {
        anyhow::bail!("one fire: {:?}", tick.fired)
    };
    assert_eq!(
        (fired.fire.outcome, fired.fire.scheduled_at),
        (FireOutcome::Started, due)
    );
    let run = fired.run.clone().ok_or_else(|| anyhow::anyhow!("a run"))?;
    assert_eq!(run.schedule_id, Some(schedule.id));
    assert_eq!(run.command, "Post the day's update");
    assert!(
        !fired.effects.outbox.is_empty(),
        "the run's execution is started"
    );

    // The same fire delivered again (EventBridge delivers at least once): one run.
    let again = state
        .schedules
        .fire(schedule.id, (due, Some(due + Duration::hours(1))), None)
        .await?;
    assert!(!again.first);
    assert_eq!(again.fire.run_id, Some(run.id));
    let runs: i64 = db
        .pool
        .get()
        .await?
        .query_one(
            "SELECT count(*) FROM runs WHERE schedule_id = $1",
            &[&schedule.id.0],
        )
        .await?
        .get(0);
    assert_eq!(runs, 1);

    // The next hour, the run is still going: the fire waits (overlap: queue); one after is
    // skipped, as one already waits.
    let second = due + Duration::hours(1);
    let waiting = scheduler.tick(second + Duration::seconds(5), 10).await?;
    assert_eq!(
        waiting.fired[0].fire.outcome,
        FireOutcome::Queued,
        "{:?}",
        waiting.fired
    );
    let third = second + Duration::hours(1);
    let skipped = scheduler.tick(third + Duration::seconds(5), 10).await?;
    assert_eq!(skipped.fired[0].fire.outcome, FireOutcome::Skipped);

    // The run ends: the waiting fire starts its own run.
    state
        .runs
        .set_status(run.id, RunStatus::Succeeded, None)
        .await?;
    let started = scheduler.tick(third + Duration::seconds(20), 10).await?;
    let [later] = started.started_waiting.as_slice() else {
        anyhow::bail!("the waiting fire starts: {started:?}")
    };
    assert_eq!(later.fire.scheduled_at, second);
    assert_ne!(later.fire.run_id, Some(run.id));

    // The fires, newest first, as the API lists them.
    let (status, fires) = call(
        &state,
        Route::ListFires,
        on("apigw-list-fires.json", &ana, &id)?,
    )
    .await?;
    assert_eq!(status, 200, "{fires}");
    let outcomes: Vec<&str> = fires["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["skipped", "started", "started"]);
    let run_of_fire: Option<RunId> = serde_json::from_value(fires["items"][1]["run_id"].clone())?;
    let marked = state
        .runs
        .run(run_of_fire.ok_or_else(|| anyhow::anyhow!("a run id"))?)
        .await?;
    assert_eq!(marked.schedule_id, Some(schedule.id));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_missed_while_nothing_fired_are_skipped_or_made_up_once() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    let keto = project(&state, &ana).await?;
    let scheduler = Scheduler {
        schedules: state.schedules.clone(),
        publisher: Arc::new(Kept::default()),
    };
    for (catch_up, outcome) in [
        ("skip", FireOutcome::Skipped),
        ("once", FireOutcome::Started),
    ] {
        let body = serde_json::json!({"expression": "rate(1 hour)", "command": "Report", "catch_up": catch_up});
        let (_, made) = call(&state, Route::CreateSchedule, create(&ana, &keto, &body)?).await?;
        let schedule = kept(
            &*state.schedules,
            ana_id,
            made["id"].as_str().unwrap_or_default(),
        )
        .await?;
        let due = schedule
            .next_fire_at
            .ok_or_else(|| anyhow::anyhow!("a next fire"))?;
        // The runner was down for five hours.
        let now = due + Duration::hours(5) + Duration::minutes(10);
        let tick = scheduler.tick(now, 10).await?;
        let fired = tick
            .fired
            .iter()
            .find(|f| f.fire.schedule_id == schedule.id)
            .ok_or_else(|| anyhow::anyhow!("{catch_up}: a fire"))?;
        assert_eq!(fired.fire.outcome, outcome, "{catch_up}: {:?}", fired.fire);
        assert_eq!(
            fired.fire.scheduled_at,
            due + Duration::hours(5),
            "the latest missed time"
        );
        let after = kept(
            &*state.schedules,
            ana_id,
            made["id"].as_str().unwrap_or_default(),
        )
        .await?;
        assert_eq!(
            after.next_fire_at,
            Some(due + Duration::hours(6)),
            "on from now"
        );
        let run = fired.run.as_ref().map(|r| r.id);
        if let Some(run) = run {
            state
                .runs
                .set_status(run, RunStatus::Cancelled, None)
                .await?;
        }
    }
    Ok(())
}

/// The schedule's EventBridge Scheduler schedule in the template's group, as moto holds it.
async fn timer_of(
    p: &crate::pipeline::Pipeline,
    id: &str,
) -> anyhow::Result<Option<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput>> {
    let client = aws_sdk_scheduler::Client::new(&autocrew_tests::sdk().await?);
    let group = p
        .provisioned
        .names
        .get("ProjectSchedules")
        .cloned()
        .unwrap_or_default();
    match client
        .get_schedule()
        .name(id)
        .group_name(group)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_schedule_has_its_eventbridge_timer_and_a_delivered_fire_starts_one_run()
-> anyhow::Result<()> {
    use autocrew_shared::domain::messages::ScheduleFire;
    use autocrew_sweep::fire::{FireState, handle};
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let keto = project(&state, &ana).await?;
    let body = serde_json::json!({
        "expression": "cron(0 8 * * ? *)", "timezone": "Europe/Paris",
        "command": "Draft today's post", "catch_up": "skip"
    });
    let (status, made) = call(&state, Route::CreateSchedule, create(&ana, &keto, &body)?).await?;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap_or_default().to_owned();

    // Its timer: the expression in its time zone, on time, invoking the fire function with
    // the schedule and Scheduler's own fire time.
    let timer = timer_of(&p, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no timer for {id}"))?;
    assert_eq!(timer.schedule_expression(), Some("cron(0 8 * * ? *)"));
    assert_eq!(timer.schedule_expression_timezone(), Some("Europe/Paris"));
    assert_eq!(timer.state().map(|s| s.as_str()), Some("ENABLED"));
    let target = timer.target().ok_or_else(|| anyhow::anyhow!("no target"))?;
    assert!(
        target.arn().ends_with(":function:schedule-fire"),
        "{}",
        target.arn()
    );
    let input: Value = serde_json::from_str(target.input().unwrap_or_default())?;
    assert_eq!(input["schedule_id"], id.as_str());
    assert_eq!(input["scheduled_at"], "<aws.scheduler.scheduled-time>");

    // A fire delivered twice (Scheduler delivers at least once) starts one run.
    let kept = Arc::new(Kept::default());
    let fires = FireState {
        scheduler: Scheduler {
            schedules: state.schedules.clone(),
            publisher: kept.clone(),
        },
        timers: state.timers.clone(),
    };
    let fire: ScheduleFire = serde_json::from_value(serde_json::json!({
        "schedule_id": id, "scheduled_at": Utc::now() - Duration::seconds(5)
    }))?;
    let first = handle(&fires, fire.clone()).await?;
    let again = handle(&fires, fire.clone()).await?;
    assert_eq!(first.outcome, Some(FireOutcome::Started));
    assert!(first.first && !again.first);
    assert_eq!(first.run_id, again.run_id);
    assert!(first.run_id.is_some());

    // Paused: the timer too.
    let pause = on("apigw-update-schedule.json", &ana, &id)?
        .map(|_| lambda_http::Body::Text(r#"{"enabled": false}"#.into()));
    let (status, _) = call(&state, Route::UpdateSchedule, pause).await?;
    assert_eq!(status, 200);
    let timer = timer_of(&p, &id).await?;
    assert_eq!(
        timer.and_then(|t| t.state().map(|s| s.as_str().to_owned())),
        Some("DISABLED".to_owned())
    );

    // Deleted: the timer too; a fire it still delivers changes nothing.
    let (status, _) = call(
        &state,
        Route::DeleteSchedule,
        on("apigw-delete-schedule.json", &ana, &id)?,
    )
    .await?;
    assert_eq!(status, 204);
    assert!(timer_of(&p, &id).await?.is_none());
    let late = handle(&fires, fire).await?;
    assert_eq!(late.outcome, None);

    // Deleting a project deletes its schedules' timers.
    let side = project(&state, &ana).await?;
    let (status, other) = call(&state, Route::CreateSchedule, create(&ana, &side, &body)?).await?;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().unwrap_or_default().to_owned();
    assert!(timer_of(&p, &other).await?.is_some());
    let (status, body) = call(
        &state,
        Route::DeleteProject,
        event(
            "apigw-delete-project.json",
            &[
                (SAMPLE_TOKEN, ana.as_str()),
                (SAMPLE_PROJECT, side.as_str()),
            ],
        )?,
    )
    .await?;
    assert_eq!(status, 204, "{body}");
    assert!(timer_of(&p, &other).await?.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_when_the_months_ai_budget_is_spent_starts_nothing_and_says_why()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ana_id = state.keys.verify(&ana).await?;
    let keto = project(&state, &ana).await?;
    let body =
        serde_json::json!({"expression": "rate(1 hour)", "command": "Post the day's update"});
    let (_, made) = call(&state, Route::CreateSchedule, create(&ana, &keto, &body)?).await?;
    let id = made["id"].as_str().unwrap_or_default().to_owned();
    let schedule = kept(&*state.schedules, ana_id, &id).await?;
    let due = schedule
        .next_fire_at
        .ok_or_else(|| anyhow::anyhow!("a next fire"))?;
    // Ana paid $20 this period ($8 of AI: 40% of it), on top of her $1 trial credit, and
    // has spent all of it.
    autocrew_tests::funds::fund(&db.pool, ana_id, 2000).await?;
    let limit = state.budgets.standing(ana_id).await?.limit();
    let client = db.pool.get().await?;
    client
        .execute(
            "UPDATE user_period_spend SET spent_micro_usd = $2 WHERE user_id = $1",
            &[&ana_id.0, &limit.0],
        )
        .await?;

    let fired = state
        .schedules
        .fire(schedule.id, (due, Some(due + Duration::hours(1))), None)
        .await?;
    assert_eq!(fired.fire.outcome, FireOutcome::Skipped);
    assert!(fired.run.is_none());
    assert_eq!(
        fired.fire.reason.as_deref(),
        Some(
            format!("the period's AI budget is spent ({limit} of {limit}); fires start runs again next period or on a larger plan").as_str()
        )
    );
    // With money left again (another payment this period), the next fire starts its run.
    autocrew_tests::funds::fund(&db.pool, ana_id, 10000).await?;
    let next = due + Duration::hours(1);
    let fired = state
        .schedules
        .fire(schedule.id, (next, Some(next + Duration::hours(1))), None)
        .await?;
    assert_eq!(fired.fire.outcome, FireOutcome::Started);
    Ok(())
}

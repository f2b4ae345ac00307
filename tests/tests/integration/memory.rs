//! Long-term memory: what a run's agents learned reaches the next similar run's prompts
//! (the plan's and every task's) as recalled data, the planner sees the user's similar
//! projects, and nothing crosses users; the store merges near-duplicates and keeps
//! user-wide preferences apart from project memories; the API searches, forgets and
//! lists similar projects for the owner only.

use crate::api::{SAMPLE_TOKEN, api, call, event, project, user};
use crate::pipeline::{pipeline, run_to_end};
use async_trait::async_trait;
use autocrew_api::Route;
use autocrew_shared::adapters::llm::{OFFLINE_EMBEDDING_MODEL, OfflineLlm, offline_vector};
use autocrew_shared::adapters::postgres::{PgEventLog, PgMemoryStore, PgProjectStore, PgRunStore};
use autocrew_shared::crew::planner::RECALLED_PREAMBLE;
use autocrew_shared::domain::records::NewRun;
use autocrew_shared::domain::{
    AgentKind, EventKind, MemoryKind, MicroUsd, ProjectId, RunStatus, UserId,
};
use autocrew_shared::ports::gateway::Embedding;
use autocrew_shared::ports::llm::{Content, LlmClient, LlmError, LlmRequest, LlmResponse};
use autocrew_shared::ports::{
    EventLog, ExecutionStatus, MemorySource, MemoryStore, NewMemory, ProjectStore, RunStore,
};
use autocrew_tests::{Seeded, TestDb, seed};
use std::sync::{Arc, Mutex};

/// The offline model, keeping every request it was sent.
#[derive(Default)]
struct Recording(Mutex<Vec<LlmRequest>>);

impl Recording {
    fn requests(&self) -> Vec<LlmRequest> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl LlmClient for Recording {
    fn provider(&self) -> &str {
        OfflineLlm.provider()
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        if let Ok(mut kept) = self.0.lock() {
            kept.push(request.clone());
        }
        OfflineLlm.complete(request).await
    }
}

/// Every text a request carries, joined.
fn text_of(request: &LlmRequest) -> String {
    request
        .messages
        .iter()
        .flat_map(|m| m.content.iter())
        .filter_map(|c| match c {
            Content::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pending run of `command` in `seeded`'s project (or `project`), as `seeded`'s user.
async fn another_run(
    db: &TestDb,
    seeded: &Seeded,
    project: Option<ProjectId>,
    command: &str,
) -> anyhow::Result<Seeded> {
    let run = PgRunStore::new(db.pool.clone())
        .create_run(NewRun {
            project_id: project.unwrap_or(seeded.project.id),
            user_id: seeded.user.id,
            command: command.into(),
            budget: MicroUsd::from_dollars(5),
            max_concurrency: 4,
            deadline: None,
            idempotency: None,
            schedule: None,
        })
        .await?
        .value;
    let project = match project {
        Some(id) => PgProjectStore::new(db.pool.clone()).project(id).await?,
        None => seeded.project.clone(),
    };
    Ok(Seeded {
        user: seeded.user.clone(),
        project,
        run,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_similar_command_recalls_the_first_runs_decisions_and_no_other_user_does()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let model = Arc::new(Recording::default());
    let p = pipeline(&db, Some((model.clone(), "offline-template-1"))).await?;
    let first = seed(&db, 4).await?;
    assert_eq!(run_to_end(&p, &first).await?, ExecutionStatus::Succeeded);
    // The first run knew nothing yet, and a run's own memories are not recalled into its
    // tasks (its upstream results are there): nothing was recalled into its prompts.
    let before = model.requests().len();
    for request in model.requests() {
        let text = text_of(&request);
        assert!(
            !text.contains(RECALLED_PREAMBLE) && !text.contains("\"recalled\""),
            "{text}"
        );
    }
    let store = PgMemoryStore::new(db.pool.clone());
    let kept = store.recent(first.user.id, first.project.id, 50).await?;
    let tasks = p.ctx.tasks.run_tasks(first.run.id).await?;
    // Each task wrote its decision, and the plan the project's gist.
    assert_eq!(
        kept.iter()
            .filter(|m| m.kind == MemoryKind::Decision)
            .count(),
        tasks.len(),
        "{kept:#?}"
    );
    assert_eq!(
        kept.iter()
            .filter(|m| m.kind == MemoryKind::Project)
            .count(),
        1
    );
    assert!(
        kept.iter()
            .all(|m| m.embedding_model == OFFLINE_EMBEDDING_MODEL)
    );
    let research = kept
        .iter()
        .find(|m| m.content.contains("Research the audience"))
        .ok_or_else(|| anyhow::anyhow!("no research memory in {kept:#?}"))?;
    assert_eq!(research.agent, AgentKind::Marketer);
    assert_eq!(research.run_id, Some(first.run.id));

    // The same user's second, similar command in the same project.
    let second = another_run(&db, &first, None, "Build a recipe app for keto athletes").await?;
    assert_eq!(run_to_end(&p, &second).await?, ExecutionStatus::Succeeded);
    let sent = model.requests()[before..].to_vec();
    let plan = sent
        .iter()
        .find(|r| r.response_schema.is_some())
        .ok_or_else(|| anyhow::anyhow!("no planning request"))?;
    let plan_text = text_of(plan);
    assert!(plan_text.contains(RECALLED_PREAMBLE), "{plan_text}");
    assert!(plan_text.contains(&research.content), "{plan_text}");
    // Every task's first message carries what it recalled, marked as recalled data.
    let research_prompt = sent
        .iter()
        .map(text_of)
        .find(|t| t.contains("\"task_key\":\"market_research\""))
        .ok_or_else(|| anyhow::anyhow!("no research task request"))?;
    assert!(
        research_prompt.contains("\"recalled\""),
        "{research_prompt}"
    );
    assert!(
        research_prompt.contains(&research.content),
        "{research_prompt}"
    );
    assert!(
        sent.iter().all(|r| r.response_schema.is_some()
            || r.system.contains("what is recalled from earlier work"))
    );
    // The run's events say what was recalled, for the plan and each task, and each
    // task's summary says it used it.
    let events = PgEventLog::new(db.pool.clone())
        .since(second.project.id, 0, 1000)
        .await?;
    let recalled: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::MemoryRecalled && e.run_id == Some(second.run.id))
        .collect();
    let second_tasks = p.ctx.tasks.run_tasks(second.run.id).await?;
    assert_eq!(
        recalled.len(),
        second_tasks.len() + 1,
        "the plan and each task"
    );
    for task in &second_tasks {
        let summary = task.result.as_ref().map(|r| r["summary"].to_string());
        assert!(
            summary.as_deref().is_some_and(|s| s.contains("recalled")),
            "{}: {summary:?}",
            task.key
        );
    }
    // The project keeps one gist, the second plan's; each run's decisions stay.
    let after = store.recent(first.user.id, first.project.id, 100).await?;
    let gists: Vec<_> = after
        .iter()
        .filter(|m| m.kind == MemoryKind::Project)
        .collect();
    assert_eq!(gists.len(), 1);
    assert_eq!(gists[0].run_id, Some(second.run.id));
    assert!(gists[0].content.contains("keto athletes"), "{:?}", gists[0]);

    // The same user's new project: the planner sees the first project as similar, and
    // none of its project memories.
    let projects = PgProjectStore::new(db.pool.clone());
    let other = projects
        .create_project(first.user.id, "Vegan recipes", "A recipe app for vegans")
        .await?;
    let third = another_run(
        &db,
        &first,
        Some(other.id),
        "Build a recipe app for vegan dieters",
    )
    .await?;
    let before = model.requests().len();
    assert_eq!(run_to_end(&p, &third).await?, ExecutionStatus::Succeeded);
    let sent = model.requests()[before..].to_vec();
    let plan_text = sent
        .iter()
        .find(|r| r.response_schema.is_some())
        .map(text_of)
        .unwrap_or_default();
    assert!(plan_text.contains("similar_projects"), "{plan_text}");
    assert!(plan_text.contains(&first.project.name), "{plan_text}");
    assert!(
        !plan_text.contains(&research.content),
        "another project's memories stay there"
    );

    // Another user with the same command: none of the first user's memories or projects.
    let stranger = seed(&db, 4).await?;
    let before = model.requests().len();
    assert_eq!(run_to_end(&p, &stranger).await?, ExecutionStatus::Succeeded);
    for request in &model.requests()[before..] {
        let text = text_of(request);
        assert!(!text.contains(RECALLED_PREAMBLE), "{text}");
        assert!(!text.contains("\"recalled\""), "{text}");
    }
    let run = PgRunStore::new(db.pool.clone())
        .run(stranger.run.id)
        .await?;
    assert_eq!(run.status, RunStatus::Succeeded);
    Ok(())
}

fn embedding(text: &str) -> Embedding {
    Embedding {
        model: OFFLINE_EMBEDDING_MODEL.into(),
        values: offline_vector(text),
    }
}

fn note(kind: MemoryKind, content: &str, user_wide: bool) -> NewMemory {
    NewMemory {
        kind,
        content: content.into(),
        user_wide,
        embedding: embedding(content),
    }
}

fn source(user: UserId, project: ProjectId) -> MemorySource {
    MemorySource {
        user,
        project,
        agent: AgentKind::Marketer,
        run: None,
        task: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_are_scoped_to_their_user_and_project_merged_and_forgotten() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let store = PgMemoryStore::new(db.pool.clone());
    let ana = seed(&db, 1).await?;
    let ben = seed(&db, 1).await?;
    let projects = PgProjectStore::new(db.pool.clone());
    let side = projects
        .create_project(ana.user.id, "Side", "Another project")
        .await?;
    let price = "The keto app costs 4 dollars a month after a 7 day trial";
    let kept = store
        .remember(
            source(ana.user.id, ana.project.id),
            &[
                note(MemoryKind::Decision, price, false),
                note(
                    MemoryKind::Preference,
                    "Ana prefers short posts with no emoji",
                    true,
                ),
            ],
        )
        .await?;
    assert!(kept.iter().all(|k| !k.merged));
    // Ben's memory, worded as Ana's: never Ana's to recall, nor merged into hers.
    store
        .remember(
            source(ben.user.id, ben.project.id),
            &[note(MemoryKind::Decision, price, false)],
        )
        .await?;
    // Said again, a little differently: merged into the first, one more mention.
    let again = store
        .remember(
            source(ana.user.id, ana.project.id),
            &[note(
                MemoryKind::Decision,
                "The keto app costs 4 dollars a month after a 7 day trial.",
                false,
            )],
        )
        .await?;
    assert_eq!(again[0].id, kept[0].id);
    assert!(again[0].merged);

    let query = embedding("what does the keto app cost a month");
    let hits = store
        .nearest((ana.user.id, ana.project.id), None, &query, 10)
        .await?;
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(hits[0].memory.id, kept[0].id);
    assert_eq!(hits[0].memory.mentions, 2);
    assert!(hits.iter().all(|h| h.memory.user_id == ana.user.id));
    // Ana's other project sees her user-wide preference, not the keto project's price.
    let side_hits = store
        .nearest((ana.user.id, side.id), None, &query, 10)
        .await?;
    assert_eq!(side_hits.len(), 1);
    assert_eq!(side_hits[0].memory.kind, MemoryKind::Preference);
    assert_eq!(side_hits[0].memory.project_id, None);

    // Forgetting is the owner's: Ben cannot, Ana can.
    let forget = store.forget(ben.user.id, kept[0].id).await;
    assert!(forget.is_err(), "{forget:?}");
    store.forget(ana.user.id, kept[0].id).await?;
    let hits = store
        .nearest((ana.user.id, ana.project.id), None, &query, 10)
        .await?;
    assert!(hits.iter().all(|h| h.memory.id != kept[0].id));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_searches_forgets_and_finds_similar_projects_for_their_owner_only()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, _p) = api(&db).await?;
    let ana = user(&state, "ana@example.com").await?;
    let ben = user(&state, "ben@example.com").await?;
    let keto = project(&state, &ana).await?;
    let other = project(&state, &ana).await?;
    let keto_id = ProjectId::parse("project", &keto)?;
    let other_id = ProjectId::parse("project", &other)?;
    let owner = PgProjectStore::new(db.pool.clone())
        .project(keto_id)
        .await?
        .user_id;
    let store = PgMemoryStore::new(db.pool.clone());
    let kept = store
        .remember(
            source(owner, keto_id),
            &[
                note(
                    MemoryKind::Decision,
                    "Launch the keto app in January",
                    false,
                ),
                note(
                    MemoryKind::Project,
                    "Keto recipes: Build a recipe app for keto dieters",
                    false,
                ),
            ],
        )
        .await?;
    store
        .remember(
            source(owner, other_id),
            &[note(
                MemoryKind::Project,
                "Keto meal plans: Build a keto meal planner",
                false,
            )],
        )
        .await?;
    let search = |token: &str, project: &str, query: &str| {
        event(
            "apigw-search-memory.json",
            &[
                (SAMPLE_TOKEN, token),
                ("3f1c2a9e-6b7d-4e2f-8a1b-5c9d0e7f4a21", project),
                ("q=pricing&limit=5", query),
            ],
        )
        .map(|r| with_query(r, query))
    };

    let (status, found) = call(
        &state,
        Route::SearchMemory,
        search(&ana, &keto, "q=launch+the+keto+app&limit=5")??,
    )
    .await?;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        found["memories"][0]["content"],
        "Launch the keto app in January"
    );
    assert!(
        found["memories"][0]["similarity"].as_f64().unwrap_or(0.0) > 0.2,
        "{found}"
    );
    let (status, latest) = call(&state, Route::SearchMemory, search(&ana, &keto, "")??).await?;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["memories"].as_array().map(Vec::len), Some(2));
    let (status, refused) = call(
        &state,
        Route::SearchMemory,
        search(&ben, &keto, "q=launch")??,
    )
    .await?;
    assert_eq!(status, 404, "{refused}");
    let (status, refused) = call(
        &state,
        Route::SearchMemory,
        search(&ana, &keto, "limit=0")??,
    )
    .await?;
    assert_eq!(
        (status, refused["field"].as_str()),
        (400, Some("limit")),
        "{refused}"
    );

    let similar = event(
        "apigw-similar-projects.json",
        &[
            (SAMPLE_TOKEN, ana.as_str()),
            ("3f1c2a9e-6b7d-4e2f-8a1b-5c9d0e7f4a21", other.as_str()),
        ],
    )?;
    let (status, similar) = call(&state, Route::SimilarProjects, similar).await?;
    assert_eq!(status, 200, "{similar}");
    assert_eq!(
        similar["projects"][0]["project_id"],
        keto.as_str(),
        "{similar}"
    );

    let forget = |token: &str| {
        event(
            "apigw-forget-memory.json",
            &[
                (SAMPLE_TOKEN, token),
                (
                    "8d4e1f2a-3b5c-4d6e-9f70-1a2b3c4d5e6f",
                    &kept[0].id.to_string(),
                ),
            ],
        )
    };
    let (status, _) = call(&state, Route::ForgetMemory, forget(&ben)?).await?;
    assert_eq!(status, 404);
    let (status, _) = call(&state, Route::ForgetMemory, forget(&ana)?).await?;
    assert_eq!(status, 204);
    let (status, _) = call(&state, Route::ForgetMemory, forget(&ana)?).await?;
    assert_eq!(status, 404);
    Ok(())
}

/// The request with `query` as its query string parameters (the file's sample ones
/// replaced).
fn with_query(request: lambda_http::Request, query: &str) -> anyhow::Result<lambda_http::Request> {
    use lambda_http::RequestExt;
    let pairs: std::collections::HashMap<String, String> = url_pairs(query);
    Ok(request.with_query_string_parameters(pairs))
}

fn url_pairs(query: &str) -> std::collections::HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace('+', " ")))
        .collect()
}

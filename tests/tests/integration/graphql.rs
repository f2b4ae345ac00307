//! `POST /graphql` as the dashboard uses it, through the route with the payload API
//! Gateway delivers: 50 projects with their last 10 runs and each run's cost in a fixed
//! number of SQL statements (counted on the wire), cursor pages, a finished run's tasks,
//! artifacts and approvals as REST shows them, the limits refusing before any SQL, and
//! two users who cannot see each other's data.

use crate::api::{SAMPLE_TOKEN, api, api_over, call, event, user};
use crate::pipeline::pipeline;
use autocrew_api::{ApiState, Route};
use autocrew_shared::adapters::postgres::pool_for;
use autocrew_shared::domain::UserId;
use autocrew_tests::TestDb;
use autocrew_tests::statements::StatementCounter;
use serde_json::{Value, json};
use std::str::FromStr;

/// `POST /graphql` with `query` and `variables`, as `token`.
async fn graphql(
    state: &ApiState,
    token: &str,
    query: &str,
    variables: Value,
) -> anyhow::Result<Value> {
    let body = json!({"query": query, "variables": variables}).to_string();
    let request = event("apigw-graphql.json", &[(SAMPLE_TOKEN, token)])?
        .map(|_| lambda_http::Body::Text(body));
    let (status, answer) = call(state, Route::GraphQl, request).await?;
    anyhow::ensure!(status == 200, "/graphql answered {status}: {answer}");
    Ok(answer)
}

/// The sample dashboard query (`events/apigw-graphql.json`) for `first` projects.
async fn dashboard(state: &ApiState, token: &str, first: u32) -> anyhow::Result<Value> {
    let event: Value = serde_json::from_str(&std::fs::read_to_string(
        autocrew_tests::repo_root().join("events/apigw-graphql.json"),
    )?)?;
    let body: Value = serde_json::from_str(event["body"].as_str().unwrap_or("{}"))?;
    let query = body["query"].as_str().unwrap_or_default();
    graphql(state, token, query, json!({"first": first})).await
}

async fn user_of(state: &ApiState, token: &str) -> anyhow::Result<UserId> {
    Ok(state.keys.verify(token).await?)
}

/// `projects` projects of `user` (`project 0` the oldest), each with `runs` runs
/// (`command 0` the oldest), run `r` of project `p` having cost `p * 100 + r`
/// micro-dollars over two model calls of 100 input and 10 output tokens each. Written in
/// three statements, straight to the database.
async fn seed(db: &TestDb, user: UserId, projects: usize, runs: usize) -> anyhow::Result<()> {
    let client = db.pool.get().await?;
    let (projects, runs) = (projects as i32, runs as i32);
    client
        .execute(
            "INSERT INTO projects (id, user_id, name, description, created_at)
             SELECT gen_random_uuid(), $1, 'project ' || p, '', now() - make_interval(mins => $2 - p)
             FROM generate_series(0, $2 - 1) p",
            &[&user.0, &projects],
        )
        .await?;
    client
        .execute(
            "INSERT INTO runs (id, project_id, user_id, command, execution_name, budget_micro_usd,
                               max_concurrency, created_at)
             SELECT gen_random_uuid(), p.id, p.user_id, 'command ' || r, 'run-' || gen_random_uuid(),
                    1000000, 2, p.created_at + make_interval(secs => r + 1)
             FROM projects p, generate_series(0, $2 - 1) r WHERE p.user_id = $1",
            &[&user.0, &runs],
        )
        .await?;
    client
        .execute(
            "INSERT INTO llm_calls (id, user_id, project_id, run_id, agent, provider, model, outcome,
                                    input_tokens, output_tokens, cost_micro_usd)
             SELECT gen_random_uuid(), r.user_id, r.project_id, r.id, 'developer', 'openai',
                    'gpt-5-mini', 'ok', 100, 10,
                    CASE WHEN half = 0 THEN r.total / 2 ELSE r.total - r.total / 2 END
             FROM (SELECT r.*, split_part(p.name, ' ', 2)::bigint * 100
                               + split_part(r.command, ' ', 2)::bigint AS total
                   FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.user_id = $1) r,
                  generate_series(0, 1) half",
            &[&user.0],
        )
        .await?;
    Ok(())
}

/// The API over `db` with every statement going through a counting proxy.
async fn counted(
    db: &TestDb,
) -> anyhow::Result<(ApiState, StatementCounter, crate::pipeline::Pipeline)> {
    let direct = tokio_postgres::Config::from_str(&db.url())?;
    let host = match direct.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = direct.get_ports().first().copied().unwrap_or(5432);
    let counter = StatementCounter::start(format!("{host}:{port}")).await?;
    // The same database, user and password, through the proxy's port.
    let proxied = tokio_postgres::Config::from_str(&db.url().replace(
        &format!("@{host}:{port}/"),
        &format!("@127.0.0.1:{}/", counter.port),
    ))?;
    anyhow::ensure!(proxied.get_ports() == [counter.port], "{proxied:?}");
    let pool = pool_for(proxied, 8)?;
    let (state, p) = api_over(pool, pipeline(db, None).await?, |_| {}).await?;
    Ok((state, counter, p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_projects_with_their_last_ten_runs_and_costs_take_a_fixed_few_statements()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    // Every statement of the API's state goes through a counting proxy to the database.
    let (state, counter, _p) = counted(&db).await?;

    let token = user(&state, "ana@example.com").await?;
    let ana = user_of(&state, &token).await?;
    seed(&db, ana, 50, 12).await?;

    // A fresh connection runs tokio-postgres's look-ups of the enum types it meets (once
    // per connection): a first query warms the pool, as a function's first request does.
    let before = counter.executed();
    dashboard(&state, &token, 5).await?;
    let cold = counter.executed() - before;
    let before = counter.executed();
    let answer = dashboard(&state, &token, 50).await?;
    let statements = counter.executed() - before;
    assert!(answer.get("errors").is_none(), "{answer}");

    // What it answered: 50 projects, newest first, each with its 10 newest runs of 12 and
    // their costs as recorded.
    let projects = answer["data"]["me"]["projects"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(projects.len(), 50);
    for (i, edge) in projects.iter().enumerate() {
        let p = 49 - i;
        let project = &edge["node"];
        assert_eq!(project["name"], format!("project {p}"));
        let runs = project["runs"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(runs.len(), 10, "{project}");
        assert_eq!(project["runs"]["pageInfo"]["hasNextPage"], true);
        for (j, run) in runs.iter().enumerate() {
            let r = 11 - j;
            assert_eq!(run["node"]["command"], format!("command {r}"));
            assert_eq!(run["node"]["cost"]["cost"], json!(p * 100 + r), "{run}");
            assert_eq!(run["node"]["cost"]["usage"]["input"], json!(200));
        }
        let all: usize = (0..12).map(|r| p * 100 + r).sum();
        assert_eq!(project["cost"]["cost"], json!(all));
        assert_eq!(project["cost"]["calls"], json!(24));
    }

    // The same query for 5 projects takes as many statements: the count does not grow
    // with the rows.
    let before = counter.executed();
    let small = dashboard(&state, &token, 5).await?;
    let few = counter.executed() - before;
    assert!(small.get("errors").is_none(), "{small}");
    println!(
        "dashboard query: {statements} SQL statements for 50 projects x 10 runs with costs, {few} for 5 projects ({cold} on a cold pool)"
    );
    assert_eq!(statements, few);
    // The rate limit's, the user, the projects, their costs, their runs, the runs' costs.
    assert!(statements <= 6, "{statements} statements");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_their_cursors_and_a_finished_run_shows_what_rest_shows() -> anyhow::Result<()>
{
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let token = user(&state, "ana@example.com").await?;
    let ana = user_of(&state, &token).await?;
    seed(&db, ana, 5, 0).await?;

    // Pages of 2: newest first, no overlap, the last without a next page.
    let query = "query($after: String) { me { projects(first: 2, after: $after) { pageInfo { hasNextPage endCursor } nodes { name } } } }";
    let mut names = Vec::new();
    let mut after = Value::Null;
    loop {
        let answer = graphql(&state, &token, query, json!({"after": after})).await?;
        let page = &answer["data"]["me"]["projects"];
        for node in page["nodes"].as_array().cloned().unwrap_or_default() {
            names.push(node["name"].as_str().unwrap_or_default().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        names,
        [
            "project 4",
            "project 3",
            "project 2",
            "project 1",
            "project 0"
        ]
    );

    // A finished run of the offline crew: the same tasks, artifacts and approvals as
    // GET /runs/{id}.
    let project = crate::api::project(&state, &token).await?;
    let run = crate::browse::finished_run(&state, &p, &token, &project).await?;
    let (_, rest) = call(
        &state,
        Route::GetRun,
        event(
            "apigw-get-run.json",
            &[
                (SAMPLE_TOKEN, token.as_str()),
                ("0b9e5d3c-7a41-4f2e-8c6d-1e2f3a4b5c6d", run.as_str()),
            ],
        )?,
    )
    .await?;
    let answer = graphql(
        &state,
        &token,
        "query($id: ID!) { run(id: $id) { status project { id } cost { calls cost }
            tasks { key status agent attempts { attemptNo status } cost { calls } }
            artifacts { key sizeBytes url } approvals { tool status payloadHash } } }",
        json!({"id": run}),
    )
    .await?;
    assert!(answer.get("errors").is_none(), "{answer}");
    let graph = &answer["data"]["run"];
    assert_eq!(graph["status"], "SUCCEEDED");
    assert_eq!(graph["project"]["id"], project.as_str());
    let keys = |tasks: &Value, field: &str| -> Vec<String> {
        tasks
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|x| x[field].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(keys(&graph["tasks"], "key"), keys(&rest["tasks"], "key"));
    assert_eq!(
        keys(&graph["artifacts"], "key"),
        keys(&rest["artifacts"], "key")
    );
    assert!(
        graph["artifacts"][0]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http")),
        "{graph}"
    );
    assert_eq!(
        graph["approvals"].as_array().map(Vec::len),
        rest["approvals"].as_array().map(Vec::len)
    );
    assert_eq!(graph["cost"]["calls"], rest["totals"]["calls"], "{rest}");
    let attempts = graph["tasks"][0]["attempts"].as_array().map(Vec::len);
    assert!(attempts.is_some_and(|n| n >= 1), "{graph}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_the_limits_are_refused_before_any_sql() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, counter, _p) = counted(&db).await?;
    let token = user(&state, "ana@example.com").await?;

    // A query that reads nothing costs the rate limit's statements alone.
    let before = counter.executed();
    let answer = graphql(&state, &token, "{ __typename }", json!({})).await?;
    assert_eq!(answer["data"]["__typename"], "Query");
    let baseline = counter.executed() - before;

    let too_deep = "{ me { projects(first: 1) { edges { node { runs(first: 1) { edges { node { project { runs(first: 1) { edges { node { project { runs(first: 1) { edges { node { id } } } } } } } } } } } } } } } }";
    let too_complex = "{ me { projects(first: 100) { edges { node { runs(first: 100) { edges { node { tasks { attempts { status } } } } } } } } } }";
    for (query, words) in [(too_deep, "levels"), (too_complex, "complexity")] {
        let before = counter.executed();
        let answer = graphql(&state, &token, query, json!({})).await?;
        assert_eq!(counter.executed() - before, baseline, "SQL ran for {query}");
        assert!(answer.get("data").is_none(), "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{message}");
    }

    // Not a GraphQL request at all: a 400 naming the body.
    let request = event("apigw-graphql.json", &[(SAMPLE_TOKEN, token.as_str())])?
        .map(|_| lambda_http::Body::Text(json!({"qeury": "{ me { id } }"}).to_string()));
    let (status, answer) = call(&state, Route::GraphQl, request).await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "body.field");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("qeury")),
        "{answer}"
    );
    // No token: 401, as every signed-in route.
    let request = event("apigw-graphql.json", &[(SAMPLE_TOKEN, "not.a.token")])?;
    let (status, _) = call(&state, Route::GraphQl, request).await?;
    assert_eq!(status, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_b_sees_none_of_user_as_data() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let (state, p) = api(&db).await?;
    let a = user(&state, "ana@example.com").await?;
    let b = user(&state, "bo@example.com").await?;
    let project = crate::api::project(&state, &a).await?;
    let run = crate::browse::finished_run(&state, &p, &a, &project).await?;
    let task = state
        .tasks
        .run_tasks(autocrew_shared::domain::RunId::parse("run", &run)?)
        .await?
        .first()
        .map(|t| t.id.to_string())
        .unwrap_or_default();

    let answer = graphql(
        &state,
        &b,
        "query($p: ID!, $r: ID!, $t: ID!) { project(id: $p) { id } run(id: $r) { id } task(id: $t) { id }
           me { projects { nodes { id } } runs { nodes { id } } } }",
        json!({"p": project, "r": run, "t": task}),
    )
    .await?;
    assert!(answer.get("errors").is_none(), "{answer}");
    let data = &answer["data"];
    assert!(
        data["project"].is_null() && data["run"].is_null() && data["task"].is_null(),
        "{data}"
    );
    assert_eq!(data["me"]["projects"]["nodes"], json!([]));
    assert_eq!(data["me"]["runs"]["nodes"], json!([]));

    // A's project named in B's cost report: an argument naming none of B's projects.
    let answer = graphql(
        &state,
        &b,
        "query($p: ID!) { me { costs(projectId: $p) { total { calls } } } }",
        json!({"p": project}),
    )
    .await?;
    assert_eq!(
        answer["errors"][0]["extensions"],
        json!({"code": "BAD_USER_INPUT", "argument": "projectId"}),
        "{answer}"
    );
    assert_eq!(
        answer["errors"][0]["message"],
        "projectId: you have no project of this id"
    );
    assert_eq!(answer["errors"][0]["path"], json!(["me", "costs"]));

    // A sees their own; a bad id is named.
    let answer = graphql(
        &state,
        &a,
        "query($p: ID!) { project(id: $p) { id runs { nodes { id } } } bad: run(id: \"nope\") { id } }",
        json!({"p": project}),
    )
    .await?;
    assert_eq!(answer["data"]["project"]["id"], project.as_str());
    assert_eq!(
        answer["data"]["project"]["runs"]["nodes"][0]["id"],
        run.as_str()
    );
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    assert_eq!(answer["errors"][0]["extensions"]["argument"], "id");
    Ok(())
}

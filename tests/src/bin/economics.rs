//! `economics`: what the crew costs per task and per run with real models, and each plan's
//! AI cost as a share of its price. Runs the commands of `tests/economics/assumptions.json`
//! through a runner whose model is the offline one behind the OpenAI wire format (so every
//! real prompt, tool list and schema crosses HTTP and is recorded), counts each call's input
//! with a real tokenizer, and prices it at the model its tier routes to. Output tokens are
//! the stated assumptions; the cache hit rate is the one the runs had.

use anyhow::{Context, ensure};
use autocrew_cli::approvals::{Verdict, decide};
use autocrew_cli::client::{Client, sign_up};
use autocrew_shared::crew::AgentProfiles;
use autocrew_shared::domain::models::ModelTable;
use autocrew_shared::domain::routing::RoutingPolicy;
use autocrew_shared::domain::{AgentKind, Complexity, Plans};
use autocrew_tests::chaos::{Runner, Settings};
use autocrew_tests::compatible_server::CompatibleServer;
use autocrew_tests::unique;
use clap::Parser;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    about = "Cost per task and per run on real models, and each plan's AI cost as a share of its price."
)]
struct Args {
    /// The runner binary (`autocrew-local`).
    #[arg(long)]
    runner: PathBuf,
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[arg(long, default_value_t = 8797)]
    port: u16,
    #[arg(long, default_value = "tests/economics/assumptions.json")]
    assumptions: PathBuf,
    #[arg(long, default_value = ".local/economics-runner.log")]
    log: PathBuf,
}

/// One command's run, followed to its end; approvals are given as they come.
async fn run(client: &Client, project: &str, command: &str) -> anyhow::Result<bool> {
    let mut stream = client.follow(project, 0).await?;
    let accepted = client
        .post(
            &format!("/projects/{project}/commands"),
            &json!({"command": command}),
            "post the command",
        )
        .await?;
    let run = accepted["run_id"].as_str().context("no run id")?.to_owned();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(180), stream.next())
            .await
            .with_context(|| format!("run {run} did not end in 180 s"))??
            .context("the live stream closed")?
            .to_value();
        if event["run_id"].as_str() != Some(run.as_str()) {
            continue;
        }
        match event["kind"].as_str() {
            Some("approval_requested") => {
                let p = &event["payload"];
                decide(
                    client,
                    p["approval_id"].as_str().unwrap_or_default(),
                    Verdict::Approve,
                    p["payload_hash"].as_str().unwrap_or_default(),
                    None,
                )
                .await?;
            }
            Some("run_completed") => return Ok(true),
            Some("run_failed" | "run_cancelled") => return Ok(false),
            _ => {}
        }
    }
}

/// Everything a Chat Completions request sends as input: messages, tools, the schema.
fn input_text(request: &Value) -> String {
    let mut text = String::new();
    for message in request["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(s) => text.push_str(s),
            other => text.push_str(&other.to_string()),
        }
        if let Some(calls) = message.get("tool_calls") {
            text.push_str(&calls.to_string());
        }
        text.push('\n');
    }
    if let Some(tools) = request.get("tools") {
        text.push_str(&tools.to_string());
    }
    if let Some(format) = request.get("response_format") {
        text.push_str(&format.to_string());
    }
    text
}

/// The agent whose system prompt a request starts with.
fn agent_of(request: &Value, profiles: &AgentProfiles) -> Option<AgentKind> {
    let system = request["messages"][0]["content"].as_str()?;
    AgentKind::ALL
        .iter()
        .copied()
        .find(|a| system.starts_with(profiles.get(*a).system.as_str()))
}

fn usd(micro: f64) -> String {
    format!("${:.4}", micro / 1_000_000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let assumptions: Value =
        serde_json::from_str(&std::fs::read_to_string(args.root.join(&args.assumptions))?)?;
    let commands: Vec<(String, String)> = assumptions["commands"]
        .as_array()
        .context("no commands")?
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap_or("").to_owned(),
                c["command"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    ensure!(
        commands.len() >= 20,
        "at least 20 commands, got {}",
        commands.len()
    );

    let model = Arc::new(CompatibleServer::start(0).await?);
    let settings = Settings {
        runner: args.runner.clone(),
        root: args.root.clone(),
        port: args.port,
        prefix: format!("economics-{}", std::process::id()),
        log: args.log.clone(),
        round_timeout: Duration::from_secs(180),
        restart_postgres: None,
        fakes: None,
        model: Some(model.clone()),
    };
    let runner = Runner::start(&settings).await?;
    let base = format!("http://127.0.0.1:{}", args.port);
    // One user per kind of command (an address may sign up 10 times a minute).
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    let mut users = Vec::new();
    let mut succeeded = 0;
    for (i, (kind, command)) in commands.iter().enumerate() {
        if !clients.contains_key(kind) {
            let client = sign_up(
                &base,
                &format!("{}@economics.local", unique("econ")),
                "economics password 1",
            )
            .await?;
            users.push(
                client.get("/me", "read the account").await?["user"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            clients.insert(kind.clone(), client);
        }
        let client = &clients[kind];
        let project = client
            .post("/projects", &json!({"name": kind}), "create a project")
            .await?;
        let project = project["id"].as_str().context("no project id")?.to_owned();
        let ok = run(client, &project, command).await?;
        succeeded += usize::from(ok);
        eprintln!(
            "[{:>2}/{}] {kind:<10} {} {command}",
            i + 1,
            commands.len(),
            if ok { "ok    " } else { "FAILED" }
        );
    }
    runner.kill().await?;
    ensure!(
        succeeded == commands.len(),
        "{} of {} runs failed",
        commands.len() - succeeded,
        commands.len()
    );

    // The crew's real input, per agent, counted with OpenAI's o200k_base tokenizer.
    let bpe = tiktoken_rs::o200k_base().context("the o200k_base tokenizer")?;
    let routing = RoutingPolicy::builtin().context("the routing policy")?;
    let profiles = AgentProfiles::builtin(&routing).context("the agent profiles")?;
    let mut input: BTreeMap<AgentKind, Vec<usize>> = BTreeMap::new();
    for request in model.requests() {
        if let Some(agent) = agent_of(&request, &profiles) {
            input
                .entry(agent)
                .or_default()
                .push(bpe.encode_with_special_tokens(&input_text(&request)).len());
        }
    }

    // What the ledger says of these runs: tasks by agent and complexity, and cache hits.
    let (_, db) = autocrew_tests::stack_database().await?;
    let ids: Vec<uuid::Uuid> = users.iter().filter_map(|u| u.parse().ok()).collect();
    let mut tasks: BTreeMap<AgentKind, BTreeMap<Complexity, u64>> = BTreeMap::new();
    for row in db
        .query(
            "SELECT t.agent, t.complexity, count(*) FROM tasks t JOIN runs r ON r.id = t.run_id
                WHERE r.user_id = ANY($1) AND t.status = 'completed' GROUP BY 1, 2",
            &[&ids],
        )
        .await?
    {
        let n: i64 = row.get(2);
        *tasks
            .entry(row.get(0))
            .or_default()
            .entry(row.get(1))
            .or_default() += n as u64;
    }
    let runs = commands.len() as u64;
    tasks
        .entry(AgentKind::Orchestrator)
        .or_default()
        .insert(Complexity::Complex, runs);
    let calls = db
        .query_one("SELECT count(*) FILTER (WHERE outcome = 'cache_hit'), count(*) FILTER (WHERE outcome IN ('ok', 'cache_hit'))
                    FROM llm_calls WHERE user_id = ANY($1) AND model NOT LIKE '%hash%'", &[&ids])
        .await?;
    let (hits, answered): (i64, i64) = (calls.get(0), calls.get(1));
    let hit_rate = if answered > 0 {
        hits as f64 / answered as f64
    } else {
        0.0
    };

    // Each tier's model and price, with every provider configured.
    let table = ModelTable::builtin().context("the model table")?;
    let mut tier_price = BTreeMap::new();
    for tier in &routing.tiers {
        let first = tier.chain.first().context("an empty chain")?;
        let price = table
            .price(&first.provider, &first.model)
            .context("a routed model has no price")?
            .base;
        tier_price.insert(
            tier.name.clone(),
            (format!("{}/{}", first.provider, first.model), price),
        );
    }

    let per_task_out = &assumptions["output_tokens_per_task"];
    let mut total = 0.0;
    let mut by_tier: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut rows = Vec::new();
    for (agent, counts) in &tasks {
        let n_tasks: u64 = counts.values().sum();
        let inputs = input.get(agent).cloned().unwrap_or_default();
        if n_tasks == 0 || inputs.is_empty() {
            continue;
        }
        let calls_per_task = inputs.len() as f64 / n_tasks as f64;
        let out_per_call = per_task_out[agent.as_str()].as_f64().unwrap_or(1500.0) / calls_per_task;
        let policy = &profiles.get(*agent).model_policy;
        let mut cost = 0.0;
        for (complexity, n) in counts {
            let share = *n as f64 / n_tasks as f64;
            let tier = policy.tier_for(*complexity).to_owned();
            let (_, price) = &tier_price[&tier];
            let tier_cost: f64 = inputs
                .iter()
                .map(|i| {
                    share
                        * (*i as f64 * price.input.0 as f64 + out_per_call * price.output.0 as f64)
                        / 1_000_000.0
                })
                .sum();
            cost += tier_cost;
            let entry = by_tier.entry(tier).or_default();
            entry.0 += tier_cost;
            entry.1 += share * inputs.len() as f64;
        }
        total += cost;
        let mean_in = inputs.iter().sum::<usize>() as f64 / inputs.len() as f64;
        rows.push(format!(
            "| {} | {n_tasks} | {:.1} | {:.0} | {:.0} | {} |",
            agent.as_str(),
            calls_per_task,
            mean_in,
            out_per_call,
            usd(cost / n_tasks as f64)
        ));
    }
    let worker_tasks: u64 = tasks
        .iter()
        .filter(|(a, _)| **a != AgentKind::Orchestrator)
        .flat_map(|(_, c)| c.values())
        .sum();
    let with_cache = total * (1.0 - hit_rate);
    let per_run = with_cache / runs as f64;
    let per_task = with_cache / worker_tasks.max(1) as f64;

    println!(
        "economics: {runs} commands (apps, landing pages, outreach, daily-loop updates, ops), {} model calls recorded, all runs completed",
        model.requests().len()
    );
    println!(
        "input tokens: counted with o200k_base (tiktoken-rs), OpenAI's tokenizer; Anthropic and Gemini publish no offline tokenizer for their current models, so their input is counted the same way"
    );
    println!(
        "output tokens: assumed per task ({}); cache hit rate observed: {:.1}% ({hits} of {answered} answers)\n",
        args.assumptions.display(),
        hit_rate * 100.0
    );
    println!(
        "| agent | tasks | calls a task | input tokens a call (measured) | output tokens a call (assumed) | cost a task |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!("{row}");
    }
    println!("\n| tier | model | share of calls | share of cost |");
    println!("|---|---|---:|---:|");
    let all_calls: f64 = by_tier.values().map(|(_, c)| c).sum();
    for (tier, (cost, n)) in &by_tier {
        println!(
            "| {tier} | {} | {:.0}% | {:.0}% |",
            tier_price[tier].0,
            n / all_calls * 100.0,
            cost / total * 100.0
        );
    }
    let target_task: f64 = assumptions["targets"]["usd_per_task"]
        .as_str()
        .unwrap_or("0.10")
        .parse()?;
    println!(
        "\ncost per task {} (target ${target_task:.2}: {}), per run {}; the response cache saved {} a run",
        usd(per_task),
        if per_task / 1e6 <= target_task {
            "met"
        } else {
            "missed"
        },
        usd(per_run),
        usd((total - with_cache) / runs as f64)
    );

    let plans = Plans::embedded().context("the plans")?;
    let share_target: f64 = assumptions["targets"]["ai_share_of_revenue"]
        .as_str()
        .unwrap_or("0.40")
        .parse()?;
    println!(
        "\n| plan | price a month | runs a month (assumed) | AI cost a month | share of price | runs the included budget covers |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for plan in plans.plans.iter().filter(|p| p.stripe_prices.is_some()) {
        let price = plan.price(autocrew_shared::domain::Interval::Month);
        let runs = assumptions["runs_per_month"][plan.id.as_str()]
            .as_f64()
            .unwrap_or(0.0);
        let cost = runs * per_run;
        let share = cost / price.0 as f64;
        let covered = (price.0 as f64 * share_target) / per_run;
        println!(
            "| {} | ${:.2} | {runs:.0} | {} | {:.1}% {} | {covered:.0} |",
            plan.name,
            price.0 as f64 / 1e6,
            usd(cost),
            share * 100.0,
            if share <= share_target {
                ""
            } else {
                "(over 40%)"
            }
        );
    }
    Ok(())
}

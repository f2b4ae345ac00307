//! `autocrew`: operate the stack from a terminal. `autocrew --help` lists the commands;
//! `autocrew completions bash` prints shell completions.

use anyhow::Context;
use autocrew_cli::approvals::{Verdict, review_and_decide};
use autocrew_cli::args::DecisionArgs;
use autocrew_cli::args::{ArtifactsAction, Cli, Command, DlqAction};
use autocrew_cli::client::NoBody;
use autocrew_cli::{account, browse, chat, connect, dlq, health, run, schedule, session};
use autocrew_shared::adapters::postgres;
use autocrew_shared::config::Config;
use autocrew_shared::domain::EventKind;
use autocrew_shared::domain::requests::Resume;
use clap::{CommandFactory, Parser};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    autocrew_shared::telemetry::init();
    let cli = Cli::parse();
    match dispatch(cli).await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            // The whole cause chain on one line, and no backtrace: this is for people.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` when it ran but the outcome was a failure.
async fn dispatch(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Signup(args) => account::signup(&args).await.map(|()| true),
        Command::Login(args) => account::login(&args).await.map(|()| true),
        Command::Logout => account::logout().await.map(|()| true),
        Command::Me { session } => account::me(&session).await.map(|()| true),
        Command::Timezone { zone, session } => account::timezone(zone.as_deref(), &session)
            .await
            .map(|()| true),
        Command::Billing { action, session } => autocrew_cli::billing::billing(action, &session)
            .await
            .map(|()| true),
        Command::Verify { code, api } => account::verify(&code, &api).await.map(|()| true),
        Command::ForgotPassword { email, api } => {
            account::forgot_password(&email, &api).await.map(|()| true)
        }
        Command::ResetPassword {
            code,
            password_stdin,
            api,
        } => account::reset_password(&code, password_stdin, &api)
            .await
            .map(|()| true),
        Command::Mail { to, limit } => account::mail(to.as_deref(), limit).await.map(|()| true),
        Command::Projects {
            archived,
            limit,
            session,
        } => browse::projects(archived, limit, &session)
            .await
            .map(|()| true),
        Command::Runs {
            project,
            status,
            limit,
            session,
        } => browse::runs(project.as_deref(), status.as_deref(), limit, &session)
            .await
            .map(|()| true),
        Command::Connect {
            service,
            device,
            browser,
            api,
        } => match (device, browser) {
            (true, _) => connect::connect_by_device(&service, &api.api).await,
            (_, true) => connect::connect_by_browser(&service, &api.api).await,
            _ => connect::connect(&service, &api.api).await,
        }
        .map(|()| true),
        Command::Connections { session } => connect::connections(&session).await.map(|()| true),
        Command::Chat {
            project,
            message,
            command,
            show,
            limit,
            session,
        } => match (show, message) {
            (false, Some(message)) => chat::chat(&project, &message, command, &session).await,
            _ => chat::show(&project, limit, &session).await,
        }
        .map(|()| true),
        Command::Artifacts { action } => match action {
            ArtifactsAction::List {
                run_id,
                urls,
                session,
            } => browse::list_artifacts(&run_id, urls, &session)
                .await
                .map(|()| true),
            ArtifactsAction::Get {
                run_id,
                to,
                session,
            } => browse::get_artifacts(&run_id, &to, &session)
                .await
                .map(|()| true),
        },
        Command::Run(args) => {
            let report = run::run_in(
                &args.api.api,
                &args.command,
                args.project.as_deref(),
                (&args.follow).into(),
            )
            .await?;
            println!("{}", run::summary(&report));
            if let Some(t) = run::timings(&report) {
                println!(
                    "Timing: first task started {} ms after the command was accepted; orchestration overhead per task: median {} ms, max {} ms",
                    t.first_task_ms, t.overhead_median_ms, t.overhead_max_ms
                );
            }
            Ok(report.succeeded)
        }
        Command::Cancel { run_id, session } => {
            let client = session::client(&session)?;
            let answer = client
                .post(
                    &format!("/runs/{run_id}/cancel"),
                    &NoBody {},
                    "cancel the run",
                )
                .await?;
            let run = &answer["run"];
            println!(
                "run {} {}: {}",
                run["id"].as_str().unwrap_or(&run_id),
                run["status"].as_str().unwrap_or("?"),
                run["error"].as_str().unwrap_or("")
            );
            Ok(true)
        }
        Command::Resume {
            run_id,
            budget_usd,
            follow,
            session,
        } => {
            let client = session::client(&session)?;
            let body = Resume { budget_usd };
            let answer = client
                .post(&format!("/runs/{run_id}/resume"), &body, "resume the run")
                .await?;
            eprintln!(
                "run {run_id} resumed as execution {}",
                answer["run"]["execution_name"].as_str().unwrap_or("?")
            );
            let report =
                run::follow_steered(&client, &run_id, EventKind::RunResumed, (&follow).into())
                    .await?;
            println!("{}", run::summary(&report));
            Ok(report.succeeded)
        }
        Command::Retry {
            task_id,
            follow,
            session,
        } => {
            let client = session::client(&session)?;
            let path = format!("/tasks/{task_id}/retry");
            let answer = client.post(&path, &NoBody {}, "retry the task").await?;
            let task = &answer["task"];
            let run_id = task["run_id"].as_str().unwrap_or_default().to_owned();
            let key = task["key"].as_str().unwrap_or("?").to_owned();
            eprintln!("task {key} of run {run_id} starts again");
            let report =
                run::follow_steered(&client, &run_id, EventKind::TaskRetried, (&follow).into())
                    .await?;
            println!("{}", run::summary(&report));
            Ok(report.succeeded)
        }
        Command::Approve(args) => decide(args, Verdict::Approve).await,
        Command::Reject(args) => decide(args, Verdict::Reject).await,
        Command::Schedule { action } => schedule::act(action).await.map(|()| true),
        Command::Dlq { action } => {
            let config = Config::from_env().context("failed to read configuration")?;
            let sqs = aws_sdk_sqs::Client::new(
                &autocrew_shared::adapters::aws::sdk_config(&config.aws).await,
            );
            match action {
                DlqAction::List { prefix } => {
                    for dead in dlq::find(&sqs, &prefix).await? {
                        println!("{:<48} {:>4} waiting", dead.dlq_name, dead.waiting);
                        if dead.waiting > 0 {
                            for m in dlq::peek(&sqs, &dead.dlq_url, 10).await? {
                                let body: String = m.body.chars().take(160).collect();
                                println!(
                                    "  {} (received {} times): {body}",
                                    m.message_id, m.receive_count
                                );
                            }
                        }
                    }
                }
                DlqAction::Redrive { prefix, queue } => {
                    for dead in dlq::find(&sqs, &prefix).await? {
                        if queue.as_ref().is_some_and(|q| *q != dead.dlq_name) {
                            continue;
                        }
                        let moved = dlq::redrive(&sqs, &dead).await?;
                        println!(
                            "{}: {moved} message(s) sent back to {}",
                            dead.dlq_name, dead.source_url
                        );
                    }
                }
            }
            Ok(true)
        }
        Command::Migrate => {
            let pool = postgres::connect(
                &autocrew_shared::adapters::database_config(&autocrew_shared::config::ProcessEnv)
                    .await?,
            )?;
            let report = postgres::migrate(&pool)
                .await
                .context("failed to apply migrations")?;
            println!(
                "migrations: {} applied now, {} already applied",
                report.applied.len(),
                report.already_applied
            );
            Ok(true)
        }
        Command::Health => {
            let config = Config::from_env().context("failed to read configuration")?;
            let pool = postgres::connect(
                &autocrew_shared::adapters::database_config(&autocrew_shared::config::ProcessEnv)
                    .await?,
            )?;
            health::check(&config, &pool).await?;
            Ok(true)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "autocrew",
                &mut std::io::stdout(),
            );
            Ok(true)
        }
    }
}

/// `autocrew approve` / `autocrew reject`.
async fn decide(args: DecisionArgs, verdict: Verdict) -> anyhow::Result<bool> {
    let client = session::client(&args.session)?;
    review_and_decide(
        &client,
        &args.approval_id,
        verdict,
        args.hash.as_deref(),
        args.reason.as_deref(),
    )
    .await?;
    Ok(true)
}

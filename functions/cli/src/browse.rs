//! `autocrew projects`, `runs` and `artifacts list|get`: what the session's user has.

use crate::args::SessionArgs;
use crate::run::short_key;
use crate::session;
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Component, Path};

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_default()
}

fn day(time: &Value) -> String {
    time.as_str()
        .map(|t| t.chars().take(16).collect::<String>().replace('T', " "))
        .unwrap_or_default()
}

pub async fn projects(archived: bool, limit: u32, args: &SessionArgs) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let page = client
        .get(
            &format!("/projects?archived={archived}&limit={limit}"),
            "list the projects",
        )
        .await?;
    let projects = items(&page);
    if projects.is_empty() {
        println!("no {}projects", if archived { "archived " } else { "" });
    }
    for p in &projects {
        println!(
            "{}  {}  {}",
            p["id"].as_str().unwrap_or("?"),
            day(&p["created_at"]),
            p["name"].as_str().unwrap_or("")
        );
    }
    if !page["next_cursor"].is_null() {
        println!("(more: raise --limit)");
    }
    Ok(())
}

pub async fn runs(
    project: Option<&str>,
    status: Option<&str>,
    limit: u32,
    args: &SessionArgs,
) -> anyhow::Result<()> {
    let client = session::client(args)?;
    let mut path = format!("/runs?limit={limit}");
    if let Some(project) = project {
        path.push_str(&format!("&project_id={}", project.trim()));
    }
    if let Some(status) = status {
        path.push_str(&format!("&status={}", status.trim()));
    }
    let page = client.get(&path, "list the runs").await?;
    let runs = items(&page);
    if runs.is_empty() {
        println!("no runs");
    }
    for r in &runs {
        let spent = r["spent"].as_i64().unwrap_or(0);
        let command: String = r["command"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        println!(
            "{}  {}  {:<10} ${}.{:06}  {command}",
            r["id"].as_str().unwrap_or("?"),
            day(&r["created_at"]),
            r["status"].as_str().unwrap_or("?"),
            spent / 1_000_000,
            spent % 1_000_000,
        );
    }
    if !page["next_cursor"].is_null() {
        println!("(more: raise --limit)");
    }
    Ok(())
}

async fn run_artifacts(
    run_id: &str,
    args: &SessionArgs,
) -> anyhow::Result<(crate::client::Client, Vec<Value>)> {
    let client = session::client(args)?;
    let run = client
        .get(&format!("/runs/{}", run_id.trim()), "read the run")
        .await?;
    let artifacts = run["artifacts"].as_array().cloned().unwrap_or_default();
    Ok((client, artifacts))
}

pub async fn list_artifacts(run_id: &str, urls: bool, args: &SessionArgs) -> anyhow::Result<()> {
    let (_, artifacts) = run_artifacts(run_id, args).await?;
    if artifacts.is_empty() {
        println!("no artifacts");
    }
    for a in &artifacts {
        println!(
            "{:<48} {:>8} bytes  {}",
            short_key(a["key"].as_str().unwrap_or("")),
            a["size_bytes"],
            a["content_type"].as_str().unwrap_or("")
        );
        if urls {
            println!("  {}", a["url"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

/// A relative path made of plain parts only: a key can never write outside the folder.
fn safe_relative(key: &str) -> anyhow::Result<&Path> {
    let path = Path::new(key);
    if key.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!("refusing to write artifact {key:?}: not a plain relative path");
    }
    Ok(path)
}

pub async fn get_artifacts(run_id: &str, to: &Path, args: &SessionArgs) -> anyhow::Result<()> {
    let (_, artifacts) = run_artifacts(run_id, args).await?;
    let http = reqwest::Client::new();
    let mut bytes_total = 0usize;
    for a in &artifacts {
        let key = short_key(a["key"].as_str().unwrap_or(""));
        let target = to.join(safe_relative(key)?);
        let url = a["url"]
            .as_str()
            .context("an artifact without a download link")?;
        let response = http.get(url).send().await?;
        if !response.status().is_success() {
            bail!("could not download {key}: {}", response.status());
        }
        let body = response.bytes().await?;
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&target, &body)
            .with_context(|| format!("cannot write {}", target.display()))?;
        bytes_total += body.len();
        println!("{:>8} bytes  {}", body.len(), target.display());
    }
    println!(
        "{} artifact(s), {bytes_total} bytes, in {}",
        artifacts.len(),
        to.display()
    );
    Ok(())
}

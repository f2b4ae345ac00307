//! The tools agents may call. Their names and argument schemas live here because their
//! behaviour is code (in the agent step); which agent gets which is configuration
//! (`shared/data/agents.json`).

use super::schema::{Checker, SchemaViolations};
use crate::ports::llm::ToolSpec;
use serde_json::json;

/// Reads what an upstream task produced: its summary and files.
pub const READ_UPSTREAM: &str = "read_upstream";
/// Stores a file as an artifact of the task.
pub const WRITE_FILE: &str = "write_file";
/// Ends the task with a summary.
pub const FINISH: &str = "finish";
/// Makes a PNG image (a logo, an app icon) from a prompt, priced against the budget.
pub const GENERATE_IMAGE: &str = "generate_image";
/// Makes a file public under the project's stable link.
pub const PUBLISH: &str = "publish";
/// Commits the task's files to a GitHub repository (made on first use; later runs open a
/// pull request).
pub const PUSH_CODE: &str = "push_code";

/// Sends one email through the user's Resend account.
pub const SEND_EMAIL: &str = "send_email";
/// Posts on X as the user's connected account.
pub const POST_TO_X: &str = "post_to_x";
/// Posts on LinkedIn as the user's connected member.
pub const POST_TO_LINKEDIN: &str = "post_to_linkedin";

/// Deploys a folder of files as a static site on the user's Vercel account.
pub const DEPLOY_SITE: &str = "deploy_site";

/// Builds the app for iOS and Android on the user's Expo account (EAS), from the GitHub
/// repository its EAS project is linked to: a long job, watched without holding a worker.
pub const BUILD_APP: &str = "build_app";

/// Every tool name an agent profile may list.
pub const KNOWN: [&str; 11] = [
    READ_UPSTREAM,
    WRITE_FILE,
    GENERATE_IMAGE,
    PUBLISH,
    PUSH_CODE,
    SEND_EMAIL,
    POST_TO_X,
    POST_TO_LINKEDIN,
    DEPLOY_SITE,
    BUILD_APP,
    FINISH,
];

/// The tools whose calls act in the world. Each call asks a person's approval of its
/// exact payload unless the user's policy auto-approves that tool (`ToolPolicies`), and
/// runs once per idempotency key.
pub const EFFECTS: [&str; 7] = [
    PUBLISH,
    PUSH_CODE,
    SEND_EMAIL,
    POST_TO_X,
    POST_TO_LINKEDIN,
    DEPLOY_SITE,
    BUILD_APP,
];

/// Whether a call of `tool` starts a long job its task waits for, parked, until the job
/// ends (see `DeploymentStore::park_for_job`).
pub fn starts_long_job(tool: &str) -> bool {
    tool == BUILD_APP || tool == DEPLOY_SITE
}

/// Whether a call of `tool` acts in the world (see `EFFECTS`).
pub fn acts_in_world(tool: &str) -> bool {
    EFFECTS.contains(&tool)
}

/// How many calls of a tool that acts in the world one user may make a minute, across all
/// their runs: a runaway loop, or an instruction slipped into a file, cannot spray email,
/// posts or deploys.
pub fn calls_per_minute(tool: &str) -> u32 {
    match tool {
        POST_TO_X | POST_TO_LINKEDIN => 5,
        SEND_EMAIL => 10,
        PUSH_CODE | DEPLOY_SITE | BUILD_APP | GENERATE_IMAGE => 10,
        _ => 30,
    }
}

/// The connected account a tool acts through, if it needs one.
pub fn service(tool: &str) -> Option<crate::domain::Service> {
    match tool {
        PUSH_CODE => Some(crate::domain::Service::Github),
        SEND_EMAIL => Some(crate::domain::Service::Resend),
        POST_TO_X => Some(crate::domain::Service::X),
        POST_TO_LINKEDIN => Some(crate::domain::Service::Linkedin),
        DEPLOY_SITE => Some(crate::domain::Service::Vercel),
        BUILD_APP => Some(crate::domain::Service::Expo),
        _ => None,
    }
}

/// The idempotency scope of tool calls that act in the world (keys from `call_key`).
pub const IDEMPOTENCY_SCOPE: &str = "tool";

/// The largest file `write_file` accepts, in bytes.
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// The spec sent to the model for the tool called `name`, if there is one.
pub fn spec(name: &str) -> Option<ToolSpec> {
    let (description, schema) = match name {
        READ_UPSTREAM => (
            "Read the summary and the files of a task this one depends on.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["task_key"],
                "properties": {"task_key": {"type": "string", "minLength": 1, "maxLength": 64}}
            }),
        ),
        WRITE_FILE => (
            "Write one file of this task's output. Paths are relative, like app/index.tsx; writing a path again replaces it.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["path", "content"],
                "properties": {
                    "path": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", "maxLength": 200},
                    "content": {"type": "string", "maxLength": MAX_FILE_BYTES}
                }
            }),
        ),
        GENERATE_IMAGE => (
            "Make one PNG image from a prompt (the logo, the app icon) and store it as a file of this task. Each image costs money and is refused when the budget cannot cover it; make each one once. The result is the file's path and the image's cost.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["path", "prompt"],
                "properties": {
                    "path": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\\.png$", "maxLength": 200},
                    "prompt": {"type": "string", "minLength": 1, "maxLength": 4000},
                    "size": {"type": "string", "enum": ["1024x1024", "1536x1024", "1024x1536"], "description": "Square by default."},
                    "transparent": {"type": "boolean", "description": "A transparent background (a logo); opaque by default."}
                }
            }),
        ),
        PUBLISH => (
            "Publish a file this task (or a task it depends on, named by task_key) wrote, under the project's public link where anyone can open it. Publishing the same path again replaces what the link shows. A person may have to approve it first; the result is the link, or why it was not published.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["path"],
                "properties": {
                    "path": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", "maxLength": 200},
                    "task_key": {"type": "string", "minLength": 1, "maxLength": 64}
                }
            }),
        ),
        PUSH_CODE => (
            "Commit files to the project's GitHub repository through the user's connected GitHub account: every file this task (or a task it depends on, named by task_key) wrote, in one commit. The first push creates the repository and commits to its default branch; a repository that already has Autocrew's commits gets a pull request instead. A person may have to approve it first; the result is the commit or pull request link, or why nothing was pushed.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["repository", "message"],
                "properties": {
                    "repository": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$", "description": "The repository's name, without the owner."},
                    "message": {"type": "string", "minLength": 1, "maxLength": 500, "description": "The commit message."},
                    "task_key": {"type": "string", "minLength": 1, "maxLength": 64}
                }
            }),
        ),
        SEND_EMAIL => (
            "Send one email through the user's Resend account (sales outreach, a reply). Plain text. A person may have to approve it first; the result is the email's id, or why it was not sent.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["to", "subject", "text"],
                "properties": {
                    "to": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string", "format": "email", "maxLength": 254}},
                    "subject": {"type": "string", "minLength": 1, "maxLength": 200},
                    "text": {"type": "string", "minLength": 1, "maxLength": 20000},
                    "from": {"type": "string", "maxLength": 254, "description": "The sender, on the domain verified in Resend; by default hello@ that domain."}
                }
            }),
        ),
        POST_TO_X => (
            "Post on X as the user's connected account. A person may have to approve it first; the result is the post's link, or why it was not posted.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 280}}
            }),
        ),
        POST_TO_LINKEDIN => (
            "Post on LinkedIn, publicly in the feed, as the user's connected member. Plain text. A person may have to approve it first; the result is the post's link, or why it was not posted.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["text"],
                "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 3000}}
            }),
        ),
        DEPLOY_SITE => (
            "Deploy a folder this task (or a task it depends on, named by task_key) wrote as a static site on the user's Vercel account, in production. The folder must hold index.html. A person may have to approve it first; the result is the site's URL and the deployment's status, or why it was not deployed.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["folder"],
                "properties": {
                    "folder": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", "maxLength": 200},
                    "project": {"type": "string", "pattern": "^[a-z0-9._-]{1,100}$", "description": "The Vercel project's name (made on first use)."},
                    "task_key": {"type": "string", "minLength": 1, "maxLength": 64}
                }
            }),
        ),
        BUILD_APP => (
            "Build the app on the user's Expo account (EAS Build) for iOS and/or Android, from the GitHub repository its EAS project is linked to, with a build profile of its eas.json. The task waits for the builds (10 to 20 minutes) without you; the result is each build's status and link, or why nothing was built. A person may have to approve it first.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["project", "platforms"],
                "properties": {
                    "project": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$", "description": "The EAS project's slug, on the connected Expo account."},
                    "platforms": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": true, "items": {"type": "string", "enum": ["ios", "android"]}},
                    "git_ref": {"type": "string", "pattern": "^[A-Za-z0-9._/-]{1,200}$", "description": "The branch, tag or commit to build; the repository's default branch if left out."},
                    "profile": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "The eas.json build profile; production if left out."}
                }
            }),
        ),
        FINISH => (
            "Finish the task. Call it once, after writing every file. In memories, keep what later work should know: what was decided, facts found out, and how the user likes things done (preferences apply to every project of the user). Leave out what the files already say at length. If what you found means the tasks still to come are the wrong work, say why in replan: the orchestrator then revises the part of the plan that has not started.",
            json!({
                "type": "object", "additionalProperties": false, "required": ["summary"],
                "properties": {
                    "summary": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "memories": {
                        "type": "array", "maxItems": crate::domain::memory::NOTES_MAX,
                        "items": {
                            "type": "object", "additionalProperties": false, "required": ["kind", "content"],
                            "properties": {
                                "kind": {"type": "string", "enum": ["decision", "fact", "preference"]},
                                "content": {"type": "string", "minLength": 1, "maxLength": crate::domain::memory::CONTENT_MAX},
                                "user_wide": {"type": "boolean", "description": "For every project of the user; preferences are by default."}
                            }
                        }
                    },
                    "replan": {"type": "string", "minLength": 1, "maxLength": 1000, "description": "Only when the plan must change: why."}
                }
            }),
        ),
        _ => return None,
    };
    Some(ToolSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: schema,
    })
}

/// Each known tool's argument schema, compiled once per process.
static CHECKERS: std::sync::LazyLock<Vec<(&'static str, Result<Checker, SchemaViolations>)>> =
    std::sync::LazyLock::new(|| {
        KNOWN
            .iter()
            .filter_map(|name| Some((*name, Checker::new(&spec(name)?.input_schema))))
            .collect()
    });

/// Checks a call's arguments against its tool's schema; an unknown tool is a violation.
pub fn check_arguments(name: &str, input: &serde_json::Value) -> Result<(), String> {
    match CHECKERS.iter().find(|(known, _)| *known == name) {
        Some((_, Ok(checker))) => checker.check(input).map_err(|v| v.to_string()),
        Some((_, Err(e))) => Err(e.to_string()),
        None => Err(format!("there is no tool named {name:?}")),
    }
}

/// A tool call's arguments, checked against the tool's schema and parsed once: the loop and
/// the actions read these fields, never the raw JSON.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "name", content = "input", rename_all = "snake_case")]
pub enum ToolCall {
    ReadUpstream(ReadUpstream),
    WriteFile(WriteFile),
    GenerateImage(GenerateImage),
    Publish(PublishArgs),
    PushCode(PushArgs),
    SendEmail(EmailArgs),
    PostToX(PostArgs),
    PostToLinkedin(PostArgs),
    DeploySite(DeployArgs),
    BuildApp(BuildArgs),
    Finish(FinishArgs),
}

impl ToolCall {
    /// Checks `input` against the schema of the tool called `name`, then types it; the
    /// violations, for the model's repair round, when it does not fit.
    pub fn parse(name: &str, input: &serde_json::Value) -> Result<ToolCall, String> {
        check_arguments(name, input)?;
        serde_json::from_value(json!({"name": name, "input": input}))
            .map_err(|e| format!("arguments of {name} do not fit: {e}"))
    }
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReadUpstream {
    pub task_key: String,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct WriteFile {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct GenerateImage {
    pub path: String,
    pub prompt: String,
    /// Square (`1024x1024`) when left out.
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub transparent: bool,
}

/// `task_key` names the task whose files an action uses: this one when left out.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PublishArgs {
    pub path: String,
    #[serde(default)]
    pub task_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PushArgs {
    pub repository: String,
    pub message: String,
    #[serde(default)]
    pub task_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct EmailArgs {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PostArgs {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct DeployArgs {
    pub folder: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub task_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BuildArgs {
    pub project: String,
    pub platforms: Vec<PlatformName>,
    #[serde(default)]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
}

/// A platform as the model names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformName {
    Ios,
    Android,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct FinishArgs {
    pub summary: String,
    /// What later work should know (`domain::memory`).
    #[serde(default)]
    pub memories: Vec<crate::domain::memory::MemoryNote>,
    /// Why the tasks still to come must change, if they must (`domain::revision`).
    #[serde(default)]
    pub replan: Option<String>,
}

/// A file path the schema accepts but that must still not escape the task's folder.
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The idempotency key of one tool call: the run, the task, where the call stands in the
/// attempt (turn and position) and the sha-256 of its arguments. A retried attempt that
/// makes the same call at the same place gets the same key, so its effect is not repeated;
/// a different call (other arguments, or elsewhere) is a different effect.
pub fn call_key(
    run: crate::domain::RunId,
    task: crate::domain::TaskId,
    turn: u32,
    position: usize,
    arguments: &serde_json::Value,
) -> String {
    use sha2::{Digest, Sha256};
    let arguments = hex::encode(Sha256::digest(arguments.to_string().as_bytes()));
    let key = format!("{run}/{task}/{turn}/{position}/{arguments}");
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call every known tool accepts, by name.
    fn valid(name: &str) -> serde_json::Value {
        match name {
            READ_UPSTREAM => json!({"task_key": "brand"}),
            WRITE_FILE => json!({"path": "app/index.tsx", "content": "export {}"}),
            GENERATE_IMAGE => json!({"path": "logo.png", "prompt": "a leaf", "transparent": true}),
            PUBLISH => json!({"path": "index.html"}),
            PUSH_CODE => json!({"repository": "keto", "message": "First", "task_key": "app"}),
            SEND_EMAIL => json!({"to": ["a@b.co"], "subject": "Hi", "text": "Hello"}),
            POST_TO_X | POST_TO_LINKEDIN => json!({"text": "Keto, fast"}),
            DEPLOY_SITE => json!({"folder": "site"}),
            BUILD_APP => json!({"project": "keto", "platforms": ["ios", "android"]}),
            FINISH => json!({"summary": "done"}),
            other => panic!("no example for {other}"),
        }
    }

    #[test]
    fn every_known_tool_parses_into_its_typed_call() {
        for name in KNOWN {
            let call = ToolCall::parse(name, &valid(name));
            assert!(call.is_ok(), "{name}: {call:?}");
        }
        assert_eq!(
            ToolCall::parse(BUILD_APP, &valid(BUILD_APP)),
            Ok(ToolCall::BuildApp(BuildArgs {
                project: "keto".into(),
                platforms: vec![PlatformName::Ios, PlatformName::Android],
                git_ref: None,
                profile: None,
            }))
        );
    }

    #[test]
    fn arguments_outside_the_schema_are_refused_with_what_is_wrong() {
        let refused = ToolCall::parse(WRITE_FILE, &json!({"path": "../x", "content": 3}));
        assert!(refused.is_err());
        let unknown = ToolCall::parse("wire_money", &json!({}));
        assert_eq!(unknown, Err("there is no tool named \"wire_money\"".into()));
    }
}

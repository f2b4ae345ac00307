//! Expo Application Services (api.expo.dev): its GraphQL API, as `eas-cli` uses it, with an
//! access token (`EXPO_TOKEN`) as the bearer.

use super::{Failure, Identity, ServiceError, ServiceHttp, classify_with};
use crate::config::Secret;
use crate::domain::Service;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A GraphQL answer: `data`, or `errors` (with HTTP 200 as often as not).
#[derive(Deserialize)]
struct GraphQl<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
struct GraphQlError {
    message: String,
    #[serde(default)]
    extensions: Value,
}

/// A GraphQL request: the operation and its variables.
#[derive(Serialize)]
struct GraphQlRequest<'a, V> {
    query: &'a str,
    variables: V,
}

/// An operation's variables, named as in its text.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Variables<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<AppPlatform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_input: Option<&'a GitHubBuildInput<'a>>,
}

impl<'a> Variables<'a> {
    fn build(id: &'a str) -> Variables<'a> {
        Variables {
            build_id: Some(id),
            ..Variables::default()
        }
    }
}

/// Runs one GraphQL operation; `errors` become a `ServiceError` (an `UNAUTHORIZED_ERROR`
/// code refuses the credential).
async fn query<T: DeserializeOwned>(
    client: &ServiceHttp,
    token: &Secret<String>,
    (operation, variables): (&str, Variables<'_>),
) -> Result<T, ServiceError> {
    let body = GraphQlRequest {
        query: operation,
        variables,
    };
    let answer: GraphQl<T> = client
        .send(
            client.request(Method::POST, "/graphql", token).json(&body),
            classify,
        )
        .await?;
    if let Some(error) = answer.errors.first() {
        let code = error.extensions["errorCode"].as_str().unwrap_or_default();
        let message = format!("{} ({code})", error.message);
        return Err(
            if code == "UNAUTHORIZED_ERROR" || code == "UNAUTHENTICATED" {
                ServiceError::Unauthorized {
                    service: Service::Expo,
                    status: 200,
                    message,
                }
            } else {
                ServiceError::Refused {
                    service: Service::Expo,
                    status: 200,
                    message,
                }
            },
        );
    }
    answer.data.ok_or_else(|| ServiceError::Unavailable {
        service: Service::Expo,
        message: "the GraphQL answer has neither data nor errors".into(),
        source: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeActor {
    me_actor: Option<Actor>,
}

/// `meActor`: a user (`username`) or a robot (`firstName`), and its accounts.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Actor {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    accounts: Vec<Account>,
}

#[derive(Deserialize)]
struct Account {
    name: String,
}

const CURRENT_ACTOR: &str = "query CurrentActor { meActor { __typename id ... on UserActor { username } ... on Robot { firstName } accounts { id name } } }";

pub(crate) async fn identify(
    client: &ServiceHttp,
    token: &Secret<String>,
) -> Result<Identity, ServiceError> {
    let me: MeActor = query(client, token, (CURRENT_ACTOR, Variables::default())).await?;
    let Some(actor) = me.me_actor else {
        return Err(ServiceError::Unauthorized {
            service: Service::Expo,
            status: 200,
            message: "the token names no Expo user or robot".into(),
        });
    };
    let name = actor
        .username
        .or(actor.first_name)
        .unwrap_or_else(|| "robot".to_owned());
    Ok(Identity {
        account: match actor.accounts.first() {
            Some(account) if account.name != name => format!("{name} ({})", account.name),
            _ => name,
        },
    })
}

/// Expo's HTTP errors carry GraphQL `errors` too.
fn classify(service: Service, failure: Failure<'_>) -> ServiceError {
    classify_with(service, failure, |v| {
        v["errors"][0]["message"].as_str().map(str::to_owned)
    })
}

/// An EAS project, and the GitHub repository it is linked to (builds start from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EasApp {
    pub id: String,
    pub full_name: String,
    /// `owner/name`, when the project is linked to a repository.
    pub repository: Option<String>,
    /// The linked repository's default branch, as EAS last saw it.
    pub default_branch: Option<String>,
}

#[derive(Deserialize)]
struct AppData {
    app: AppQuery,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppQuery {
    by_full_name: AppNode,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppNode {
    id: String,
    full_name: String,
    github_repository: Option<RepositoryNode>,
}

#[derive(Deserialize)]
struct RepositoryNode {
    metadata: RepositoryMetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryMetadata {
    github_repo_owner_name: String,
    github_repo_name: String,
    #[serde(default)]
    default_branch: Option<String>,
}

const APP_BY_FULL_NAME: &str = "query AppByFullName($fullName: String!) { app { byFullName(fullName: $fullName) { id fullName githubRepository { metadata { githubRepoOwnerName githubRepoName defaultBranch } } } } }";

/// The EAS project `@account/slug`; `None` when EAS knows no such project.
pub async fn app(
    client: &ServiceHttp,
    token: &Secret<String>,
    full_name: &str,
) -> Result<Option<EasApp>, ServiceError> {
    let found: Result<AppData, ServiceError> = query(
        client,
        token,
        (
            APP_BY_FULL_NAME,
            Variables {
                full_name: Some(full_name),
                ..Variables::default()
            },
        ),
    )
    .await;
    match found {
        Ok(data) => {
            let node = data.app.by_full_name;
            let metadata = node.github_repository.map(|r| r.metadata);
            Ok(Some(EasApp {
                id: node.id,
                full_name: node.full_name,
                repository: metadata
                    .as_ref()
                    .map(|m| format!("{}/{}", m.github_repo_owner_name, m.github_repo_name)),
                default_branch: metadata.and_then(|m| m.default_branch),
            }))
        }
        Err(ServiceError::Refused { message, .. })
            if message.contains("(EXPERIENCE_NOT_FOUND)") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A platform EAS builds for (an approved build names them).
pub use crate::domain::actions::AppPlatform;

/// `GitHubBuildInput`: a build of the linked repository at `gitRef`, with an `eas.json`
/// build profile.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitHubBuildInput<'a> {
    pub app_id: &'a str,
    pub platform: AppPlatform,
    pub git_ref: &'a str,
    pub build_profile: &'a str,
}

/// `BackgroundJobReceipt`: EAS starts a GitHub build as a background job; once it
/// succeeded, `resultId` is the build's id.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReceipt {
    pub id: String,
    /// `QUEUED`, `IN_PROGRESS`, `SUCCESS` or `FAILURE`.
    pub state: String,
    #[serde(default)]
    pub result_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub will_retry: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBuildData {
    github_app: CreateBuildMutation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBuildMutation {
    create_git_hub_build: JobReceipt,
}

const RECEIPT_FIELDS: &str = "id state resultId errorCode errorMessage willRetry";

/// Starts a build of the project's linked repository; answers the job's receipt.
pub async fn create_github_build(
    client: &ServiceHttp,
    token: &Secret<String>,
    input: &GitHubBuildInput<'_>,
) -> Result<JobReceipt, ServiceError> {
    let operation = format!(
        "mutation CreateGitHubBuild($buildInput: GitHubBuildInput!) {{ githubApp {{ createGitHubBuild(buildInput: $buildInput) {{ {RECEIPT_FIELDS} }} }} }}"
    );
    let data: CreateBuildData = query(
        client,
        token,
        (
            &operation,
            Variables {
                build_input: Some(input),
                ..Variables::default()
            },
        ),
    )
    .await?;
    Ok(data.github_app.create_git_hub_build)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptData {
    background_job_receipt: ReceiptQuery,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptQuery {
    by_id: JobReceipt,
}

/// Where the job that starts a build stands.
pub async fn job_receipt(
    client: &ServiceHttp,
    token: &Secret<String>,
    id: &str,
) -> Result<JobReceipt, ServiceError> {
    let operation = format!(
        "query BackgroundJobReceiptById($id: ID!) {{ backgroundJobReceipt {{ byId(id: $id) {{ {RECEIPT_FIELDS} }} }} }}"
    );
    let variables = Variables {
        id: Some(id),
        ..Variables::default()
    };
    let data: ReceiptData = query(client, token, (&operation, variables)).await?;
    Ok(data.background_job_receipt.by_id)
}

/// `Build`, as far as following it needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub id: String,
    pub app: BuildApp,
    /// `NEW`, `IN_QUEUE`, `IN_PROGRESS`, `PENDING_CANCEL`, `CANCELED`, `FINISHED`, `ERRORED`.
    pub status: String,
    pub platform: AppPlatform,
    #[serde(default)]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub build_profile: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub artifacts: Option<BuildArtifacts>,
    #[serde(default)]
    pub error: Option<BuildError>,
}

/// The project a build belongs to.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildApp {
    /// `@account/slug`.
    pub full_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildArtifacts {
    /// The app archive to install (an `.ipa`, `.aab` or `.apk`).
    #[serde(default)]
    pub build_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildError {
    pub error_code: String,
    pub message: String,
}

const BUILD_FIELDS: &str = "id app { fullName } status platform gitRef buildProfile createdAt artifacts { buildUrl } error { errorCode message }";

#[derive(Deserialize)]
struct BuildData {
    builds: BuildQuery,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildQuery {
    by_id: Build,
}

/// Where a build stands.
pub async fn build(
    client: &ServiceHttp,
    token: &Secret<String>,
    id: &str,
) -> Result<Build, ServiceError> {
    let operation = format!(
        "query BuildsByIdQuery($buildId: ID!) {{ builds {{ byId(buildId: $buildId) {{ {BUILD_FIELDS} }} }} }}"
    );
    let data: BuildData = query(client, token, (&operation, Variables::build(id))).await?;
    Ok(data.builds.by_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelData {
    build: CancelMutation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelMutation {
    cancel_build: Build,
}

/// Cancels a build (`BuildMutation.cancelBuild`, as `eas build:cancel` does): EAS answers
/// the build, `CANCELED` (or `PENDING_CANCEL` while its worker stops).
pub async fn cancel_build(
    client: &ServiceHttp,
    token: &Secret<String>,
    id: &str,
) -> Result<Build, ServiceError> {
    let operation = format!(
        "mutation CancelBuildMutation($buildId: ID!) {{ build {{ cancelBuild(buildId: $buildId) {{ {BUILD_FIELDS} }} }} }}"
    );
    let data: CancelData = query(client, token, (&operation, Variables::build(id))).await?;
    Ok(data.build.cancel_build)
}

#[derive(Deserialize)]
struct RecentData {
    app: RecentApp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecentApp {
    by_id: RecentBuilds,
}

#[derive(Deserialize)]
struct RecentBuilds {
    builds: Vec<Build>,
}

/// The project's latest builds for `platform`, newest first (at most 10): how a start
/// whose answer was lost finds the build it made.
pub async fn recent_builds(
    client: &ServiceHttp,
    token: &Secret<String>,
    (app_id, platform): (&str, AppPlatform),
) -> Result<Vec<Build>, ServiceError> {
    let operation = format!(
        "query AppBuilds($appId: String!, $platform: AppPlatform) {{ app {{ byId(appId: $appId) {{ builds(offset: 0, limit: 10, platform: $platform) {{ {BUILD_FIELDS} }} }} }} }}"
    );
    let variables = Variables {
        app_id: Some(app_id),
        platform: Some(platform),
        ..Variables::default()
    };
    let data: RecentData = query(client, token, (&operation, variables)).await?;
    Ok(data.app.by_id.builds)
}

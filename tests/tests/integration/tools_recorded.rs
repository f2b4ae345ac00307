//! The outside services' adapters against recorded responses, checking each outgoing
//! request (method, path, headers, body) as the service's published API describes it, and
//! how each error shape is read.

use autocrew_shared::adapters::tools::github::{self, Repo};
use autocrew_shared::adapters::tools::resend::{self, OutgoingEmail};
use autocrew_shared::adapters::tools::vercel::{self, InlinedFile};
use autocrew_shared::adapters::tools::x;
use autocrew_shared::adapters::tools::{ServiceError, ServiceHttp};
use autocrew_shared::config::{Secret, ServiceUrls};
use autocrew_shared::domain::Service;
use autocrew_tests::replay::{Recorded, ReplayServer};
use serde_json::json;
use std::collections::HashMap;

fn client(server: &ReplayServer, service: Service) -> ServiceHttp {
    let name = match service {
        Service::Github => "GITHUB_API_URL",
        Service::Vercel => "VERCEL_API_URL",
        Service::Expo => "EXPO_API_URL",
        Service::Resend => "RESEND_API_URL",
        Service::X => "X_API_URL",
        Service::Linkedin => "LINKEDIN_API_URL",
    };
    let urls = ServiceUrls::from_env(&HashMap::from([(name.to_owned(), server.url.clone())]))
        .expect("urls");
    ServiceHttp::new(reqwest::Client::new(), &urls, service)
}

fn token() -> Secret<String> {
    Secret::new("ghp_recorded0123456789".to_owned())
}

const REPO: Repo<'static> = Repo {
    owner: "ana-builds",
    name: "recipe-app-for-keto-dieters",
};

#[tokio::test]
async fn a_push_through_the_git_data_api_sends_githubs_exact_requests() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::from_file(201, "github-create-repo.json"),
        Recorded::ok("github-ref.json"),
        Recorded::json(201, r#"{"url": "https://api.github.com/repos/ana-builds/recipe-app-for-keto-dieters/git/blobs/3a0f86fb8db8eea7ccbb9a95f325ddbedfb25e15", "sha": "3a0f86fb8db8eea7ccbb9a95f325ddbedfb25e15"}"#),
        Recorded::json(201, r#"{"sha": "691272480426f78a0138979dd3ce63b77f706feb", "url": "https://api.github.com/x", "tree": [], "truncated": false}"#),
        Recorded::from_file(201, "github-commit.json"),
        Recorded::ok("github-ref.json"),
        Recorded::json(201, r#"{"ref": "refs/heads/autocrew/5f2b3c8d9e0a", "node_id": "REF_x", "url": "https://api.github.com/x", "object": {"type": "commit", "sha": "7638417db6d59f3c431d3e1f261cc637155684cd", "url": "https://api.github.com/x"}}"#),
        Recorded::from_file(201, "github-pull.json"),
    ])
    .await?;
    let gh = client(&server, Service::Github);
    let t = token();

    let repo = github::create_repository(&gh, &t, (REPO.name, "Made by Autocrew", true)).await?;
    let head = github::branch_head(&gh, &t, REPO, "main").await?;
    let blob = github::create_blob(&gh, &t, REPO, b"export default 1;\n").await?;
    let tree = github::create_tree(
        &gh,
        &t,
        REPO,
        "base-tree-sha",
        &[("app/index.tsx".into(), blob.clone())],
    )
    .await?;
    let commit = github::create_commit(
        &gh,
        &t,
        REPO,
        (
            "Recipe app\n\nAutocrew-Call: k",
            &tree,
            "aa218f56b14c9653891f9e74264a383fa43fefbd",
        ),
    )
    .await?;
    github::move_branch(&gh, &t, REPO, ("main", &commit.sha)).await?;
    github::create_branch(&gh, &t, REPO, ("autocrew/5f2b3c8d9e0a", &commit.sha)).await?;
    let pull = github::open_pull(
        &gh,
        &t,
        REPO,
        (
            "autocrew/5f2b3c8d9e0a",
            "main",
            "Recipe app",
            "Opened by Autocrew",
        ),
    )
    .await?;

    assert_eq!(
        (repo.default_branch.as_str(), repo.owner.login.as_str()),
        ("main", "ana-builds")
    );
    assert_eq!(
        head.as_deref(),
        Some("aa218f56b14c9653891f9e74264a383fa43fefbd")
    );
    assert_eq!(commit.tree.sha, "691272480426f78a0138979dd3ce63b77f706feb");
    assert_eq!(pull.number, 2);
    let sent = server.received();
    let shape: Vec<(&str, &str)> = sent
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            ("POST", "/user/repos"),
            (
                "GET",
                "/repos/ana-builds/recipe-app-for-keto-dieters/git/ref/heads/main"
            ),
            (
                "POST",
                "/repos/ana-builds/recipe-app-for-keto-dieters/git/blobs"
            ),
            (
                "POST",
                "/repos/ana-builds/recipe-app-for-keto-dieters/git/trees"
            ),
            (
                "POST",
                "/repos/ana-builds/recipe-app-for-keto-dieters/git/commits"
            ),
            (
                "PATCH",
                "/repos/ana-builds/recipe-app-for-keto-dieters/git/refs/heads/main"
            ),
            (
                "POST",
                "/repos/ana-builds/recipe-app-for-keto-dieters/git/refs"
            ),
            (
                "POST",
                "/repos/ana-builds/recipe-app-for-keto-dieters/pulls"
            ),
        ]
    );
    for request in &sent {
        assert_eq!(request.headers["accept"], "application/vnd.github+json");
        assert_eq!(request.headers["x-github-api-version"], "2026-03-10");
        assert_eq!(
            request.headers["authorization"],
            "Bearer ghp_recorded0123456789"
        );
        assert!(request.headers.contains_key("user-agent"));
    }
    assert_eq!(
        sent[0].body,
        json!({"name": REPO.name, "description": "Made by Autocrew", "private": true, "auto_init": true})
    );
    assert_eq!(
        sent[2].body,
        json!({"content": "ZXhwb3J0IGRlZmF1bHQgMTsK", "encoding": "base64"})
    );
    assert_eq!(
        sent[3].body,
        json!({"base_tree": "base-tree-sha", "tree": [{"path": "app/index.tsx", "mode": "100644", "type": "blob", "sha": blob}]})
    );
    assert_eq!(
        sent[4].body,
        json!({"message": "Recipe app\n\nAutocrew-Call: k", "tree": tree, "parents": ["aa218f56b14c9653891f9e74264a383fa43fefbd"]})
    );
    assert_eq!(sent[5].body, json!({"sha": commit.sha, "force": false}));
    assert_eq!(
        sent[6].body,
        json!({"ref": "refs/heads/autocrew/5f2b3c8d9e0a", "sha": commit.sha})
    );
    assert_eq!(
        sent[7].body,
        json!({"title": "Recipe app", "head": "autocrew/5f2b3c8d9e0a", "base": "main", "body": "Opened by Autocrew"})
    );
    Ok(())
}

#[tokio::test]
async fn githubs_422_secondary_rate_limit_and_missing_things_are_read_as_github_words_them()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        // A 422 with `errors`: the request is refused, its reasons kept.
        Recorded::json(422, r#"{"message":"Repository creation failed.","errors":[{"resource":"Repository","code":"custom","field":"name","message":"name already exists on this account"}],"documentation_url":"https://docs.github.com/rest/repos/repos#create-a-repository-for-the-authenticated-user","status":"422"}"#),
        // A secondary rate limit: 403 with retry-after.
        Recorded::json(403, r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits","status":"403"}"#)
            .with_header("retry-after", "30"),
        // A 404 on a ref: there is none.
        Recorded::json(404, r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest/git/refs#get-a-reference","status":"404"}"#),
        // A fast-forward refused.
        Recorded::json(422, r#"{"message":"Update is not a fast forward","documentation_url":"https://docs.github.com/rest/git/refs#update-a-reference","status":"422"}"#),
    ])
    .await?;
    let gh = client(&server, Service::Github);
    let t = token();

    let err = github::create_repository(&gh, &t, ("taken", "", true))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ServiceError::Refused { status: 422, message, .. } if message == "Repository creation failed.: name already exists on this account"),
        "{err}"
    );
    let err = github::create_blob(&gh, &t, REPO, b"x").await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 30),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(github::branch_head(&gh, &t, REPO, "nope").await?, None);
    let err = github::move_branch(&gh, &t, REPO, ("main", "abc"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a fast forward") && !err.is_retryable(),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn resend_gets_the_calls_idempotency_key_and_its_429_is_a_rate_limit() -> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::json(200, r#"{"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}"#),
        Recorded::json(429, r#"{"statusCode":429,"message":"Too many requests. You can only make 2 requests per second. See rate limit response headers for more information. Or contact support to increase rate limit.","name":"rate_limit_exceeded"}"#)
            .with_header("retry-after", "1"),
        Recorded::json(409, r#"{"statusCode":409,"message":"Same idempotency key used with a different request payload. Change your idempotency key or payload.","name":"invalid_idempotent_request"}"#),
    ])
    .await?;
    let resend_client = client(&server, Service::Resend);
    let key = Secret::new("re_recorded0123456789".to_owned());
    let email = OutgoingEmail {
        from: "hello@ketoapp.example".into(),
        to: vec!["early-adopters@example.com".into()],
        subject: "Early access".into(),
        text: "Hello".into(),
        reply_to: None,
    };

    let id = resend::send_email(&resend_client, &key, &email, "call-key-1").await?;
    let limited = resend::send_email(&resend_client, &key, &email, "call-key-2")
        .await
        .unwrap_err();
    let conflict = resend::send_email(&resend_client, &key, &email, "call-key-1")
        .await
        .unwrap_err();

    assert_eq!(id, "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794");
    assert!(
        matches!(&limited, ServiceError::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 1),
        "{limited}"
    );
    assert!(
        matches!(&conflict, ServiceError::Refused { status: 409, message, .. } if message.contains("invalid_idempotent_request")),
        "{conflict}"
    );
    let sent = &server.received()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/emails")
    );
    assert_eq!(sent.headers["idempotency-key"], "call-key-1");
    assert_eq!(
        sent.headers["authorization"],
        "Bearer re_recorded0123456789"
    );
    assert_eq!(
        sent.body,
        json!({"from": "hello@ketoapp.example", "to": ["early-adopters@example.com"], "subject": "Early access", "text": "Hello"})
    );
    Ok(())
}

#[tokio::test]
async fn an_x_post_is_one_json_text_and_a_duplicate_is_refused_not_unauthorized()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::json(201, r#"{"data":{"id":"1865000000000000001","text":"We are building Keto.","edit_history_tweet_ids":["1865000000000000001"]}}"#),
        Recorded::json(403, r#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#),
        Recorded::json(403, r#"{"title":"Unsupported Authentication","detail":"Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].","type":"https://api.twitter.com/2/problems/unsupported-authentication","status":403}"#),
        Recorded::json(429, r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#),
    ])
    .await?;
    let x_client = client(&server, Service::X);
    let token = Secret::new("x-recorded".to_owned());

    let post = x::post(&x_client, &token, "We are building Keto.").await?;
    let duplicate = x::post(&x_client, &token, "We are building Keto.")
        .await
        .unwrap_err();
    let app_only = x::post(&x_client, &token, "Hi").await.unwrap_err();
    let limited = x::post(&x_client, &token, "Hi").await.unwrap_err();

    assert_eq!(post.id, "1865000000000000001");
    assert!(
        x::is_duplicate(&duplicate) && !duplicate.is_retryable(),
        "{duplicate}"
    );
    assert!(
        matches!(app_only, ServiceError::Unauthorized { .. }),
        "an app-only token cannot post: {app_only}"
    );
    assert!(limited.is_retryable(), "{limited}");
    let sent = &server.received()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/2/tweets")
    );
    assert_eq!(sent.body, json!({"text": "We are building Keto."}));
    assert_eq!(sent.headers["content-type"], "application/json");
    Ok(())
}

#[tokio::test]
async fn a_vercel_deployment_inlines_its_files_and_a_build_error_is_read_from_the_deployment()
-> anyhow::Result<()> {
    let server = ReplayServer::start(vec![
        Recorded::json(200, r#"{"id":"dpl_89qyp1cskzkLrVicDaZoDbjyHuDJ","url":"keto-app-8b3kqz1hd.vercel.app","name":"keto-app","readyState":"QUEUED","status":"QUEUED","target":"production","inspectorUrl":"https://vercel.com/ana-lima/keto-app/89qyp1cskzkLrVicDaZoDbjyHuDJ","alias":[],"aliasAssigned":false,"createdAt":1796000000000,"creator":{"uid":"Ahx3kPp0m2VQ","username":"ana-lima"}}"#),
        Recorded::json(200, r#"{"id":"dpl_89qyp1cskzkLrVicDaZoDbjyHuDJ","url":"keto-app-8b3kqz1hd.vercel.app","name":"keto-app","readyState":"ERROR","status":"ERROR","errorCode":"BUILD_FAILED","errorMessage":"Command \"npm run build\" exited with 1","target":"production","alias":[],"createdAt":1796000000000}"#),
        Recorded::json(403, r#"{"error":{"code":"forbidden","message":"Not authorized","invalidToken":true}}"#),
    ])
    .await?;
    let vercel_client = client(&server, Service::Vercel);
    let token = Secret::new("vercel_recorded".to_owned());
    let files = [InlinedFile {
        file: "index.html".into(),
        data: "<h1>Keto</h1>".into(),
        encoding: "utf-8",
    }];

    let created = vercel::create_deployment(&vercel_client, &token, "keto-app", &files).await?;
    let failed = vercel::deployment(&vercel_client, &token, &created.id).await?;
    let refused = vercel::deployment(&vercel_client, &token, &created.id)
        .await
        .unwrap_err();

    assert_eq!(created.site_url(), "https://keto-app-8b3kqz1hd.vercel.app");
    assert_eq!(failed.ready_state, "ERROR");
    assert_eq!(failed.error_code.as_deref(), Some("BUILD_FAILED"));
    assert!(
        matches!(&refused, ServiceError::Unauthorized { message, .. } if message == "Not authorized (forbidden)"),
        "{refused}"
    );
    let sent = server.received();
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("POST", "/v13/deployments")
    );
    assert_eq!(
        sent[0].query.as_deref(),
        Some("skipAutoDetectionConfirmation=1")
    );
    assert_eq!(
        sent[0].body,
        json!({"name": "keto-app", "target": "production", "projectSettings": {"framework": null},
               "files": [{"file": "index.html", "data": "<h1>Keto</h1>", "encoding": "utf-8"}]})
    );
    assert_eq!(
        sent[1].path,
        "/v13/deployments/dpl_89qyp1cskzkLrVicDaZoDbjyHuDJ"
    );
    Ok(())
}

#[tokio::test]
async fn an_eas_build_starts_from_the_linked_repository_and_its_failure_is_read_from_the_build()
-> anyhow::Result<()> {
    use autocrew_shared::adapters::tools::expo::{self, AppPlatform, GitHubBuildInput};
    let server = ReplayServer::start(vec![
        Recorded::json(200, r#"{"data": {"app": {"byFullName": {"id": "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "fullName": "@ana-builds/recipe-app-for-keto-dieters", "githubRepository": {"metadata": {"githubRepoOwnerName": "ana-builds", "githubRepoName": "recipe-app-for-keto-dieters", "defaultBranch": "main"}}}}}}"#),
        Recorded::json(200, r#"{"data": {"githubApp": {"createGitHubBuild": {"id": "7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b", "state": "QUEUED", "resultId": null, "errorCode": null, "errorMessage": null, "willRetry": false}}}}"#),
        Recorded::json(200, r#"{"data": {"backgroundJobReceipt": {"byId": {"id": "7e8f9a0b-1c2d-4e3f-8a5b-6c7d8e9f0a1b", "state": "SUCCESS", "resultId": "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d", "errorCode": null, "errorMessage": null, "willRetry": false}}}}"#),
        Recorded::ok("eas-build-finished.json"),
        Recorded::ok("eas-build-errored.json"),
        Recorded::json(200, r#"{"data": null, "errors": [{"message": "Experience with name '@ana-builds/nope' does not exist.", "locations": [{"line": 1, "column": 45}], "path": ["app", "byFullName"], "extensions": {"errorCode": "EXPERIENCE_NOT_FOUND"}}]}"#),
    ])
    .await?;
    let eas = client(&server, Service::Expo);
    let t = Secret::new("expo_recorded0123456789".to_owned());

    let app = expo::app(&eas, &t, "@ana-builds/recipe-app-for-keto-dieters")
        .await?
        .expect("the project exists");
    let input = GitHubBuildInput {
        app_id: &app.id,
        platform: AppPlatform::Ios,
        git_ref: "main",
        build_profile: "production",
    };
    let receipt = expo::create_github_build(&eas, &t, &input).await?;
    let done = expo::job_receipt(&eas, &t, &receipt.id).await?;
    let finished = expo::build(&eas, &t, done.result_id.as_deref().unwrap_or_default()).await?;
    let errored = expo::build(&eas, &t, "9f3c2a1b-4d5e-4f60-8a7b-1c2d3e4f5a6b").await?;
    let missing = expo::app(&eas, &t, "@ana-builds/nope").await?;

    assert_eq!(
        app.repository.as_deref(),
        Some("ana-builds/recipe-app-for-keto-dieters")
    );
    assert_eq!(app.default_branch.as_deref(), Some("main"));
    assert_eq!(
        (receipt.state.as_str(), done.state.as_str()),
        ("QUEUED", "SUCCESS")
    );
    assert_eq!(finished.status, "FINISHED");
    assert_eq!(
        finished.artifacts.and_then(|a| a.build_url).as_deref(),
        Some("https://expo.dev/artifacts/eas/4hT8qZ2mN1vXc7bK9wLp3a.ipa")
    );
    let error = errored.error.expect("an errored build says why");
    assert_eq!(
        (errored.status.as_str(), error.error_code.as_str()),
        ("ERRORED", "UNKNOWN_GRADLE_ERROR")
    );
    assert!(missing.is_none(), "EXPERIENCE_NOT_FOUND is no project");
    let sent = server.received();
    assert!(
        sent.iter()
            .all(|r| r.method == "POST" && r.path == "/graphql")
    );
    assert_eq!(
        sent[0].headers["authorization"],
        "Bearer expo_recorded0123456789"
    );
    assert_eq!(
        sent[0].body["variables"],
        json!({"fullName": "@ana-builds/recipe-app-for-keto-dieters"})
    );
    // GitHubBuildInput as eas-cli's schema types it: appId, platform (AppPlatform), gitRef,
    // buildProfile; the mutation is githubApp.createGitHubBuild(buildInput:).
    assert_eq!(
        sent[1].body["variables"],
        json!({"buildInput": {"appId": "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "platform": "IOS", "gitRef": "main", "buildProfile": "production"}})
    );
    let mutation = sent[1].body["query"].as_str().unwrap_or_default();
    assert!(
        mutation.contains("githubApp { createGitHubBuild(buildInput: $buildInput)")
            && mutation.contains("$buildInput: GitHubBuildInput!"),
        "{mutation}"
    );
    assert_eq!(sent[2].body["variables"], json!({"id": receipt.id}));
    assert_eq!(
        sent[3].body["variables"],
        json!({"buildId": "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"})
    );
    Ok(())
}

#[tokio::test]
async fn a_linkedin_post_goes_to_the_versioned_posts_api_and_a_duplicate_names_the_first_post()
-> anyhow::Result<()> {
    use autocrew_shared::adapters::tools::linkedin;
    let server = ReplayServer::start(vec![
        Recorded::ok("linkedin-userinfo.json"),
        Recorded::json(201, "").with_header("x-restli-id", "urn:li:share:7262201467839291392"),
        Recorded::json(422, r#"{"status": 422, "message": "Content is a duplicate of urn:li:share:7262201467839291392"}"#),
        Recorded::json(401, r#"{"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"}"#),
    ])
    .await?;
    let li = client(&server, Service::Linkedin);
    let t = Secret::new("AQVrecorded0123456789".to_owned());

    let author = linkedin::member_urn(&li, &t).await?;
    let first = linkedin::create_post(&li, &t, (&author, "We are building it.")).await?;
    let again = linkedin::create_post(&li, &t, (&author, "We are building it.")).await?;
    let refused = linkedin::create_post(&li, &t, (&author, "Later."))
        .await
        .unwrap_err();

    assert_eq!(author, "urn:li:person:782bbtaQ");
    assert_eq!(first, "urn:li:share:7262201467839291392");
    assert_eq!(
        again, first,
        "a duplicate refusal names the post already made"
    );
    assert!(
        matches!(refused, ServiceError::Unauthorized { status: 401, .. }),
        "{refused}"
    );
    let sent = &server.received()[1];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/rest/posts")
    );
    assert_eq!(sent.headers["linkedin-version"], linkedin::VERSION);
    assert_eq!(sent.headers["x-restli-protocol-version"], "2.0.0");
    assert_eq!(
        sent.headers["authorization"],
        "Bearer AQVrecorded0123456789"
    );
    // The Posts API's text post: author, commentary, visibility, distribution,
    // lifecycleState, isReshareDisabledByAuthor, and nothing else.
    assert_eq!(
        sent.body,
        json!({
            "author": "urn:li:person:782bbtaQ", "commentary": "We are building it.",
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": false
        })
    );
    Ok(())
}

#[tokio::test]
async fn oauth_token_requests_are_x_s_and_linkedin_s_exact_forms() -> anyhow::Result<()> {
    use autocrew_shared::adapters::tools::oauth::{self, ClientAuth};
    let server = ReplayServer::start(vec![
        Recorded::json(200, r#"{"token_type":"bearer","expires_in":7200,"access_token":"VGNibzFWSWREZm01bjN1N3dicWlNUG1oa2xRRVNNdmVHelJGY2hDT3NiQ2JMOjE2MjIxNjAwMDA6MToxOmF0OjE","scope":"tweet.read tweet.write users.read offline.access","refresh_token":"bWRWa3gzdnk3WHRGU1o0bmRRcTJ5VUxWX1lZTDdJSUtmaWcxbTVxdEFXcW5tOjE2MjIxNDc3NDM5MTQ6MToxOnJ0OjE"}"#),
        Recorded::json(200, r#"{"token_type":"bearer","expires_in":7200,"access_token":"renewed-access","scope":"tweet.read tweet.write users.read offline.access","refresh_token":"rotated-refresh"}"#),
        Recorded::json(400, r#"{"error":"invalid_request","error_description":"Value passed for the token was invalid."}"#),
        Recorded::json(200, r#"{"access_token":"AQXlinkedin","expires_in":5184000,"scope":"email,openid,profile,w_member_social","token_type":"Bearer","id_token":"eyJ"}"#),
        Recorded::json(401, r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#),
    ])
    .await?;
    let http = reqwest::Client::new();
    let token_url = format!("{}/2/oauth2/token", server.url);
    let secret = Secret::new("x-client-secret".to_owned());
    let x_client = ClientAuth::Basic {
        client_id: "rG9n6402A3dbUJKzXTNX4oWHJ",
        secret: &secret,
    };
    let verifier = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
    let grant = oauth::exchange_code(
        &http,
        Service::X,
        &token_url,
        &x_client,
        ("VGNibzFWSWREZm01bjN1N3dicWlNUG1oa2xRRVNNdmVHelJGY2hDT3NiQ2JMOjE2MjIxNjAwMDA6MToxOmFjOjE", "https://api.autocrew.test/oauth/callback", Some(&verifier)),
    )
    .await?;
    assert_eq!(grant.expires_in, Some(7200));
    assert!(grant.refresh_token.is_some());
    let renewed = oauth::refresh(
        &http,
        Service::X,
        &token_url,
        &x_client,
        grant.refresh_token.as_ref().unwrap_or(&verifier),
    )
    .await?;
    assert_eq!(renewed.access_token.expose(), "renewed-access");
    let spent = oauth::refresh(&http, Service::X, &token_url, &x_client, &secret)
        .await
        .unwrap_err();
    assert!(
        matches!(spent, ServiceError::Refused { status: 400, .. }),
        "{spent}"
    );
    assert!(
        spent
            .to_string()
            .contains("Value passed for the token was invalid. (invalid_request)"),
        "{spent}"
    );
    let li_secret = Secret::new("li-client-secret".to_owned());
    let li_client = ClientAuth::Body {
        client_id: "86ltestclient",
        secret: &li_secret,
    };
    let li_url = format!("{}/oauth/v2/accessToken", server.url);
    let li = oauth::exchange_code(
        &http,
        Service::Linkedin,
        &li_url,
        &li_client,
        ("AQTcode", "https://api.autocrew.test/oauth/callback", None),
    )
    .await?;
    assert_eq!(
        (li.expires_in, li.refresh_token.is_none()),
        (Some(5_184_000), true)
    );
    let refused = oauth::exchange_code(
        &http,
        Service::Linkedin,
        &li_url,
        &li_client,
        ("AQTcode", "https://api.autocrew.test/oauth/callback", None),
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("Client authentication failed (invalid_client)"),
        "{refused}"
    );

    let sent = server.received();
    let basic = "Basic ckc5bjY0MDJBM2RiVUpLelhUTlg0b1dISjp4LWNsaWVudC1zZWNyZXQ=";
    // X: HTTP Basic from a confidential client and no client_id in the body, as X's SDK sends.
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("POST", "/2/oauth2/token")
    );
    assert_eq!(sent[0].headers["authorization"], basic);
    assert_eq!(
        sent[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        sent[0].raw,
        "grant_type=authorization_code&code=VGNibzFWSWREZm01bjN1N3dicWlNUG1oa2xRRVNNdmVHelJGY2hDT3NiQ2JMOjE2MjIxNjAwMDA6MToxOmFjOjE&redirect_uri=https%3A%2F%2Fapi.autocrew.test%2Foauth%2Fcallback&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    assert_eq!(sent[1].headers["authorization"], basic);
    assert_eq!(
        sent[1].raw,
        "grant_type=refresh_token&refresh_token=bWRWa3gzdnk3WHRGU1o0bmRRcTJ5VUxWX1lZTDdJSUtmaWcxbTVxdEFXcW5tOjE2MjIxNDc3NDM5MTQ6MToxOnJ0OjE"
    );
    // LinkedIn: the client's id and secret in the body, no PKCE.
    assert_eq!(sent[3].path, "/oauth/v2/accessToken");
    assert!(sent[3].headers.get("authorization").is_none());
    assert_eq!(
        sent[3].raw,
        "grant_type=authorization_code&code=AQTcode&redirect_uri=https%3A%2F%2Fapi.autocrew.test%2Foauth%2Fcallback&client_id=86ltestclient&client_secret=li-client-secret"
    );
    Ok(())
}

//! `send_email` (Resend), `post_to_x` (X) and `post_to_linkedin` against stateful fakes:
//! each waits for its approval; an approved email is sent once with the call's key as
//! Resend's `Idempotency-Key`; a rejected post makes no call; a post whose answer was lost
//! is found (on X's timeline, in LinkedIn's duplicate refusal) instead of being posted
//! twice.

use crate::run_control::play_until_ended;
use crate::tools_github::world_with;
use autocrew_shared::domain::RunStatus;
use autocrew_tests::TestDb;

const RESEND: (&str, &str, &str) = ("resend", "re_anaKey0123456789abcdef", "ketoapp.example");
const X: (&str, &str, &str) = ("x", "x-ana-token-0123456789abcdef", "ana_builds");
const LINKEDIN: (&str, &str, &str) = ("linkedin", "AQVanaLinkedinToken0123456789", "Ana Lima");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_email_is_sent_once_and_a_rejected_post_makes_no_call() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[RESEND, X], &["publish"]).await?;

    let run = w.command().await?;
    let asked = w.asked(run, &["send_email", "post_to_x"]).await?;
    let (email, post) = (&asked[0], &asked[1]);
    assert_eq!(email["payload"]["from"], "hello@ketoapp.example", "{email}");
    assert_eq!(email["payload"]["to"][0], "early-adopters@example.com");
    assert_eq!(post["payload"]["account"], "@ana_builds", "{post}");
    {
        let resend = w.fake.resend.lock().unwrap_or_else(|e| e.into_inner());
        let x = w.fake.x.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            resend.sent.is_empty() && x.posts.is_empty(),
            "nothing goes out before a decision"
        );
    }

    w.decide(email, "approve").await?;
    w.decide(post, "reject").await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let sent = w
        .fake
        .resend
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sent
        .clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].subject,
        "Early access to Recipe app for keto dieters"
    );
    assert!(
        w.fake
            .x
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .posts
            .is_empty(),
        "the rejected post was never sent"
    );
    let summary = w.summary(run, "outreach_plan").await?;
    assert!(
        summary.contains("sent to early-adopters@example.com"),
        "{summary}"
    );
    let summary = w.summary(run, "landing_copy").await?;
    assert!(
        summary.contains("post_to_x not done") && summary.contains("rejected"),
        "{summary}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_was_lost_is_found_not_posted_twice() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[X], &["publish", "post_to_x"]).await?;
    // X keeps the post, then the answer is lost: as if the worker died before recording.
    w.fake.fail_once_after("x.post");

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let posts = w
        .fake
        .x
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .posts
        .clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let landing = w.task(run, "landing_copy").await?;
    assert_eq!(landing.attempts, 2);
    let summary = landing
        .result
        .map(|r| r["summary"].to_string())
        .unwrap_or_default();
    assert!(
        summary.contains(&format!("https://x.com/ana_builds/status/{}", posts[0].id)),
        "{summary}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_linkedin_post_is_made_once_as_the_member_even_when_its_answer_is_lost()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[LINKEDIN], &["publish"]).await?;
    // LinkedIn keeps the post, then the answer is lost: as if the worker died before recording.
    w.fake.fail_once_after("linkedin.post");

    let run = w.command().await?;
    let asked = w.asked(run, &["post_to_linkedin"]).await?;
    assert_eq!(
        asked[0]["payload"]["author"], "urn:li:person:AnaLima",
        "{asked:?}"
    );
    w.decide(&asked[0], "approve").await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    let posts = w
        .fake
        .linkedin
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .posts
        .clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0]
            .text
            .starts_with("We are building Recipe app for keto dieters")
    );
    // Parked for approval, then the post whose answer was lost, then its retry.
    assert_eq!(w.task(run, "landing_copy").await?.attempts, 3);
    let summary = w.summary(run, "landing_copy").await?;
    assert!(
        summary.contains(&format!(
            "posted on LinkedIn: https://www.linkedin.com/feed/update/{}/",
            posts[0].urn
        )),
        "{summary}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_a_tools_limit_a_minute_gets_no_call_and_the_agent_is_told()
-> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let w = world_with(&db, &[X], &["publish", "post_to_x"]).await?;
    let ana = w
        .state
        .accounts
        .credentials("ana@example.com")
        .await?
        .map(|(user, _)| user.id)
        .ok_or_else(|| anyhow::anyhow!("Ana has an account"))?;
    // Spend this minute's five posts (with time left in the minute for the run).
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 40 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    let bucket = autocrew_shared::ports::Bucket {
        key: format!("tool:post_to_x:{ana}"),
        limit: 5,
        policy: "tool",
    };
    for _ in 0..5 {
        w.p.ctx.limiter.hit(std::slice::from_ref(&bucket)).await?;
    }

    let run = w.command().await?;
    let ended = play_until_ended(&w.p, run).await?;

    assert_eq!(ended.status, RunStatus::Succeeded, "{:?}", ended.error);
    assert!(
        w.fake
            .x
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .posts
            .is_empty(),
        "X got nothing"
    );
    let summary = w.summary(run, "landing_copy").await?;
    assert!(
        summary.contains("limit of 5 post_to_x calls a minute"),
        "{summary}"
    );
    Ok(())
}

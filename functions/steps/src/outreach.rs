//! `send_email` (Resend), `post_to_x` (X API v2) and `post_to_linkedin` (LinkedIn's Posts
//! API): messages to people, each sent once. Resend keeps the call's key itself
//! (`Idempotency-Key`); X and LinkedIn have none, so a post retried after a lost answer is
//! recognised by their duplicate refusal (X's found on the timeline, LinkedIn's named in
//! the refusal).

use crate::StepContext;
use crate::acting::{ActionError, Emailed, Posted, recorded};
use autocrew_shared::adapters::tools::resend::{self, OutgoingEmail};
use autocrew_shared::adapters::tools::{ServiceError, linkedin, x};
use autocrew_shared::crew::tools::{EmailArgs, PostArgs};
use autocrew_shared::domain::Service;
use autocrew_shared::domain::actions::{ApprovedAction, LinkedinPost, Post, SendEmail};
use autocrew_shared::domain::records::Run;
use autocrew_shared::ports::NewSocialPost;
use autocrew_shared::services::Opened;
use serde_json::Value;

/// A plausible address: one `@`, something before it, a dot after it, no spaces.
fn plausible_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The exact email: sender, recipients, subject, text.
pub(crate) async fn prepare_email(
    ctx: &StepContext,
    run: &Run,
    args: &EmailArgs,
) -> Result<ApprovedAction, ActionError> {
    let to: Vec<String> = args.to.iter().map(|a| a.trim().to_owned()).collect();
    if let Some(bad) = to.iter().find(|a| !plausible_address(a)) {
        return Err(ActionError::Refused(format!(
            "{bad:?} is not an email address"
        )));
    }
    let opened = ctx.connected.open(run.user_id, Service::Resend).await?;
    let domain = opened.connection.account.clone();
    let from = match &args.from {
        Some(from) => from.trim().to_owned(),
        None if domain.contains('.') && !domain.contains(' ') => format!("hello@{domain}"),
        None => {
            return Err(ActionError::Refused(
                "the Resend key cannot list its domains: pass from, an address on the domain verified in Resend".into(),
            ));
        }
    };
    Ok(ApprovedAction::SendEmail(SendEmail {
        service: Service::Resend,
        from,
        to,
        subject: args.subject.clone(),
        text: args.text.clone(),
    }))
}

/// Sends the approved email with the call's key as Resend's `Idempotency-Key`.
pub(crate) async fn send_email(
    ctx: &StepContext,
    run: &Run,
    approved: &SendEmail,
    call_key: &str,
) -> Result<Value, ActionError> {
    let email = OutgoingEmail {
        from: approved.from.clone(),
        to: approved.to.clone(),
        subject: approved.subject.clone(),
        text: approved.text.clone(),
        reply_to: None,
    };
    let opened = ctx.connected.open(run.user_id, Service::Resend).await?;
    let id = call(
        ctx,
        &opened,
        resend::send_email(&opened.http, &opened.token, &email, call_key),
    )
    .await?;
    recorded(&Emailed {
        said: format!("sent to {} (Resend id {id})", email.to.join(", ")),
        email_id: id,
        to: email.to,
    })
}

/// The exact post.
pub(crate) async fn prepare_post(
    ctx: &StepContext,
    run: &Run,
    args: &PostArgs,
) -> Result<ApprovedAction, ActionError> {
    let opened = ctx.connected.open(run.user_id, Service::X).await?;
    Ok(ApprovedAction::PostToX(Post {
        service: Service::X,
        account: opened.connection.account.clone(),
        text: args.text.clone(),
    }))
}

/// Posts the approved text once: a duplicate refusal on a retry means the first delivery
/// posted it, so the post is found on the account's timeline.
pub(crate) async fn post_to_x(
    ctx: &StepContext,
    run: &Run,
    post: &Post,
) -> Result<Value, ActionError> {
    let text = post.text.as_str();
    let opened = ctx.connected.open(run.user_id, Service::X).await?;
    let me = call(ctx, &opened, x::me(&opened.http, &opened.token)).await?;
    let post = match x::post(&opened.http, &opened.token, text).await {
        Ok(post) => post,
        Err(e) if x::is_duplicate(&e) => {
            let recent = call(ctx, &opened, x::recent(&opened.http, &opened.token, &me.id)).await?;
            match recent.into_iter().find(|p| p.text == text) {
                Some(post) => post,
                None => return Err(ActionError::Refused(e.to_string())),
            }
        }
        Err(e) => return Err(refusal(ctx, &opened, e).await),
    };
    let link = format!("https://x.com/{}/status/{}", me.username, post.id);
    keep_post(ctx, run, (Service::X, &post.id), (&link, text)).await?;
    recorded(&Posted {
        post_id: Some(post.id),
        post_urn: None,
        said: format!("posted: {link}"),
        link,
    })
}

/// The exact LinkedIn post: its author (the connected member) and text.
pub(crate) async fn prepare_linkedin_post(
    ctx: &StepContext,
    run: &Run,
    args: &PostArgs,
) -> Result<ApprovedAction, ActionError> {
    let opened = ctx.connected.open(run.user_id, Service::Linkedin).await?;
    let author = call(
        ctx,
        &opened,
        linkedin::member_urn(&opened.http, &opened.token),
    )
    .await?;
    Ok(ApprovedAction::PostToLinkedin(LinkedinPost {
        service: Service::Linkedin,
        account: opened.connection.account.clone(),
        author,
        text: args.text.clone(),
    }))
}

/// Posts the approved text once, as the approved author.
pub(crate) async fn post_to_linkedin(
    ctx: &StepContext,
    run: &Run,
    post: &LinkedinPost,
) -> Result<Value, ActionError> {
    let (author, text) = (post.author.as_str(), post.text.as_str());
    let opened = ctx.connected.open(run.user_id, Service::Linkedin).await?;
    let urn = call(
        ctx,
        &opened,
        linkedin::create_post(&opened.http, &opened.token, (author, text)),
    )
    .await?;
    let link = linkedin::post_link(&urn);
    keep_post(ctx, run, (Service::Linkedin, &urn), (&link, text)).await?;
    recorded(&Posted {
        post_id: None,
        post_urn: Some(urn),
        said: format!("posted on LinkedIn: {link}"),
        link,
    })
}

/// Keeps a published post for the daily loop (its engagement is fetched later). Kept once
/// per post, so a retried call that found its post again adds nothing.
async fn keep_post(
    ctx: &StepContext,
    run: &Run,
    (service, provider_id): (Service, &str),
    (link, text): (&str, &str),
) -> Result<(), ActionError> {
    let post = NewSocialPost {
        service,
        provider_id: provider_id.to_owned(),
        project: run.project_id,
        user: run.user_id,
        run: run.id,
        link: link.to_owned(),
        text: text.to_owned(),
    };
    Ok(ctx.marketing.record_post(&post).await?)
}

/// Awaits a service call; its refusal becomes what it means for the task.
pub(crate) async fn call<T>(
    ctx: &StepContext,
    opened: &Opened,
    call: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, ActionError> {
    match call.await {
        Ok(value) => Ok(value),
        Err(e) => Err(refusal(ctx, opened, e).await),
    }
}

/// A refused token marks the connection invalid and fails the task naming it; a rate
/// limit or an outage retries the attempt later; any other refusal is told to the model.
pub(crate) async fn refusal(
    ctx: &StepContext,
    opened: &Opened,
    error: ServiceError,
) -> ActionError {
    match error {
        ServiceError::Unauthorized { .. } => {
            ActionError::Fatal(ctx.connected.refused(opened, &error).await.to_string())
        }
        e if e.is_retryable() => ActionError::Unavailable(e.to_string()),
        e => ActionError::Refused(e.to_string()),
    }
}

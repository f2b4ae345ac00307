//! `GET /costs`: the caller's LLM spend over a period, grouped by run, project, agent,
//! user or model, with their monthly AI budget; and `PATCH /me`: the caller's settings.

use crate::error::json_response;
use crate::request::{caller, json_body, query_text};
use crate::{ApiError, ApiState};
use autocrew_shared::domain::requests::Settings;
use autocrew_shared::domain::{MicroUsd, PlanId, ProjectId, UserId};
use autocrew_shared::ports::{
    Analytics, BudgetStore, CostGroup, CostQuery, CostRollup, Ledger, ProjectStore,
};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// The longest period one rollup covers.
const MAX_DAYS: i64 = 366;

/// `2026-11-01` (midnight UTC) or an RFC 3339 time.
fn instant(name: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(date) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)));
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad(
                name,
                format!("must be a date like 2026-11-01 or an RFC 3339 time, got {raw:?}"),
            )
        })
}

fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let first = NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap_or(now.date_naive());
    Utc.from_utc_datetime(&first.and_time(chrono::NaiveTime::MIN))
}

/// `?from=&to=`, checked: this month so far by default, at most `MAX_DAYS` long.
pub(crate) fn period(request: &Request) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    period_of(
        query_text(request, "from").as_deref(),
        query_text(request, "to").as_deref(),
    )
}

/// `from` and `to` as given (a date or an RFC 3339 time each), checked: this month so far
/// by default, at most `MAX_DAYS` long.
pub(crate) fn period_of(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let now = Utc::now();
    let from = match from {
        Some(raw) => instant("from", raw)?,
        None => month_start(now),
    };
    let to = match to {
        Some(raw) => instant("to", raw)?,
        None => now,
    };
    if from >= to {
        return Err(ApiError::bad("to", "must be after from"));
    }
    if (to - from).num_days() > MAX_DAYS {
        return Err(ApiError::bad(
            "to",
            format!("the period may be at most {MAX_DAYS} days"),
        ));
    }
    Ok((from, to))
}

/// Spend over a period, grouped.
#[derive(Debug, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
pub(crate) struct CostReport {
    pub by: CostGroup,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub project_id: Option<ProjectId>,
    /// Costliest first.
    pub groups: Vec<CostRollup>,
    pub total: CostTotal,
    /// The current budget period's spend, of every project, against its AI budget.
    pub ai_budget: AiBudget,
}

#[derive(Debug, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
pub(crate) struct CostTotal {
    pub calls: u64,
    pub cost_micro_usd: MicroUsd,
    /// In dollars with six decimals, as text (`$0.012300`).
    pub cost: String,
}

/// The AI budget of the user's current period: a share of the revenue received for it,
/// plus the trial credit left, plus an opted-in overage cap.
#[derive(Debug, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
pub(crate) struct AiBudget {
    pub plan: PlanId,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub limit_micro_usd: MicroUsd,
    pub spent_micro_usd: MicroUsd,
    pub left_micro_usd: MicroUsd,
}

/// `?by=agent&from=2026-11-01&to=2026-12-01&project_id=...`; by defaults to `run`, the
/// period to this month so far.
pub async fn get_costs(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let by: CostGroup = query_text(request, "by")
        .unwrap_or_else(|| "run".into())
        .parse()
        .map_err(|e: String| ApiError::bad("by", e))?;
    let (from, to) = period(request)?;
    let project = match query_text(request, "project_id") {
        Some(raw) => Some(
            ProjectId::parse("project_id", &raw)
                .map_err(|e| ApiError::bad("project_id", e.to_string()))?,
        ),
        None => None,
    };
    let ports = (&*state.projects, &*state.ledger, &*state.budgets);
    let report = cost_report(ports, (user, project), by, (from, to)).await?;
    Ok(json_response(200, &report))
}

/// `user`'s spend over `[from, to)` (of one of their projects, if given), grouped `by`,
/// with their current period's AI budget and what it has used of it.
pub(crate) async fn cost_report(
    (projects, ledger, budgets): (&dyn ProjectStore, &dyn Ledger, &dyn BudgetStore),
    (user, project): (UserId, Option<ProjectId>),
    by: CostGroup,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<CostReport, ApiError> {
    if let Some(id) = project
        && projects.project(id).await?.user_id != user
    {
        return Err(ApiError::NotFound("project"));
    }
    let groups = ledger
        .rollup(CostQuery {
            user,
            project,
            from,
            to,
            by,
        })
        .await?;
    let total: MicroUsd = groups.iter().map(|g| g.cost).sum();
    let calls: u64 = groups.iter().map(|g| g.calls).sum();
    let plan = projects.user(user).await?.plan;
    let period = budgets.standing(user).await?;
    Ok(CostReport {
        by,
        from,
        to,
        project_id: project,
        groups,
        total: CostTotal {
            calls,
            cost_micro_usd: total,
            cost: total.to_string(),
        },
        ai_budget: AiBudget {
            plan,
            period_start: period.starts,
            period_end: period.ends,
            limit_micro_usd: period.limit(),
            spent_micro_usd: period.spent,
            left_micro_usd: period.left(),
        },
    })
}

/// `PATCH /me {"semantic_cache_threshold": 0.92 | null, "timezone": "Europe/Paris"}`: the
/// fields given change.
pub async fn update_me(state: &ApiState, request: &Request) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let settings: Settings = json_body(request)?;
    let Some(overage) = &settings.overage_cap_usd else {
        let updated = settings_changed(&*state.projects, user, &settings).await?;
        return Ok(json_response(200, &updated));
    };
    // Every field is checked before any changes.
    let cap = crate::billing::overage_cap_asked(&state.billing, user, overage.as_deref()).await?;
    let updated = match settings.semantic_cache_threshold.is_some() || settings.timezone.is_some() {
        true => settings_changed(&*state.projects, user, &settings).await?,
        false => crate::auth::UserAnswer {
            user: state.projects.user(user).await?,
        },
    };
    state.billing.store.set_overage_cap(user, cap).await?;
    Ok(json_response(200, &updated))
}

/// The caller's settings, checked together, then changed: the semantic cache's threshold
/// (0.5-1.0, or `null` to opt out) and the time zone (an IANA name).
pub(crate) async fn settings_changed(
    projects: &dyn ProjectStore,
    user: UserId,
    settings: &Settings,
) -> Result<crate::auth::UserAnswer, ApiError> {
    if let Some(Some(t)) = settings.semantic_cache_threshold
        && !(0.5..=1.0).contains(&t)
    {
        return Err(ApiError::bad(
            "semantic_cache_threshold",
            "must be between 0.5 and 1.0 (cosine similarity), or null to turn the semantic cache off",
        ));
    }
    let timezone = settings
        .timezone
        .as_deref()
        .map(|tz| {
            autocrew_shared::domain::schedule::time_zone(tz)
                .map(|tz| tz.name().to_owned())
                .map_err(|e| ApiError::bad("timezone", e))
        })
        .transpose()?;
    if settings.semantic_cache_threshold.is_none() && timezone.is_none() {
        return Err(ApiError::bad(
            "body",
            "change at least one of semantic_cache_threshold, timezone, overage_cap_usd",
        ));
    }
    let mut changed = None;
    if let Some(threshold) = settings.semantic_cache_threshold {
        changed = Some(projects.set_semantic_cache(user, threshold).await?);
    }
    if let Some(tz) = &timezone {
        changed = Some(projects.set_timezone(user, tz).await?);
    }
    let user = match changed {
        Some(user) => user,
        None => projects.user(user).await?,
    };
    Ok(crate::auth::UserAnswer { user })
}

/// `GET /analytics?from=&to=&project_id=`: runs per day, success rate, median duration,
/// cost per task and per agent, cache hit rate, over the period (this month by default).
pub async fn get_analytics(
    state: &ApiState,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let user = caller(state, request).await?;
    let (from, to) = period(request)?;
    let project = match query_text(request, "project_id") {
        Some(raw) => Some(
            ProjectId::parse("project_id", &raw)
                .map_err(|e| ApiError::bad("project_id", e.to_string()))?,
        ),
        None => None,
    };
    let analytics = state.browse.analytics(user, project, from, to).await?;
    Ok(json_response(200, &analytics))
}

pub(crate) mod spec {
    use super::*;
    use crate::openapi::{Spec, period, query_of};

    pub fn get_costs() -> Spec {
        Spec::new("Spend over a period, grouped.")
            .query([query_of::<CostGroup>("by", "How to group (default run).")])
            .query(period())
            .reply::<CostReport>(200)
    }

    pub fn update_me() -> Spec {
        Spec::new("The caller's settings: the semantic cache opt-in, the time zone and the overage cap (409 without a paid plan that allows overage).")
            .body::<Settings>()
            .reply::<crate::auth::UserAnswer>(200)
    }

    pub fn get_analytics() -> Spec {
        Spec::new("Runs per day, success rate, median duration, cost per task and per agent, cache hit rate.")
            .query(period())
            .reply::<Analytics>(200)
    }
}

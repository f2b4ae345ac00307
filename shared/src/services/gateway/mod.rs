//! The LLM gateway: every model call goes through here. It routes the call to a chain of
//! models by policy, answers from the caches when it can, and otherwise, for each model in
//! turn: reserves the worst-case cost, takes a provider concurrency slot, calls (retrying
//! rate limits after `retry-after` and 5xx/timeouts with backoff), settles the actual cost
//! and writes the attempt to the ledger. Every attempt, hit and refusal gets a ledger row.

mod cache;
mod images;
pub use images::Image;
mod settings;

pub use cache::{cache_key, question_of};
pub use settings::GatewaySettings;

use super::backoff::backoff;
use crate::crew::strict::drop_nulls;
use crate::domain::models::ModelTable;
use crate::domain::records::{Attribution, LlmCall, TokenUsage};
use crate::domain::routing::{ModelRef, Route, RoutingError, RoutingPolicy};
use crate::domain::{LlmCallOutcome, MicroUsd};
use crate::ports::llm::Refusal;
use crate::ports::llm::{Content, LlmRequest, LlmResponse, TextSink};
use crate::ports::{
    BudgetError, BudgetStore, CallBook, Embedder, Embedding, ImageMaker, Ledger, LlmClient,
    LlmError, OpenCall, ResponseCache, SemanticCache, Slots, StoreError,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The providers a process can call, by the name the ledger and price table use.
pub type Providers = HashMap<String, Arc<dyn LlmClient>>;

/// One logical call.
pub struct Call<'a> {
    pub attribution: Attribution,
    /// The routing tier, from the agent's model policy and the task's complexity.
    pub tier: &'a str,
    /// The request; its `model` is set for each model of the chain.
    pub request: LlmRequest,
    /// Stream text to this sink as it arrives.
    pub on_text: Option<&'a TextSink>,
    /// For user-facing questions: the semantic cache scope (used only for users who opted in).
    pub semantic_scope: Option<&'a str>,
    /// Only answers this accepts are cached or taken from a cache (say, a plan that
    /// passes its checks); without it, every answer is.
    pub accept: Option<&'a Acceptance>,
    /// Whether the exact cache may answer this call with another user's answer. Off by
    /// default: a hit at $0 would tell one user that another sent the same prompt. Only a
    /// prompt that holds no user data may share.
    pub share_cache: bool,
    /// The latest this call may still wait, for a concurrency slot or a provider's
    /// `retry-after` (the task's invocation and the run's deadline); past it the chain
    /// moves on. `None`: the settings' limits alone.
    pub wait_until: Option<Instant>,
    /// Told in a few words whenever the call waits ("waiting for anthropic: ...").
    pub on_wait: Option<&'a WaitSink>,
}

/// See `Call::on_wait`.
pub type WaitSink = dyn Fn(&str) + Send + Sync;

/// See `Call::accept`.
pub type Acceptance = dyn Fn(&LlmResponse) -> bool + Send + Sync;

impl Call<'_> {
    fn accepts(&self, response: &LlmResponse) -> bool {
        self.accept.is_none_or(|accept| accept(response))
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Provider,
    ExactCache,
    SemanticCache,
}

/// A call's answer and how it was got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub response: LlmResponse,
    pub route: Route,
    pub source: Source,
    /// Ledger rows written for this call (attempts, hits and refusals).
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Every model of the chain failed or was refused; this is the error that decides
    /// whether the task is retried (a budget refusal is not).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Our own storage failed: retry the message later.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Routing(#[from] RoutingError),
}

/// The stores the gateway writes to.
#[derive(Clone)]
pub struct GatewayStores {
    pub budgets: Arc<dyn BudgetStore>,
    pub ledger: Arc<dyn Ledger>,
    pub cache: Arc<dyn ResponseCache>,
    pub semantic: Arc<dyn SemanticCache>,
    /// Each call's reservation and provider slot before it, and its settlement, slot
    /// release and ledger row after it: one transaction at each end.
    pub calls: Arc<dyn CallBook>,
}

/// The models a gateway can call and how it chooses among them.
#[derive(Clone)]
pub struct GatewayModels {
    /// Every configured provider by name.
    pub providers: Providers,
    /// What a call uses when no model of its route is configured.
    pub primary: ModelRef,
    /// Every call uses the primary (then the fallbacks), whatever the routing policy says.
    pub pinned: bool,
    /// Tried after the routed chain, in order.
    pub fallbacks: Vec<ModelRef>,
    pub routing: Arc<RoutingPolicy>,
    /// Prices and capabilities of every model a call may use.
    pub table: Arc<ModelTable>,
    pub embedder: Arc<dyn Embedder>,
    /// Images: OpenAI's Images API, or the offline drawing.
    pub images: Arc<dyn ImageMaker>,
}

impl GatewayModels {
    /// Every call to `client` with `model` (as `LLM_MODEL` pins it).
    pub fn pinned_to(mut self, client: Arc<dyn LlmClient>, model: &str) -> Self {
        let provider = client.provider().to_owned();
        self.primary = ModelRef {
            provider: provider.clone(),
            model: model.to_owned(),
        };
        self.providers.insert(provider, client);
        self.pinned = true;
        self
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Gateway {
    models: GatewayModels,
    stores: GatewayStores,
    settings: GatewaySettings,
}

/// The most a request can cost: every byte of its prompt as a token (a token is never
/// shorter than a byte) and every allowed output token.
pub fn worst_case(request: &LlmRequest) -> TokenUsage {
    let len = |v: serde_json::Result<String>| v.map(|s| s.len()).unwrap_or(0);
    let prompt = request.system.len()
        + len(serde_json::to_string(&request.messages))
        + len(serde_json::to_string(&request.tools))
        + request
            .response_schema
            .as_ref()
            .map(|s| s.to_string().len())
            .unwrap_or(0);
    TokenUsage {
        input: u32::try_from(prompt).unwrap_or(u32::MAX),
        output: request.max_tokens,
        cache_write: 0,
        cache_read: 0,
    }
}

/// How one attempt ended, for the ledger.
struct Attempt {
    model: ModelRef,
    outcome: LlmCallOutcome,
    usage: TokenUsage,
    cost: MicroUsd,
    started: Instant,
    error: Option<String>,
    /// Spent waiting before it: for a slot, or as the provider asked.
    waited: Duration,
}

impl Gateway {
    pub fn new(models: GatewayModels, stores: GatewayStores, settings: GatewaySettings) -> Self {
        Gateway {
            models,
            stores,
            settings,
        }
    }

    pub fn models(&self) -> &GatewayModels {
        &self.models
    }

    /// The same gateway over other models (tests, and a process changing providers).
    pub fn with_models(&self, models: GatewayModels) -> Gateway {
        Gateway {
            models,
            ..self.clone()
        }
    }

    /// The same gateway with other settings.
    pub fn with_settings(&self, settings: GatewaySettings) -> Gateway {
        Gateway {
            settings,
            ..self.clone()
        }
    }

    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }

    /// The chain for `tier` with `percent_left` of the budget left, then the fallbacks.
    pub fn route(&self, tier: &str, percent_left: u8) -> Result<Route, RoutingError> {
        let m = &self.models;
        let mut route = match m.pinned {
            true => Route {
                tier: "pinned".into(),
                downgraded_by: 0,
                chain: vec![m.primary.clone()],
            },
            false => m.routing.route(tier, percent_left, |r| {
                m.providers.contains_key(&r.provider)
            })?,
        };
        if route.chain.is_empty() {
            route.chain.push(m.primary.clone());
        }
        for fallback in &m.fallbacks {
            if !route.chain.contains(fallback) {
                route.chain.push(fallback.clone());
            }
        }
        Ok(route)
    }

    /// Makes the call; see the module documentation.
    #[tracing::instrument(name = "llm.call", skip_all, fields(tier = call.tier))]
    pub async fn call(&self, call: Call<'_>) -> Result<Answer, GatewayError> {
        let who = &call.attribution;
        let percent_left = self
            .stores
            .budgets
            .percent_left(who.user_id, who.run_id)
            .await?;
        let route = self.route(call.tier, percent_left)?;
        let mut rows = 0u32;
        let question = match call.semantic_scope {
            Some(scope) => self.semantic_lookup(&call, scope, &mut rows).await?,
            None => None,
        };
        if let Some(answer) = question.as_ref().and_then(|q| q.hit.clone()) {
            return Ok(Answer {
                response: answer,
                route,
                source: Source::SemanticCache,
                attempts: rows,
            });
        }
        let mut last: Option<LlmError> = None;
        let mut budget_refusal: Option<LlmError> = None;
        for model in &route.chain {
            let mut request = call.request.clone();
            request.model = model.model.clone();
            // A model missing from the table gets nothing optional; try_model refuses it.
            request.capabilities = self
                .models
                .table
                .capabilities(&model.provider, &model.model)
                .cloned()
                .unwrap_or_default();
            match self.try_model(&call, model, &request, &mut rows).await? {
                Ok((response, source)) => {
                    // A hit of the exact cache is an answer too: keep it for close questions.
                    if let (Some(q), true) = (&question, call.accepts(&response)) {
                        self.semantic_store(&call, q, &response).await?;
                    }
                    return Ok(Answer {
                        response,
                        route,
                        source,
                        attempts: rows,
                    });
                }
                // A refused parameter would be refused again down the chain: stop, loudly.
                Err(e @ LlmError::Misconfigured { .. }) => {
                    tracing::error!(model = %model, error = %e, "the model table or adapter is wrong");
                    return Err(GatewayError::Llm(e));
                }
                Err(e) => {
                    tracing::warn!(model = %model, error = %e, "model failed; trying the next in the chain");
                    if is_budget_refusal(&e) {
                        budget_refusal = Some(e);
                    } else {
                        last = Some(e);
                    }
                }
            }
        }
        // A budget refusal explains more than an earlier model's outage.
        Err(GatewayError::Llm(budget_refusal.or(last).unwrap_or_else(
            || LlmError::Refused {
                provider: self.models.primary.provider.clone(),
                model: self.models.primary.model.clone(),
                reason: Refusal::NoRoute("no model to route the call to".into()),
            },
        )))
    }

    /// One model of the chain: the exact cache, then up to `1 + retries_per_model` tries.
    async fn try_model(
        &self,
        call: &Call<'_>,
        model: &ModelRef,
        request: &LlmRequest,
        rows: &mut u32,
    ) -> Result<Result<(LlmResponse, Source), LlmError>, GatewayError> {
        let started = Instant::now();
        let refused = |reason: Refusal| LlmError::Refused {
            provider: model.provider.clone(),
            model: model.model.clone(),
            reason,
        };
        let Some(client) = self.models.providers.get(&model.provider) else {
            let e = refused(Refusal::ProviderNotConfigured(model.provider.clone()));
            self.record(
                &call.attribution,
                rows,
                Attempt::failed(model, LlmCallOutcome::Refused, started, &e),
            )
            .await?;
            return Ok(Err(e));
        };
        let owner = (!call.share_cache).then_some(call.attribution.user_id);
        let key = cache_key(owner, &model.provider, request);
        let cached = match self.settings.cache_ttl {
            Some(_) => self.stores.cache.get(&key).await?,
            None => None,
        };
        if let Some(mut hit) = cached.filter(|h| call.accepts(h)) {
            hit.usage = TokenUsage::default();
            self.record(&call.attribution, rows, Attempt::hit(model, started, None))
                .await?;
            return Ok(Ok((hit, Source::ExactCache)));
        }
        let price = match self.models.table.price(&model.provider, &model.model) {
            Ok(price) => price,
            Err(e) => {
                let e = refused(Refusal::Unpriced(e.to_string()));
                self.record(
                    &call.attribution,
                    rows,
                    Attempt::failed(model, LlmCallOutcome::Refused, started, &e),
                )
                .await?;
                return Ok(Err(e));
            }
        };
        let mut tries = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            tries += 1;
            let started = Instant::now();
            let outcome = |result: &Result<LlmResponse, LlmError>| match result {
                Ok(r) => Attempt::ok(model, r.usage, price.cost(r.usage), started),
                Err(e @ (LlmError::Refused { .. } | LlmError::Declined { .. })) => {
                    Attempt::failed(model, LlmCallOutcome::Refused, started, e)
                }
                Err(e) => {
                    // A cut stream is charged for what it sent.
                    let mut failed = Attempt::failed(model, LlmCallOutcome::Error, started, e);
                    if let Some(usage) = e.usage() {
                        (failed.usage, failed.cost) = (usage, price.cost(usage));
                    }
                    failed
                }
            };
            let amount = price.cost(worst_case(request));
            let waiting = (&call.attribution, call.wait_until, call.on_wait);
            let (opened, for_slot) = self
                .open(waiting, (model, request.max_tokens), amount)
                .await?;
            waited += for_slot;
            let waited_before = |mut attempt: Attempt| {
                attempt.waited = waited;
                attempt
            };
            let result = match opened {
                Err(refused) => {
                    let result = Err(refused);
                    let attempt = waited_before(outcome(&result));
                    self.record(&call.attribution, rows, attempt).await?;
                    result
                }
                Ok(open) => {
                    let result = match call.on_text {
                        Some(sink) => client.stream(request, sink).await,
                        None => client.complete(request).await,
                    };
                    let attempt = waited_before(outcome(&result));
                    let row = self.row(&call.attribution, rows, attempt);
                    self.stores.calls.close(&open, &row).await?;
                    result
                }
            };
            let error = match result {
                Ok(mut response) => {
                    absent_for_null(request, &mut response);
                    if let (Some(ttl), true) = (self.settings.cache_ttl, call.accepts(&response)) {
                        self.stores.cache.put(&key, &response, ttl).await?;
                    }
                    return Ok(Ok((response, Source::Provider)));
                }
                Err(e) => e,
            };
            let Some(wait) = self.retry_wait(&error, tries, call.wait_until) else {
                return Ok(Err(error));
            };
            tracing::info!(model = %model, error = %error, ?wait, "retrying the same model");
            if let (Some(asked), Some(tell)) = (error.retry_after(), call.on_wait) {
                tell(&format!(
                    "waiting {} s for {}, as it asked ({error})",
                    asked.as_secs(),
                    model.provider
                ));
            }
            tokio::time::sleep(wait).await;
            waited = wait;
        }
    }

    /// How long to wait before trying the same model again, or `None` to move on: what
    /// the provider asked (a rate limit, an overload), unless that is longer than
    /// `max_retry_after`; a backoff for other outages. Never past `wait_until`.
    fn retry_wait(
        &self,
        error: &LlmError,
        tries: u32,
        wait_until: Option<Instant>,
    ) -> Option<Duration> {
        if !error.is_retryable() || tries > self.settings.retries_per_model {
            return None;
        }
        let wait = match error.retry_after() {
            Some(asked) if asked > self.settings.max_retry_after => return None,
            Some(asked) => asked,
            None => backoff(tries, self.settings.backoff_base, self.settings.backoff_max),
        };
        match wait_until {
            Some(until) if Instant::now() + wait > until => None,
            _ => Some(wait),
        }
    }

    /// The concurrency slots a call of `model` takes one of: the model's own (its
    /// `max_in_flight` in the table), else its provider's.
    fn slots_of<'m>(&self, model: &'m ModelRef) -> (std::borrow::Cow<'m, str>, u32) {
        match self
            .models
            .table
            .max_in_flight(&model.provider, &model.model)
        {
            Some(limit) => (format!("{}/{}", model.provider, model.model).into(), limit),
            None => (
                model.provider.as_str().into(),
                self.settings.concurrency_for(&model.provider),
            ),
        }
    }

    /// Reserves `amount` (the request's worst case) and leases one of the model's
    /// concurrency slots, together, and says how long it waited for the slot. `Err` is the
    /// refusal the model is given: the budget's, or the provider's when no slot frees
    /// within `slot_wait` or before `wait_until` (so the chain moves on). While it waits,
    /// `on_wait` is told once.
    async fn open(
        &self,
        (who, wait_until, on_wait): (&Attribution, Option<Instant>, Option<&WaitSink>),
        (model, max_tokens): (&ModelRef, u32),
        amount: MicroUsd,
    ) -> Result<(Result<OpenCall, LlmError>, Duration), StoreError> {
        let (key, limit) = self.slots_of(model);
        let slots = Slots {
            provider: &key,
            limit,
            lease_for: self.settings.slot_lease(max_tokens),
        };
        let started = Instant::now();
        let mut deadline = started + self.settings.slot_wait;
        if let Some(until) = wait_until {
            deadline = deadline.min(until);
        }
        let mut waits = 0;
        loop {
            let refused = |reason: Refusal| LlmError::Refused {
                provider: model.provider.clone(),
                model: model.model.clone(),
                reason,
            };
            let opened = self
                .stores
                .calls
                .open(who.user_id, (who.run_id, who.task_id), amount, &slots)
                .await;
            let answer = match opened {
                Ok(Some(open)) => Ok(open),
                Ok(None) if Instant::now() >= deadline => Err(LlmError::Unavailable {
                    provider: model.provider.clone(),
                    model: model.model.clone(),
                    status: 0,
                    retry_after_secs: None,
                }),
                Ok(None) => {
                    if waits == 0
                        && let Some(tell) = on_wait
                    {
                        tell(&format!(
                            "waiting for {}: all {limit} of its slots ({key}) are in use",
                            model.provider
                        ));
                    }
                    waits += 1;
                    tokio::time::sleep(backoff(
                        waits.min(5),
                        Duration::from_millis(20),
                        Duration::from_millis(500),
                    ))
                    .await;
                    continue;
                }
                Err(BudgetError::Exceeded {
                    scope,
                    needed,
                    available,
                }) => Err(refused(Refusal::BudgetExceeded {
                    scope,
                    needed,
                    available,
                })),
                Err(BudgetError::RunEnded { run, status }) => {
                    Err(refused(Refusal::RunEnded { run, status }))
                }
                Err(BudgetError::Store(e)) => return Err(e),
            };
            let waited = match waits {
                0 => Duration::ZERO,
                _ => started.elapsed(),
            };
            return Ok((answer, waited));
        }
    }

    /// The ledger row of this call's latest attempt (numbered in `rows`).
    fn row(&self, who: &Attribution, rows: &mut u32, attempt: Attempt) -> LlmCall {
        *rows += 1;
        LlmCall {
            attribution: *who,
            provider: attempt.model.provider,
            model: attempt.model.model,
            outcome: attempt.outcome,
            usage: attempt.usage,
            cost: attempt.cost,
            latency_ms: u32::try_from(attempt.started.elapsed().as_millis()).unwrap_or(u32::MAX),
            error: attempt.error,
            attempt: *rows,
            waited_ms: u32::try_from(attempt.waited.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Writes one ledger row for this call, for an attempt that held nothing.
    async fn record(
        &self,
        who: &Attribution,
        rows: &mut u32,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        let row = self.row(who, rows, attempt);
        self.stores.ledger.record(&row).await
    }
}

/// Strict structured output answers an absent optional property with null: put the
/// absence back, in the answer and in tool arguments, so our own schemas read them.
fn absent_for_null(request: &LlmRequest, response: &mut LlmResponse) {
    for block in &mut response.content {
        match block {
            Content::Text { text } => {
                let Some(schema) = &request.response_schema else {
                    continue;
                };
                let trimmed = crate::crew::planner::strip_fences(text);
                if let Ok(value) = serde_json::from_str(trimmed) {
                    *text = drop_nulls(schema, value).to_string();
                }
            }
            Content::ToolUse { name, input, .. } => {
                if let Some(tool) = request.tools.iter().find(|t| &t.name == name) {
                    *input = drop_nulls(&tool.input_schema, std::mem::take(input));
                }
            }
            _ => {}
        }
    }
}

fn is_budget_refusal(e: &LlmError) -> bool {
    matches!(
        e,
        LlmError::Refused {
            reason: Refusal::BudgetExceeded { .. },
            ..
        }
    )
}

impl Attempt {
    fn ok(model: &ModelRef, usage: TokenUsage, cost: MicroUsd, started: Instant) -> Self {
        Attempt {
            model: model.clone(),
            outcome: LlmCallOutcome::Ok,
            usage,
            cost,
            started,
            error: None,
            waited: Duration::ZERO,
        }
    }

    fn hit(model: &ModelRef, started: Instant, note: Option<String>) -> Self {
        Attempt {
            model: model.clone(),
            outcome: LlmCallOutcome::CacheHit,
            usage: TokenUsage::default(),
            cost: MicroUsd::ZERO,
            started,
            error: note,
            waited: Duration::ZERO,
        }
    }

    fn failed(model: &ModelRef, outcome: LlmCallOutcome, started: Instant, e: &LlmError) -> Self {
        Attempt {
            model: model.clone(),
            outcome,
            usage: TokenUsage::default(),
            cost: MicroUsd::ZERO,
            started,
            error: Some(e.to_string()),
            waited: Duration::ZERO,
        }
    }
}

/// A user-facing question, embedded for the semantic cache.
struct Question {
    scope: String,
    text: String,
    embedding: Embedding,
    hit: Option<LlmResponse>,
}

impl Gateway {
    /// Embeds `texts` with the configured embedder, priced and written to the ledger like
    /// any call (attributed to `who`). A failed embedding is recorded, then returned.
    pub async fn embed(
        &self,
        who: &Attribution,
        texts: &[String],
    ) -> Result<Vec<Embedding>, GatewayError> {
        let mut rows = 0;
        self.embed_counted(who, &mut rows, texts)
            .await?
            .map_err(GatewayError::Llm)
    }

    /// `embed`, numbering its ledger row among the call's (`rows`); only our own storage's
    /// failure is an `Err`, the embedder's is the inner one.
    async fn embed_counted(
        &self,
        who: &Attribution,
        rows: &mut u32,
        texts: &[String],
    ) -> Result<Result<Vec<Embedding>, LlmError>, StoreError> {
        let started = Instant::now();
        let model = ModelRef {
            provider: self.models.embedder.provider().to_owned(),
            model: self.models.embedder.model().to_owned(),
        };
        let (vectors, tokens) = match self.models.embedder.embed(texts).await {
            Ok(ok) => ok,
            Err(e) => {
                self.record(
                    who,
                    rows,
                    Attempt::failed(&model, LlmCallOutcome::Error, started, &e),
                )
                .await?;
                return Ok(Err(e));
            }
        };
        let usage = TokenUsage {
            input: tokens,
            ..TokenUsage::default()
        };
        let cost = self
            .models
            .table
            .price(&model.provider, &model.model)
            .map(|p| p.cost(usage))
            .unwrap_or(MicroUsd::ZERO);
        self.record(who, rows, Attempt::ok(&model, usage, cost, started))
            .await?;
        if vectors.len() != texts.len() {
            return Ok(Err(LlmError::Rejected {
                provider: model.provider,
                model: model.model,
                message: format!("{} vectors for {} texts", vectors.len(), texts.len()),
            }));
        }
        Ok(Ok(vectors
            .into_iter()
            .map(|values| Embedding {
                model: model.model.clone(),
                values,
            })
            .collect()))
    }

    /// For a user who opted in: embeds the question and looks for one close enough. The
    /// embedding itself is priced and written to the ledger like any call.
    async fn semantic_lookup(
        &self,
        call: &Call<'_>,
        scope: &str,
        rows: &mut u32,
    ) -> Result<Option<Question>, GatewayError> {
        let Some(threshold) = self
            .stores
            .semantic
            .threshold(call.attribution.user_id)
            .await?
        else {
            return Ok(None);
        };
        let text = question_of(&call.request);
        let started = Instant::now();
        let embedded = self
            .embed_counted(&call.attribution, rows, std::slice::from_ref(&text))
            .await?;
        let Some(embedding) = embedded.ok().and_then(|v| v.into_iter().next()) else {
            // The cache is an optimisation: without a vector, call the model.
            return Ok(None);
        };
        let hit = self
            .stores
            .semantic
            .nearest(call.attribution.user_id, scope, &embedding, threshold)
            .await?;
        let hit = match hit.filter(|h| call.accepts(&h.response)) {
            Some(hit) => {
                let answered_by = ModelRef {
                    provider: hit.response.provider.clone(),
                    model: hit.response.model.clone(),
                };
                let note = format!(
                    "semantic cache: similarity {:.3} to {:?}",
                    hit.similarity, hit.prompt
                );
                self.record(
                    &call.attribution,
                    rows,
                    Attempt::hit(&answered_by, started, Some(note)),
                )
                .await?;
                let mut response = hit.response;
                response.usage = TokenUsage::default();
                Some(response)
            }
            None => None,
        };
        Ok(Some(Question {
            scope: scope.to_owned(),
            text,
            embedding,
            hit,
        }))
    }

    async fn semantic_store(
        &self,
        call: &Call<'_>,
        q: &Question,
        response: &LlmResponse,
    ) -> Result<(), StoreError> {
        self.stores
            .semantic
            .put(
                call.attribution.user_id,
                &q.scope,
                &q.text,
                &q.embedding,
                response,
                self.settings.semantic_ttl,
            )
            .await
    }
}

//! Images through the gateway: like a model call, an image is priced from the model table,
//! its worst case (the prompt and the image's output tokens at its size and quality) is
//! reserved against the run's and the user's budgets before the provider is called, and
//! the call is settled at its actual cost and written to the ledger. A budget that cannot
//! cover it refuses it before anything is spent.

use super::{Attempt, Gateway, GatewayError};
use crate::domain::LlmCallOutcome;
use crate::domain::MicroUsd;
use crate::domain::records::{Attribution, TokenUsage};
use crate::domain::routing::ModelRef;
use crate::ports::ImageRequest;
use crate::ports::llm::LlmError;
use crate::ports::llm::Refusal;
use std::time::Instant;

/// An image made, and what it cost.
#[derive(Debug, Clone)]
pub struct Image {
    pub png: Vec<u8>,
    pub provider: String,
    pub model: String,
    pub cost: MicroUsd,
}

impl Gateway {
    /// Makes one image for `who`; `Ok(Err)` is the provider's or the budget's refusal, to
    /// tell the agent.
    pub async fn image(
        &self,
        who: Attribution,
        request: &ImageRequest,
    ) -> Result<Result<Image, LlmError>, GatewayError> {
        let maker = &self.models.images;
        let model = ModelRef {
            provider: maker.provider().to_owned(),
            model: maker.model().to_owned(),
        };
        let mut rows = 0u32;
        let started = Instant::now();
        let price = match self.models.table.price(&model.provider, &model.model) {
            Ok(price) => price,
            Err(e) => {
                let e = LlmError::Refused {
                    provider: model.provider.clone(),
                    model: model.model.clone(),
                    reason: Refusal::Unpriced(e.to_string()),
                };
                let attempt = Attempt::failed(&model, LlmCallOutcome::Refused, started, &e);
                self.record(&who, &mut rows, attempt).await?;
                return Ok(Err(e));
            }
        };
        // The prompt's tokens are at most its bytes; the image's are fixed by its size.
        let worst = TokenUsage {
            input: u32::try_from(request.prompt.len()).unwrap_or(u32::MAX),
            output: request.output_tokens(),
            ..TokenUsage::default()
        };
        let (opened, _) = self
            .open(
                (&who, None, None),
                (&model, worst.output),
                price.cost(worst),
            )
            .await?;
        let open = match opened {
            Ok(open) => open,
            Err(refused) => {
                let attempt = Attempt::failed(&model, LlmCallOutcome::Refused, started, &refused);
                self.record(&who, &mut rows, attempt).await?;
                return Ok(Err(refused));
            }
        };
        let result = maker.generate(request).await;
        let attempt = match &result {
            Ok((_, usage)) => Attempt::ok(&model, *usage, price.cost(*usage), started),
            Err(e) => Attempt::failed(&model, LlmCallOutcome::Error, started, e),
        };
        let cost = attempt.cost;
        let row = self.row(&who, &mut rows, attempt);
        self.stores.calls.close(&open, &row).await?;
        Ok(result.map(|(png, _)| Image {
            png,
            provider: model.provider,
            model: model.model,
            cost,
        }))
    }
}

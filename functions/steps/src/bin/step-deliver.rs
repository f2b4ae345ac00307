//! Lambda function `step-deliver`, fed by the notice queue: push notifications and webhooks.
use autocrew_steps::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_steps::run_lambda(Step::Deliver).await
}

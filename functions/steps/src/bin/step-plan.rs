//! Lambda function `step-plan`, fed by its SQS queue.
use autocrew_steps::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_steps::run_lambda(Step::Plan).await
}

//! Lambda function `step-reply`, fed by its SQS queue.
use autocrew_steps::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_steps::run_lambda(Step::Reply).await
}

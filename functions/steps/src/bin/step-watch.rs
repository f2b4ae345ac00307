//! Lambda function `step-watch`, fed by the job-watch state machine's poll queue.
use autocrew_steps::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_steps::run_lambda(Step::Watch).await
}

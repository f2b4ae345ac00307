//! Lambda function `schedule-fire` (EventBridge Scheduler's target: one fire of a project's
//! schedule).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_sweep::fire::run_lambda().await
}

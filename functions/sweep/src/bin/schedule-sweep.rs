//! Lambda function `schedule-sweep` (EventBridge schedule, every five minutes).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_sweep::run_lambda().await
}

//! Lambda function `step-sales`, fed by its SQS queue.
use autocrew_shared::domain::AgentKind;
use autocrew_steps::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_steps::run_lambda(Step::Agent(AgentKind::Sales)).await
}

//! Lambda function `api-remove-device` (API Gateway HTTP API).
use autocrew_api::Route;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    autocrew_api::run_lambda(Route::RemoveDevice).await
}

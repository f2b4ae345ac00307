//! Lambda function `api-graphql` (API Gateway HTTP API).
use autocrew_api::Route;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    autocrew_api::run_lambda(Route::GraphQl).await
}

//! Lambda function `ws-connect` (WebSocket API route `$connect`).
use autocrew_ws::WsRoute;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_ws::run_lambda(WsRoute::Connect).await
}

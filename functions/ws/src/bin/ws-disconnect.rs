//! Lambda function `ws-disconnect` (WebSocket API route `$disconnect`).
use autocrew_ws::WsRoute;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_ws::run_lambda(WsRoute::Disconnect).await
}

//! Lambda function `ws-default` (WebSocket API route `$default`).
use autocrew_ws::WsRoute;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    autocrew_ws::run_lambda(WsRoute::Default).await
}

//! `RealtimePush` on API Gateway's `@connections` management API.

use super::boxed;
use crate::ports::{PushError, RealtimePush};
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::primitives::Blob;

/// Pushes to WebSocket clients through `POST @connections/{id}`. The endpoint is the
/// WebSocket API's callback URL (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`
/// on AWS, the local runner's address locally).
#[derive(Clone)]
pub struct ApiGatewayPush {
    client: aws_sdk_apigatewaymanagement::Client,
}

impl ApiGatewayPush {
    pub fn new(sdk: &aws_config::SdkConfig, callback_url: &str) -> Self {
        let config = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .interceptor(super::metering::Metering)
            .endpoint_url(callback_url)
            .build();
        ApiGatewayPush {
            client: aws_sdk_apigatewaymanagement::Client::from_conf(config),
        }
    }
}

/// API Gateway's 410 means the client is gone; anything else is a failure to report.
fn failed<E: std::error::Error + Send + Sync + 'static>(
    connection: &str,
    gone: bool,
    e: E,
) -> PushError {
    match gone {
        true => PushError::Gone(connection.to_owned()),
        false => PushError::Backend {
            connection: connection.to_owned(),
            source: boxed(e),
        },
    }
}

#[async_trait]
impl RealtimePush for ApiGatewayPush {
    async fn post(&self, connection_id: &str, data: &[u8]) -> Result<(), PushError> {
        self.client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await
            .map_err(|e| {
                let gone = e.as_service_error().is_some_and(|s| s.is_gone_exception());
                failed(connection_id, gone, e)
            })?;
        Ok(())
    }

    async fn close(&self, connection_id: &str) -> Result<(), PushError> {
        self.client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
            .map_err(|e| {
                let gone = e.as_service_error().is_some_and(|s| s.is_gone_exception());
                failed(connection_id, gone, e)
            })?;
        Ok(())
    }
}

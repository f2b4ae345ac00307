//! AWS adapters. Each client is built once from one `SdkConfig`; with `AWS_ENDPOINT_URL` set
//! they all talk to the local emulator instead.

mod apigw;
mod dynamodb;
mod kms;
pub mod metering;
mod rds_auth;
mod s3;
mod scheduler;
mod secrets;
mod sfn;
mod sqs;

pub use apigw::ApiGatewayPush;
pub use dynamodb::{CONNECTION_ID, DynamoConnectionRegistry, PROJECT_ID, PROJECT_INDEX};
pub use kms::KmsKeyKeeper;
pub use rds_auth::RdsAuth;
pub use s3::S3BlobStore;
pub use scheduler::{EventBridgeTimers, TimerSettings};
pub use secrets::SecretsManager;
pub use sfn::SfnStateMachine;
pub use sqs::{SqsQueue, TRACEPARENT};

use crate::config::AwsConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the shared SDK configuration: region and endpoint from our config, credentials
/// from the default chain (the environment locally, the execution role on Lambda).
pub async fn sdk_config(config: &AwsConfig) -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
    if let Some(url) = &config.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An SDK error with its whole chain, boxed for a port error's `source`.
pub(crate) fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> crate::ports::BackendError {
    Box::new(e)
}

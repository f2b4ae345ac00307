//! Typed ids: a `TaskId` can never be passed where a `RunId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the textual form, naming the field on failure.
            pub fn parse(field: &str, text: &str) -> Result<Self, InvalidId> {
                Uuid::parse_str(text.trim())
                    .map(Self)
                    .map_err(|_| InvalidId { field: field.to_owned(), value: text.to_owned() })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::schema::uuid()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// A user of the app.
    UserId
);
id_type!(
    /// A project: the unit the event stream and sequence numbers belong to.
    ProjectId
);
id_type!(
    /// One run: a command, its plan and its state machine execution.
    RunId
);
id_type!(
    /// One task of a run's plan.
    TaskId
);
id_type!(
    /// A stored artifact (a file in the blob store).
    ArtifactId
);
id_type!(
    /// A request for a person's decision on one critical action.
    ApprovalId
);

id_type!(
    /// A message of a project's conversation.
    MessageId
);
id_type!(
    /// A user's upload, granted by presigned PUT.
    UploadId
);
id_type!(
    /// A user's connected account at an outside service (GitHub, Vercel, ...).
    ConnectionId
);
id_type!(
    /// A deploy or build a tool started at an outside service.
    DeploymentId
);
id_type!(
    /// A connection being made by OAuth's device flow.
    DeviceFlowId
);
id_type!(
    /// A connection being made by OAuth's web (authorization-code) flow.
    WebFlowId
);
id_type!(
    /// A user's device registered for push notifications.
    DeviceId
);
id_type!(
    /// A user's webhook: a URL that gets run events.
    WebhookId
);
id_type!(
    /// One event's delivery to one webhook.
    DeliveryId
);

/// A string that is not a UUID where an id was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be a UUID, got {value:?}")]
pub struct InvalidId {
    /// The field that held the value.
    pub field: String,
    /// The value as given.
    pub value: String,
}

id_type!(
    /// A project's command started by a clock.
    ScheduleId
);

id_type!(
    /// One long-term memory of a user's.
    MemoryId
);

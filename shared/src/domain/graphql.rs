//! GraphQL's names for the domain's values, for the API's `/graphql` (the `graphql`
//! feature): every id is an `ID`, money is `MicroUsd`. The statuses and kinds derive their
//! GraphQL enums where `kind_enum!` defines them, and the plain records derive their
//! objects where they are declared, so each type keeps one definition.

use super::MicroUsd;
use super::ids::*;

macro_rules! ids_are_ids {
    ($($id:ty),+) => {
        $(async_graphql::scalar!($id, "ID");)+
    };
}

ids_are_ids!(
    UserId,
    ProjectId,
    RunId,
    TaskId,
    ArtifactId,
    ApprovalId,
    DeploymentId,
    ScheduleId
);

async_graphql::scalar!(
    super::plans::PlanId,
    "PlanId",
    "A plan's id, as `GET /billing` names it (`free` until a subscription starts)."
);

async_graphql::scalar!(
    MicroUsd,
    "MicroUsd",
    "An amount in millionths of a US dollar, as a JSON integer (1500000 is $1.50)."
);

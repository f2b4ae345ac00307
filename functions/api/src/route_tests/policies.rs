//! Approval policies of the tools that act in the world.

use super::field_of;
use crate::ApiError;
use crate::policies::{ApprovalMode, policies_of, set_policy_of};
use autocrew_shared::adapters::memory::MemPolicies;
use autocrew_shared::crew::{AgentProfiles, tools};
use autocrew_shared::domain::requests::PolicyBody;
use autocrew_shared::domain::routing::RoutingPolicy;
use autocrew_shared::domain::{AgentKind, UserId};

fn profiles() -> AgentProfiles {
    let routing = RoutingPolicy::builtin().expect("the shipped routing");
    AgentProfiles::builtin(&routing).expect("the shipped profiles")
}

fn approval(mode: &str) -> PolicyBody {
    PolicyBody {
        approval: mode.into(),
    }
}

#[tokio::test]
async fn every_tool_that_acts_asks_first_until_told_otherwise() {
    let store = MemPolicies::default();
    let listed = policies_of(&store, &profiles(), UserId::new())
        .await
        .expect("listed");
    assert_eq!(listed.policies.len(), tools::EFFECTS.len());
    assert!(
        listed
            .policies
            .iter()
            .all(|p| p.approval == ApprovalMode::Ask)
    );
    let push = listed
        .policies
        .iter()
        .find(|p| p.tool == "push_code")
        .expect("push_code is listed");
    assert_eq!(push.agents, [AgentKind::Developer]);
}

#[tokio::test]
async fn a_policy_set_to_auto_is_the_callers_alone() {
    let store = MemPolicies::default();
    let (ana, bo) = (UserId::new(), UserId::new());
    let profiles = profiles();
    let set = set_policy_of(&store, &profiles, (ana, "push_code"), &approval("auto"))
        .await
        .expect("set");
    assert_eq!(set.approval, ApprovalMode::Auto);
    let anas = policies_of(&store, &profiles, ana).await.expect("listed");
    let bos = policies_of(&store, &profiles, bo).await.expect("listed");
    let mode = |listed: &crate::policies::Policies| {
        listed
            .policies
            .iter()
            .find(|p| p.tool == "push_code")
            .map(|p| p.approval == ApprovalMode::Auto)
    };
    assert_eq!(mode(&anas), Some(true));
    assert_eq!(mode(&bos), Some(false));
}

#[tokio::test]
async fn only_known_tools_and_modes_are_taken() {
    let store = MemPolicies::default();
    let profiles = profiles();
    let user = UserId::new();
    let unknown = set_policy_of(&store, &profiles, (user, "write_file"), &approval("auto")).await;
    assert!(
        matches!(unknown, Err(ApiError::NotFound(_))),
        "write_file does not act in the world"
    );
    let mode = set_policy_of(
        &store,
        &profiles,
        (user, "push_code"),
        &approval("sometimes"),
    )
    .await;
    assert_eq!(field_of(mode.expect_err("refused")), "approval");
}

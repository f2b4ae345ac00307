//! Each agent kind's profile: system prompt, tools, model policy and loop bounds, from
//! `shared/data/agents.json` (or `AGENT_PROFILES_PATH`).

use super::tools;
use crate::domain::capabilities::ReasoningEffort;
use crate::domain::routing::{ModelPolicy, RoutingPolicy};
use crate::domain::{AgentKind, Decimal};
use crate::ports::llm::ToolSpec;
use serde::Deserialize;
use std::collections::HashMap;

/// The profiles shipped with this build.
pub const AGENTS_JSON: &str = include_str!("../../data/agents.json");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProfile {
    pub system: String,
    /// The tools the agent may call; any other call is refused. Those that act in the
    /// world (`tools::EFFECTS`) ask a person first unless the user's policy says not to.
    pub tools: Vec<String>,
    pub model_policy: ModelPolicy,
    /// Model turns at most in one attempt, across all its invocations.
    pub max_steps: u32,
    /// Output tokens per model turn.
    pub max_tokens: u32,
    /// Output tokens at most in one attempt, across all its turns. A task has no bound
    /// in wall-clock time but the run's deadline: real models take minutes.
    pub max_task_tokens: u32,
    /// Sent only to models that accept it (see the model table).
    pub temperature: Option<Decimal>,
    /// How much to reason before answering, where the model lets us say.
    #[serde(default)]
    pub reasoning: Option<ReasoningEffort>,
}

impl AgentProfile {
    pub fn tool_specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().filter_map(|t| tools::spec(t)).collect()
    }

    /// Whether the agent may call `tool`.
    pub fn may_use(&self, tool: &str) -> bool {
        self.tools.iter().any(|t| t == tool)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the agent profiles are invalid: {0}")]
pub struct ProfileError(pub String);

/// One profile per agent kind.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentProfiles(HashMap<AgentKind, AgentProfile>);

#[derive(Deserialize)]
struct Wire {
    agents: HashMap<AgentKind, AgentProfile>,
}

impl AgentProfiles {
    pub fn builtin(routing: &RoutingPolicy) -> Result<Self, ProfileError> {
        Self::parse(AGENTS_JSON, routing)
    }

    /// Reads and checks the profiles: every agent kind present, tools known, tiers in the
    /// routing policy, bounds above zero.
    pub fn parse(text: &str, routing: &RoutingPolicy) -> Result<Self, ProfileError> {
        let wire: Wire = serde_json::from_str(text).map_err(|e| ProfileError(e.to_string()))?;
        for kind in AgentKind::ALL {
            let Some(profile) = wire.agents.get(kind) else {
                return Err(ProfileError(format!("no profile for {kind}")));
            };
            let bad = |what: String| ProfileError(format!("{kind}: {what}"));
            if let Some(tool) = profile
                .tools
                .iter()
                .find(|t| !tools::KNOWN.contains(&t.as_str()))
            {
                return Err(bad(format!("unknown tool {tool:?}")));
            }
            if !profile.tools.is_empty() && !profile.tools.iter().any(|t| t == tools::FINISH) {
                return Err(bad(format!(
                    "an agent with tools needs {:?}",
                    tools::FINISH
                )));
            }
            let policy = &profile.model_policy;
            for tier in [&policy.simple, &policy.medium, &policy.complex] {
                routing.check_tier(tier).map_err(|e| bad(e.to_string()))?;
            }
            if profile.max_steps == 0 || profile.max_tokens == 0 || profile.max_task_tokens == 0 {
                return Err(bad(
                    "max_steps, max_tokens and max_task_tokens must be above 0".into(),
                ));
            }
        }
        Ok(AgentProfiles(wire.agents))
    }

    pub fn get(&self, kind: AgentKind) -> &AgentProfile {
        // `parse` checked every kind is present.
        &self.0[&kind]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Complexity;

    #[test]
    fn the_shipped_profiles_follow_the_seed_defaults() {
        let routing = RoutingPolicy::builtin().unwrap();
        let profiles = AgentProfiles::builtin(&routing).unwrap();
        let tier = |kind, complexity| {
            profiles
                .get(kind)
                .model_policy
                .tier_for(complexity)
                .to_owned()
        };
        for strong in [
            AgentKind::Orchestrator,
            AgentKind::Developer,
            AgentKind::Sales,
        ] {
            assert_eq!(tier(strong, Complexity::Medium), "strong", "{strong}");
        }
        for standard in [AgentKind::Marketer, AgentKind::Designer] {
            assert_eq!(tier(standard, Complexity::Medium), "standard", "{standard}");
        }
        assert_eq!(tier(AgentKind::Ops, Complexity::Medium), "cheap");
        assert_eq!(profiles.get(AgentKind::Developer).tool_specs().len(), 4);
        let marketer = profiles.get(AgentKind::Marketer);
        assert!(marketer.may_use(crate::crew::tools::PUBLISH));
        assert!(
            !profiles
                .get(AgentKind::Sales)
                .may_use(crate::crew::tools::PUBLISH)
        );
    }

    #[test]
    fn a_profile_naming_an_unknown_tier_or_tool_is_refused() {
        let routing = RoutingPolicy::builtin().unwrap();
        let text = AGENTS_JSON.replacen(
            "\"cheap\", \"medium\": \"cheap\"",
            "\"turbo\", \"medium\": \"cheap\"",
            1,
        );
        let err = AgentProfiles::parse(&text, &routing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ops") && err.contains("turbo"), "{err}");
        let text = AGENTS_JSON.replacen(
            "\"read_upstream\", \"write_file\"",
            "\"rm_rf\", \"write_file\"",
            1,
        );
        let err = AgentProfiles::parse(&text, &routing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rm_rf"), "{err}");
    }
}

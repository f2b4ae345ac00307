//! What a model accepts, as data beside its price (`shared/data/models.json`). The provider
//! adapters build every request from these, so a parameter a model refuses is never sent.

use serde::{Deserialize, Serialize};

/// A sampling parameter a model may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplingParam {
    Temperature,
    TopP,
}

/// How a model can be held to a JSON Schema for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// The provider enforces the schema (OpenAI `strict: true`, Anthropic
    /// `output_config.format`, Gemini `responseJsonSchema`).
    Strict,
    /// The schema is sent but only guides the model (OpenAI-compatible servers).
    JsonSchema,
    /// A forced tool whose input is the answer (older Anthropic models).
    ForcedTool,
    /// Nothing on the wire: the schema goes in the prompt and the answer is checked here.
    #[default]
    None,
}

/// How much a caller wants the model to reason before answering (an agent profile's
/// `reasoning`). Each model turns it into its own setting, or leaves its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningEffort {
    None,
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::None => "none",
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// How a model's reasoning is controlled on its provider's wire.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reasoning {
    /// Nothing to set.
    #[default]
    None,
    /// A named effort: OpenAI `reasoning_effort`, Anthropic adaptive thinking with
    /// `output_config.effort`. `with_tools`: the effort the API demands whenever tools are
    /// sent (OpenAI's GPT-6 models call functions on Chat Completions only at `none`).
    Effort {
        values: Vec<String>,
        #[serde(default)]
        with_tools: Option<String>,
    },
    /// A token budget: Anthropic `thinking.budget_tokens`, Gemini 2.5 `thinkingBudget`.
    Budget {
        min: u32,
        max: u32,
        can_disable: bool,
    },
    /// A named level: Gemini 3 `thinkingLevel`.
    Level { values: Vec<String> },
}

/// What the adapter puts on the wire for reasoning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReasoningSetting {
    /// Send nothing: the model's default.
    Default,
    Effort(String),
    Budget(u32),
    Disabled,
    Level(String),
}

/// One model's capabilities. A missing field means "not supported", so a terse operator's
/// table is never more permissive than it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Input and output tokens together.
    pub context_window: u32,
    pub max_output_tokens: u32,
    #[serde(default)]
    pub sampling: Vec<SamplingParam>,
    #[serde(default)]
    pub structured_output: StructuredOutput,
    /// Function tools may carry `strict: true` (arguments guaranteed to match).
    #[serde(default)]
    pub strict_tools: bool,
    #[serde(default)]
    pub reasoning: Reasoning,
    /// The provider caches prompt prefixes marked explicitly (Anthropic `cache_control`).
    #[serde(default)]
    pub prompt_caching: bool,
}

impl Default for Capabilities {
    /// Accepts nothing optional: what a request holds before the gateway looks its model up.
    fn default() -> Self {
        Capabilities {
            context_window: u32::MAX,
            max_output_tokens: u32::MAX,
            sampling: Vec::new(),
            structured_output: StructuredOutput::None,
            strict_tools: false,
            reasoning: Reasoning::None,
            prompt_caching: false,
        }
    }
}

/// Thinking budgets for each effort, before the model's bounds clamp them.
const BUDGETS: [(ReasoningEffort, u32); 3] = [
    (ReasoningEffort::Low, 1_024),
    (ReasoningEffort::Medium, 4_096),
    (ReasoningEffort::High, 16_384),
];

impl Capabilities {
    pub fn accepts(&self, param: SamplingParam) -> bool {
        self.sampling.contains(&param)
    }

    /// The output tokens to ask for: what the caller wants, within the model's limit.
    pub fn output_tokens(&self, wanted: u32) -> u32 {
        wanted.min(self.max_output_tokens)
    }

    /// The reasoning setting for a request that wants `wanted`, carries tools or not, and
    /// allows `max_tokens` of output: a budget takes at most half of it, so the answer keeps
    /// room (Anthropic also needs the budget below `max_tokens`). An effort the model
    /// does not name leaves its default rather than sending a value it would refuse.
    pub fn reasoning_for(
        &self,
        wanted: Option<ReasoningEffort>,
        has_tools: bool,
        max_tokens: u32,
    ) -> ReasoningSetting {
        let named = |values: &[String], wanted: ReasoningEffort| {
            values
                .iter()
                .find(|v| v.as_str() == wanted.as_str())
                .map(|v| v.to_owned())
        };
        match (&self.reasoning, wanted) {
            (Reasoning::None, _) => ReasoningSetting::Default,
            (
                Reasoning::Effort {
                    with_tools: Some(forced),
                    ..
                },
                _,
            ) if has_tools => ReasoningSetting::Effort(forced.clone()),
            (Reasoning::Effort { values, .. }, Some(wanted)) => named(values, wanted)
                .map(ReasoningSetting::Effort)
                .unwrap_or(ReasoningSetting::Default),
            (Reasoning::Level { values }, Some(wanted)) => named(values, wanted)
                .map(ReasoningSetting::Level)
                .unwrap_or(ReasoningSetting::Default),
            (
                Reasoning::Budget {
                    can_disable: true, ..
                },
                Some(ReasoningEffort::None),
            ) => ReasoningSetting::Disabled,
            (Reasoning::Budget { min, max, .. }, Some(wanted)) => {
                let budget = BUDGETS
                    .iter()
                    .find(|(effort, _)| *effort == wanted)
                    .map(|(_, b)| *b)
                    .unwrap_or(*min)
                    .clamp(*min, *max)
                    .min(max_tokens / 2);
                match budget >= *min {
                    true => ReasoningSetting::Budget(budget),
                    false => ReasoningSetting::Default,
                }
            }
            (_, None) => ReasoningSetting::Default,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(reasoning: Reasoning) -> Capabilities {
        Capabilities {
            reasoning,
            ..Capabilities::default()
        }
    }

    fn efforts(values: &[&str], with_tools: Option<&str>) -> Reasoning {
        Reasoning::Effort {
            values: values.iter().map(|v| v.to_string()).collect(),
            with_tools: with_tools.map(str::to_owned),
        }
    }

    #[test]
    fn an_effort_model_gets_the_wanted_effort_unless_tools_demand_another() {
        let caps = with(efforts(&["none", "low", "medium", "high"], Some("none")));
        let low = Some(ReasoningEffort::Low);
        assert_eq!(
            caps.reasoning_for(low, false, 4096),
            ReasoningSetting::Effort("low".into())
        );
        assert_eq!(
            caps.reasoning_for(low, true, 4096),
            ReasoningSetting::Effort("none".into())
        );
        assert_eq!(
            caps.reasoning_for(None, true, 4096),
            ReasoningSetting::Effort("none".into())
        );
        assert_eq!(
            caps.reasoning_for(None, false, 4096),
            ReasoningSetting::Default
        );
        let adaptive = with(efforts(&["low", "medium", "high"], None));
        assert_eq!(
            adaptive.reasoning_for(Some(ReasoningEffort::None), false, 4096),
            ReasoningSetting::Default,
            "an effort the model does not name is left to its default"
        );
    }

    #[test]
    fn a_budget_stays_inside_the_model_bounds_and_leaves_half_of_max_tokens_for_the_answer() {
        let caps = with(Reasoning::Budget {
            min: 128,
            max: 32_768,
            can_disable: false,
        });
        assert_eq!(
            caps.reasoning_for(Some(ReasoningEffort::Medium), false, 8192),
            ReasoningSetting::Budget(4096)
        );
        assert_eq!(
            caps.reasoning_for(Some(ReasoningEffort::High), false, 8192),
            ReasoningSetting::Budget(4096)
        );
        assert_eq!(
            caps.reasoning_for(Some(ReasoningEffort::None), false, 8192),
            ReasoningSetting::Budget(128)
        );
        assert_eq!(
            caps.reasoning_for(Some(ReasoningEffort::Low), false, 200),
            ReasoningSetting::Default
        );
        let off = with(Reasoning::Budget {
            min: 0,
            max: 24_576,
            can_disable: true,
        });
        assert_eq!(
            off.reasoning_for(Some(ReasoningEffort::None), false, 8192),
            ReasoningSetting::Disabled
        );
    }

    #[test]
    fn a_terse_entry_allows_nothing_optional() {
        let caps: Capabilities =
            serde_json::from_str(r#"{"context_window": 8192, "max_output_tokens": 2048}"#).unwrap();
        assert!(caps.sampling.is_empty() && !caps.strict_tools && !caps.prompt_caching);
        assert_eq!(caps.structured_output, StructuredOutput::None);
        assert_eq!(caps.output_tokens(4096), 2048);
        let unknown = serde_json::from_str::<Capabilities>(
            r#"{"context_window": 1, "max_output_tokens": 1, "temperatur": true}"#,
        );
        assert!(
            unknown.is_err(),
            "a misspelt capability is refused, not ignored"
        );
    }
}

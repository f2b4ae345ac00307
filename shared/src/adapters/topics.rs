//! The day's topics from a JSON file (`shared/data/topics.json`, or `TOPICS_PATH`): each
//! day takes the next few in turn, so consecutive days differ and a day is repeatable.

use crate::domain::ProjectId;
use crate::domain::marketing::{TOPICS_MAX, Topic};
use crate::ports::TopicSource;
use async_trait::async_trait;
use serde::Deserialize;

/// The embedded fixture.
pub const TOPICS_JSON: &str = include_str!("../../data/topics.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsFile {
    #[serde(default)]
    #[allow(dead_code)]
    about: String,
    topics: Vec<Topic>,
}

/// `TopicSource` over a file read once.
pub struct FileTopics {
    topics: Vec<Topic>,
}

impl FileTopics {
    /// The topics in `text` (the file's JSON); at least one is needed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TopicsFile =
            serde_json::from_str(text).map_err(|e| format!("topics file: {e}"))?;
        if file.topics.is_empty() {
            return Err("topics file: no topics".into());
        }
        Ok(FileTopics {
            topics: file.topics,
        })
    }

    /// `TOPICS_PATH`'s file, or the embedded one.
    pub fn from_env(env: &dyn crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        let invalid = |reason: String| crate::config::ConfigError::Invalid {
            name: "TOPICS_PATH",
            reason,
        };
        let text = match crate::config::optional(env, "TOPICS_PATH") {
            Some(path) => std::fs::read_to_string(&path)
                .map_err(|e| invalid(format!("cannot read {path}: {e}")))?,
            None => TOPICS_JSON.to_owned(),
        };
        Self::parse(&text).map_err(invalid)
    }
}

#[async_trait]
impl TopicSource for FileTopics {
    async fn topics(&self, _project: ProjectId, day: &str) -> Result<Vec<Topic>, String> {
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map_err(|e| format!("{day} is not a day: {e}"))?;
        let n = self.topics.len();
        let start = usize::try_from(chrono::Datelike::num_days_from_ce(&date)).unwrap_or(0) % n;
        Ok((0..TOPICS_MAX.min(n))
            .map(|i| self.topics[(start + i) % n].clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_day_takes_the_next_topics_in_turn() {
        let source = FileTopics::parse(TOPICS_JSON).expect("the embedded file parses");
        let project = ProjectId::new();
        let monday = source.topics(project, "2026-12-07").await.expect("topics");
        let tuesday = source.topics(project, "2026-12-08").await.expect("topics");
        assert_eq!(monday.len(), TOPICS_MAX);
        assert_eq!(monday[1], tuesday[0]);
        assert_eq!(source.topics(project, "2026-12-07").await, Ok(monday));
        assert!(source.topics(project, "yesterday").await.is_err());
        assert!(FileTopics::parse(r#"{"topics": []}"#).is_err());
    }
}

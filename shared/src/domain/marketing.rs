//! The daily marketing loop: once a project has launched (a ready site or a published
//! post), a schedule starts it every morning. Its plan is fixed: the marketer studies the
//! briefing (the night's traffic, how earlier posts did, what memory recalls) and writes
//! down what worked, then drafts and publishes the day's posts on the day's topics. The run
//! ends with a morning report: an event the app shows and a `morning_report.json` file.

use super::analytics::TrafficDay;
use super::{MicroUsd, ProjectId, RunId, Service};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The daily loop's command, as its runs show it.
pub const COMMAND: &str = "Daily marketing loop: learn from the night's traffic and earlier posts, post on today's topics, report the morning's numbers.";
/// 08:00 every day, in the user's time zone.
pub const EXPRESSION: &str = "cron(0 8 * * ? *)";
/// Each day's budget: a few model turns of a standard model.
pub const BUDGET: MicroUsd = MicroUsd(1_000_000);
/// The key of the task that studies the briefing.
pub const REVIEW_TASK: &str = "review";
/// The key of the task that drafts and publishes the day's posts.
pub const POSTS_TASK: &str = "daily_posts";
/// The posts the briefing reports on, newest first.
pub const EARLIER_POSTS: usize = 10;
/// The most topics a day takes.
pub const TOPICS_MAX: usize = 3;

/// A post a tool published, with the engagement last fetched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SocialPost {
    pub service: Service,
    /// X's post id, LinkedIn's post URN.
    pub provider_id: String,
    pub project_id: ProjectId,
    pub run_id: Option<RunId>,
    pub link: String,
    pub text: String,
    pub posted_at: DateTime<Utc>,
    pub metrics: Option<PostMetrics>,
    pub metrics_at: Option<DateTime<Utc>>,
}

/// How a post did, as its service counts it (what it does not say is `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostMetrics {
    pub likes: Option<i64>,
    pub replies: Option<i64>,
    /// Reposts and quotes.
    pub reposts: Option<i64>,
    pub impressions: Option<i64>,
}

impl PostMetrics {
    /// Likes, replies and reposts together: how a post is ranked against another.
    pub fn engagement(&self) -> i64 {
        self.likes.unwrap_or(0) + self.replies.unwrap_or(0) + self.reposts.unwrap_or(0)
    }
}

/// One of the day's topics (from the topics source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub title: String,
    /// Why it matters today, or a line to build the post on.
    #[serde(default)]
    pub angle: String,
}

/// What the marketer studies: given to the review task as data, never instructions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Briefing {
    /// The last 7 days of traffic, oldest first.
    pub traffic: Vec<TrafficDay>,
    /// Earlier posts with their engagement, newest first.
    pub posts: Vec<SocialPost>,
    pub topics: Vec<Topic>,
}

/// The morning report: what the app shows when the user wakes up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MorningReport {
    pub run_id: RunId,
    /// One line: "127 new visitors overnight; 2 posts published".
    pub headline: String,
    /// Visitors, page views and events over the 24 hours before the report.
    pub visitors: i64,
    pub page_views: i64,
    pub events: i64,
    /// What the run published.
    pub published: Vec<SocialPost>,
    /// The earlier post that did best, with its engagement.
    pub best_post: Option<SocialPost>,
    pub topics: Vec<Topic>,
    /// What the review task wrote down (its summary).
    pub learned: Option<String>,
    /// Why the loop stopped short (the month's budget spent, a task failed), if it did.
    pub stopped: Option<String>,
    pub cost_micro_usd: MicroUsd,
    /// Where the report is kept, as an artifact of the run.
    pub artifact_key: String,
}

/// The report's one line.
pub fn headline(visitors: i64, published: usize, stopped: Option<&str>) -> String {
    let people = match visitors {
        1 => "1 new visitor overnight".to_owned(),
        n => format!("{n} new visitors overnight"),
    };
    let posts = match published {
        0 => "no post published".to_owned(),
        1 => "1 post published".to_owned(),
        n => format!("{n} posts published"),
    };
    match stopped {
        Some(why) => format!("{people}; {posts}; stopped: {why}"),
        None => format!("{people}; {posts}"),
    }
}

/// The earlier post with the most engagement, if any was measured.
pub fn best_post(posts: &[SocialPost]) -> Option<&SocialPost> {
    posts
        .iter()
        .filter_map(|p| Some((p, p.metrics?.engagement())))
        .max_by_key(|(_, engagement)| *engagement)
        .map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: &str, likes: Option<i64>) -> SocialPost {
        SocialPost {
            service: Service::X,
            provider_id: id.into(),
            project_id: ProjectId::new(),
            run_id: None,
            link: format!("https://x.com/ana/status/{id}"),
            text: id.into(),
            posted_at: Utc::now(),
            metrics: likes.map(|likes| PostMetrics {
                likes: Some(likes),
                replies: Some(1),
                ..PostMetrics::default()
            }),
            metrics_at: None,
        }
    }

    #[test]
    fn the_headline_counts_people_and_posts_and_says_why_it_stopped() {
        assert_eq!(
            headline(127, 2, None),
            "127 new visitors overnight; 2 posts published"
        );
        assert_eq!(
            headline(1, 0, Some("the month's AI budget is spent")),
            "1 new visitor overnight; no post published; stopped: the month's AI budget is spent"
        );
    }

    #[test]
    fn the_best_post_is_the_most_engaged_measured_one() {
        let posts = [post("a", Some(3)), post("b", None), post("c", Some(9))];
        assert_eq!(best_post(&posts).map(|p| p.provider_id.as_str()), Some("c"));
        assert_eq!(best_post(&[post("b", None)]), None);
    }
}

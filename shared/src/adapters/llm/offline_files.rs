//! The files the offline provider writes, by task. Each says it is offline output.

use crate::crew::AgentTaskContext;
use crate::domain::AgentKind;

const BANNER: &str = "Generated offline by Autocrew's template provider (no model was called).";

/// A lowercase, dash-separated slug of the product, for package names.
fn slug(product: &str) -> String {
    let slug: String = product
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let parts: Vec<&str> = slug.split('-').filter(|p| !p.is_empty()).collect();
    parts.join("-").chars().take(60).collect()
}

fn upstream_section(context: &AgentTaskContext) -> String {
    if context.upstream.is_empty() {
        return "No upstream tasks.".to_owned();
    }
    context
        .upstream
        .iter()
        .map(|(key, summary)| format!("- {key}: {summary}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn document(context: &AgentTaskContext, body: &str) -> String {
    format!(
        "# {title}\n\n> {BANNER}\n\nProduct: {product}\nCommand: {command}\n\n{body}\n\n## Inputs\n\n{inputs}\n",
        title = context.title,
        product = context.product,
        command = context.command,
        inputs = upstream_section(context),
    )
}

fn expo_app(context: &AgentTaskContext) -> Vec<(String, String)> {
    let name = slug(&context.product);
    let product = &context.product;
    let package = serde_json::json!({
        "name": name,
        "version": "0.1.0",
        "private": true,
        "description": format!("{product}. {BANNER}"),
        "main": "expo-router/entry",
        "scripts": {"start": "expo start", "android": "expo start --android", "ios": "expo start --ios"},
        "dependencies": {
            "expo": "~52.0.0",
            "expo-router": "~4.0.0",
            "react": "18.3.1",
            "react-native": "0.76.5",
            "react-native-safe-area-context": "4.12.0",
            "react-native-screens": "~4.1.0"
        },
        "devDependencies": {"typescript": "~5.3.3", "@types/react": "~18.3.12"}
    });
    let app_json = serde_json::json!({
        "expo": {"name": product, "slug": name, "scheme": name, "version": "0.1.0", "orientation": "portrait"}
    });
    // EAS Build's profiles: a store build, and an internal one to share.
    let eas_json = serde_json::json!({
        "cli": {"version": ">= 16.0.0", "appVersionSource": "remote"},
        "build": {"production": {"autoIncrement": true}, "preview": {"distribution": "internal"}}
    });
    vec![
        (
            "package.json".into(),
            serde_json::to_string_pretty(&package).unwrap_or_default(),
        ),
        (
            "app.json".into(),
            serde_json::to_string_pretty(&app_json).unwrap_or_default(),
        ),
        (
            "eas.json".into(),
            serde_json::to_string_pretty(&eas_json).unwrap_or_default(),
        ),
        (
            "app/_layout.tsx".into(),
            format!(
                "// {BANNER}\nimport {{ Stack }} from 'expo-router';\n\nexport default function Layout() {{\n  return <Stack screenOptions={{{{ title: {product:?} }}}} />;\n}}\n"
            ),
        ),
        (
            "app/index.tsx".into(),
            format!(
                "// {BANNER}\nimport {{ FlatList, Text, View }} from 'react-native';\nimport {{ items }} from '../src/items';\n\nexport default function Home() {{\n  return (\n    <View style={{{{ flex: 1, padding: 16 }}}}>\n      <Text style={{{{ fontSize: 24, fontWeight: '600' }}}}>{product}</Text>\n      <FlatList\n        data={{items}}\n        keyExtractor={{(item) => item.id}}\n        renderItem={{({{ item }}) => <Text style={{{{ paddingVertical: 8 }}}}>{{item.title}}</Text>}}\n      />\n    </View>\n  );\n}}\n"
            ),
        ),
        (
            "src/items.ts".into(),
            format!(
                "// {BANNER}\nexport type Item = {{ id: string; title: string }};\n\nexport const items: Item[] = [\n  {{ id: '1', title: 'First item for {}' }},\n  {{ id: '2', title: 'Second item' }},\n  {{ id: '3', title: 'Third item' }},\n];\n",
                product.replace('\'', "")
            ),
        ),
        (
            "README.md".into(),
            document(
                context,
                "## Run it\n\n```sh\nnpm install\nnpx expo start\n```\n\nScreens: `app/index.tsx` (the list). Data: `src/items.ts`.",
            ),
        ),
    ]
}

/// The path of the landing page the marketer's landing task writes (and publishes).
pub(super) const LANDING_PAGE: &str = "landing/index.html";

/// The marketer's landing task also writes a landing page, which it then publishes.
pub(super) fn has_landing_page(context: &AgentTaskContext) -> bool {
    context.agent == AgentKind::Marketer && context.task_key.contains("landing")
}

/// The calls that act in the world a task makes after writing its files, in order, among
/// the tools it was offered: the landing task deploys its page on Vercel (or publishes it
/// on our own link) and announces it on X and LinkedIn;
/// the brand sheet's designer makes the logo and app icon; the app task pushes its code;
/// the release checklist builds the app on EAS from that repository; the sales task sends its first outreach email. Tools that need an account
/// are offered only when the user connected it.
pub(super) fn effects(
    context: &AgentTaskContext,
    offered: &dyn Fn(&str) -> bool,
) -> Vec<(&'static str, serde_json::Value)> {
    use crate::crew::tools;
    let mut effects = Vec::new();
    // The landing page goes on Vercel when Vercel is connected, else on our own link.
    if has_landing_page(context) && offered(tools::DEPLOY_SITE) {
        effects.push((
            tools::DEPLOY_SITE,
            serde_json::json!({ "folder": "landing", "project": slug(&context.product) }),
        ));
    } else if has_landing_page(context) && offered(tools::PUBLISH) {
        effects.push((tools::PUBLISH, serde_json::json!({ "path": LANDING_PAGE })));
    }
    if has_landing_page(context) && offered(tools::POST_TO_X) {
        let text: String = format!(
            "We are building {}. Early access opens soon. [offline]",
            context.product
        )
        .chars()
        .take(280)
        .collect();
        effects.push((tools::POST_TO_X, serde_json::json!({ "text": text })));
    }
    if has_landing_page(context) && offered(tools::POST_TO_LINKEDIN) {
        let text = format!(
            "We are building {}: {}\n\nEarly access opens soon; the landing page has the list. [offline]",
            context.product, context.command
        );
        effects.push((tools::POST_TO_LINKEDIN, serde_json::json!({ "text": text })));
    }
    // The daily loop's posts: one a service, on the day's first topic.
    if context.task_key == crate::domain::marketing::POSTS_TASK {
        let (day, topic) = todays_topic(&context.description);
        if offered(tools::POST_TO_X) {
            let text: String = format!("{topic} ({day}) with {}. [offline]", context.product)
                .chars()
                .take(280)
                .collect();
            effects.push((tools::POST_TO_X, serde_json::json!({ "text": text })));
        }
        if offered(tools::POST_TO_LINKEDIN) {
            let text = format!(
                "{topic}\n\nToday ({day}) at {}: what we learned, and what is next. [offline]",
                context.product
            );
            effects.push((tools::POST_TO_LINKEDIN, serde_json::json!({ "text": text })));
        }
    }
    if context.agent == AgentKind::Sales && offered(tools::SEND_EMAIL) {
        effects.push((
            tools::SEND_EMAIL,
            serde_json::json!({
                "to": ["early-adopters@example.com"],
                "subject": format!("Early access to {}", context.product),
                "text": format!(
                    "Hello,\n\nWe are building {}: {}\n\nWould you like early access? Reply to this email.\n\n{BANNER}",
                    context.product, context.command
                ),
            }),
        ));
    }
    if context.agent == AgentKind::Developer
        && context.task_key.contains("app")
        && offered(tools::PUSH_CODE)
    {
        effects.push((
            tools::PUSH_CODE,
            serde_json::json!({
                "repository": slug(&context.product),
                "message": format!("{}: the Expo app skeleton", context.product),
            }),
        ));
    }
    if context.agent == AgentKind::Designer && offered(tools::GENERATE_IMAGE) {
        for (path, what, transparent) in [
            ("logo.png", "logo", true),
            ("icon.png", "app icon, full bleed", false),
        ] {
            effects.push((
                tools::GENERATE_IMAGE,
                serde_json::json!({
                    "path": path,
                    "prompt": format!("A flat, simple {what} for {}, in the brand sheet's colours. [offline]", context.product),
                    "transparent": transparent,
                }),
            ));
        }
    }
    if context.agent == AgentKind::Ops
        && context.task_key.contains("checklist")
        && offered(tools::BUILD_APP)
    {
        effects.push((
            tools::BUILD_APP,
            serde_json::json!({
                "project": slug(&context.product),
                "platforms": ["ios", "android"],
            }),
        ));
    }
    effects
}

/// Characters HTML would read as markup, escaped.
/// The day and the first topic of a daily-posts task's description ("Today's topics
/// (YYYY-MM-DD):" then "- title: angle" lines).
fn todays_topic(description: &str) -> (String, String) {
    let day = description
        .split("Today's topics (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or("today")
        .to_owned();
    let topic = description
        .lines()
        .find_map(|l| l.strip_prefix("- "))
        .map(|l| l.split(": ").next().unwrap_or(l).to_owned())
        .unwrap_or_else(|| "What we are building".to_owned());
    (day, topic)
}

fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn landing_page(context: &AgentTaskContext) -> String {
    let product = html_text(&context.product);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{product}</title>\n</head>\n<body style=\"font-family: sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1B1B1F; background: #FAFAF7\">\n<!-- {BANNER} -->\n<h1>{product}</h1>\n<p>{command}</p>\n<p><a href=\"#join\" style=\"background: #2E7D32; color: white; padding: .6rem 1rem; text-decoration: none\">Join the early access list</a></p>\n<p><small>{BANNER}</small></p>\n</body>\n</html>\n",
        command = html_text(&context.command),
    )
}

/// The files for one task: an Expo app for the developer's skeleton task, one Markdown
/// document named after the task otherwise, and a landing page for the marketer's landing
/// task.
pub(super) fn for_task(context: &AgentTaskContext) -> Vec<(String, String)> {
    if context.agent == AgentKind::Developer && context.task_key.contains("app") {
        return expo_app(context);
    }
    let body = match context.agent {
        AgentKind::Designer => {
            "## Palette\n\n- Primary: #2E7D32\n- Accent: #FFB300\n- Ink: #1B1B1F\n- Paper: #FAFAF7\n\n## Type\n\n- Headings: Inter SemiBold\n- Body: Inter Regular, 16/24\n\n## Voice\n\nPlain, warm, specific."
        }
        AgentKind::Marketer => {
            "## Audience\n\nWho needs this, what they do today, and what they pay for it.\n\n## Message\n\nOne promise, three proofs, one call to action."
        }
        AgentKind::Sales => {
            "## Channels\n\n1. Communities where the audience already meets\n2. Creators the audience follows\n3. Direct outreach to early adopters\n\n## Script\n\nOpen with their problem, offer early access, ask for feedback."
        }
        AgentKind::Ops => {
            "## Checklist\n\n- [ ] Builds pass on both platforms\n- [ ] Crash reporting on\n- [ ] Store listings drafted\n- [ ] Support inbox ready\n- [ ] Rollback plan written"
        }
        AgentKind::Developer => "## Notes\n\nImplementation notes for this task.",
        AgentKind::Orchestrator => "",
    };
    let mut files = vec![(format!("{}.md", context.task_key), document(context, body))];
    if has_landing_page(context) {
        files.push((LANDING_PAGE.to_owned(), landing_page(context)));
    }
    files
}

#[cfg(test)]
mod checked {
    use super::*;
    use crate::crew::code_check;

    #[test]
    fn every_file_the_offline_developer_writes_parses() {
        let context = AgentTaskContext {
            agent: AgentKind::Developer,
            command: "Build a recipe app for keto dieters".into(),
            product: "Recipe app for keto dieters".into(),
            task_key: "app_skeleton".into(),
            title: "Build the Expo app skeleton".into(),
            description: String::new(),
            upstream: vec![],
            recalled: Vec::new(),
        };
        let files = for_task(&context);
        let checked = files
            .iter()
            .filter(|(path, content)| {
                code_check::check(path, content)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .is_some()
            })
            .count();
        assert!(
            checked >= 4,
            "only {checked} of {} files were code",
            files.len()
        );
    }
}

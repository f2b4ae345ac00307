//! Generated files are parsed before they are kept: TypeScript and JavaScript by oxc's
//! parser, JSON by serde_json, YAML by serde_norway. A file that does not parse is never
//! stored; the agent is told the parser's error once and must write it again (see the
//! agent loop).

use oxc_allocator::Allocator;
use oxc_parser::Parser;
use oxc_span::SourceType;
use serde::Deserialize;

/// The languages checked, each by a real parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    TypeScript,
    JavaScript,
    Json,
    /// JSON with comments and trailing commas, as TypeScript reads `tsconfig.json`.
    Jsonc,
    Yaml,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Language::TypeScript => "TypeScript",
            Language::JavaScript => "JavaScript",
            Language::Json => "JSON",
            Language::Jsonc => "JSON with comments",
            Language::Yaml => "YAML",
        }
    }
}

/// The language `path` is checked as, by its extension; `None` for files no parser checks
/// (Markdown, HTML, CSS, text).
pub fn language(path: &str) -> Option<Language> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match extension.as_str() {
        "ts" | "tsx" | "mts" | "cts" => Some(Language::TypeScript),
        "js" | "jsx" | "mjs" | "cjs" => Some(Language::JavaScript),
        "json" if name.starts_with("tsconfig") || name.starts_with("jsconfig") => {
            Some(Language::Jsonc)
        }
        "json" => Some(Language::Json),
        "yaml" | "yml" => Some(Language::Yaml),
        _ => None,
    }
}

/// Where and why a file does not parse, in the parser's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, Deserialize)]
#[error("{path}:{line}:{column}: {language} syntax error: {message}")]
pub struct SyntaxError {
    pub path: String,
    pub language: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Parses `content` as `path`'s language: `Ok(Some(language))` when it parses, `Ok(None)`
/// for a file no parser checks.
pub fn check(path: &str, content: &str) -> Result<Option<Language>, SyntaxError> {
    let Some(language) = language(path) else {
        return Ok(None);
    };
    let error = |offset: usize, message: String| {
        let (line, column) = position(content, offset);
        SyntaxError {
            path: path.to_owned(),
            language: language.name().to_owned(),
            line,
            column,
            message,
        }
    };
    match language {
        Language::TypeScript | Language::JavaScript => {
            let source_type = SourceType::from_path(path).unwrap_or_default();
            script(content, source_type).map_err(|(offset, message)| error(offset, message))?
        }
        Language::Jsonc => {
            // JSON with comments and trailing commas is a JavaScript expression: parsed in
            // parentheses, its offsets shift by the one character put before it.
            let wrapped = format!("({content}\n)");
            script(&wrapped, SourceType::cjs())
                .map_err(|(offset, message)| error(offset.saturating_sub(1), message))?
        }
        Language::Json => {
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(content) {
                return Err(SyntaxError {
                    path: path.to_owned(),
                    language: language.name().to_owned(),
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                });
            }
        }
        Language::Yaml => {
            for document in serde_norway::Deserializer::from_str(content) {
                if let Err(e) = serde_norway::Value::deserialize(document) {
                    let (line, column) = e
                        .location()
                        .map(|l| (l.line(), l.column()))
                        .unwrap_or((1, 1));
                    return Err(SyntaxError {
                        path: path.to_owned(),
                        language: language.name().to_owned(),
                        line,
                        column,
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(Some(language))
}

/// oxc's first error: its byte offset and message (with the parser's help, if any).
fn script(source: &str, source_type: SourceType) -> Result<(), (usize, String)> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, source_type).parse();
    let Some(first) = parsed.diagnostics.first() else {
        return Ok(());
    };
    let offset = first
        .labels
        .as_slice()
        .first()
        .map(|label| label.offset() as usize)
        .unwrap_or(0);
    let message = match &first.help {
        Some(help) => format!("{} ({help})", first.message),
        None => first.message.to_string(),
    };
    Err((offset, message))
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_files_parse_each_with_its_own_parser() {
        let cases = [
            (
                "app/index.tsx",
                "export default function App(): JSX.Element {\n  return <View style={{ flex: 1 }}><Text>Keto</Text></View>;\n}\n",
                Language::TypeScript,
            ),
            (
                "lib/math.ts",
                "type Macro = { carbs: number };\nexport const net = (m: Macro): number => m.carbs;\n",
                Language::TypeScript,
            ),
            (
                "babel.config.js",
                "module.exports = function (api) { api.cache(true); return { presets: ['babel-preset-expo'] }; };\n",
                Language::JavaScript,
            ),
            (
                "app.json",
                "{\"expo\": {\"name\": \"Keto\", \"slug\": \"keto\"}}",
                Language::Json,
            ),
            (
                "tsconfig.json",
                "{\n  // strict mode\n  \"extends\": \"expo/tsconfig.base\",\n  \"compilerOptions\": {\"strict\": true,},\n}\n",
                Language::Jsonc,
            ),
            (
                ".github/workflows/ci.yml",
                "name: CI\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n",
                Language::Yaml,
            ),
        ];
        for (path, content, language) in cases {
            assert_eq!(check(path, content), Ok(Some(language)), "{path}");
        }
        assert_eq!(check("README.md", "# not { code"), Ok(None));
    }

    #[test]
    fn a_syntax_error_is_reported_where_the_parser_found_it() {
        let tsx = "import { Text } from 'react-native';\nexport default function App() {\n  return <Text>Keto</Text;\n}\n";
        let err = check("app/index.tsx", tsx).unwrap_err();
        assert_eq!(
            (err.language.as_str(), err.line),
            ("TypeScript", 3),
            "{err}"
        );
        assert!(err.to_string().starts_with("app/index.tsx:3:"), "{err}");

        // TypeScript syntax in a .js file is an error there.
        let err = check("util.js", "export const f = (x: number) => x;\n").unwrap_err();
        assert_eq!(err.line, 1, "{err}");

        let err = check("app.json", "{\n  \"expo\": {\"name\": \"Keto\",}\n}").unwrap_err();
        assert_eq!((err.language.as_str(), err.line), ("JSON", 2), "{err}");

        let err = check(
            "tsconfig.json",
            "{\n  \"compilerOptions\": {\n    \"strict\": true\n  \n",
        )
        .unwrap_err();
        assert_eq!(err.language, "JSON with comments", "{err}");

        let err = check("eas.yml", "build:\n  production:\n    ios: [unclosed\n").unwrap_err();
        assert_eq!(err.language, "YAML", "{err}");
        assert!(err.line >= 3, "{err}");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(position("é\nab", 4), (2, 2));
        assert_eq!(position("héllo", 3), (1, 3));
    }
}

//! Slack incoming webhooks, and the Mattermost and Rocket.Chat webhooks
//! that take the same payload: a bold one-line `text`, and the facts in an
//! attachment coloured by severity (or in the text, for receivers that
//! ignore attachments).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::format::{self, Severity};
use crate::{http, BuildError, BuildKind, DeliveryFuture, Message, Output, Secret};

/// `type = "slack"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The incoming-webhook URL. It holds a token: give it as
    /// `{ file = "..." }` or `{ env = "..." }`.
    pub url: Secret,
    /// Overrides the webhook's own name, channel and icon, where the
    /// receiver allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    /// Facts in a coloured attachment (true) or all in the text (false).
    #[serde(default = "default_attachments")]
    pub attachments: bool,
    /// The whole request, connecting included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_attachments() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

const KIND: BuildKind = BuildKind("slack");

/// A value longer than this is cut in the message.
const MAX_VALUE_BYTES: usize = 1000;

pub struct SlackOutput {
    client: reqwest::Client,
    url: reqwest::Url,
    /// Names the receiver in errors without the token in the URL.
    what: String,
    settings: SlackSettings,
}

impl SlackOutput {
    pub fn new(settings: &SlackSettings) -> Result<Self, BuildError> {
        let url = KIND.reveal("url", &settings.url)?;
        // The URL is not quoted in the error: it holds the token.
        let url = reqwest::Url::parse(&url)
            .map_err(|error| KIND.invalid("url", format!("not a URL ({error})")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(KIND.invalid(
                "url",
                format!("scheme '{}' is not http or https", url.scheme()),
            ));
        }
        let client = http::client(settings.timeout).map_err(|error| {
            KIND.invalid("url", format!("cannot build an HTTP client: {error}"))
        })?;
        Ok(Self {
            what: format!("slack webhook at {}", url.host_str().unwrap_or("?")),
            client,
            url,
            settings: settings.clone(),
        })
    }
}

impl Output for SlackOutput {
    fn kind(&self) -> &'static str {
        "slack"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let body = payload(&self.settings, message).to_string().into_bytes();
            http::post_json(self.client.post(self.url.clone()), body, &self.what).await
        })
    }
}

/// Slack's three characters with meaning in message text: with them
/// escaped, no field can make a link or an `@channel` mention.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "#d62728",
        Severity::Warning => "#ff9900",
        Severity::Info => "#439fe0",
    }
}

fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":rotating_light:",
        Severity::Warning => ":warning:",
        Severity::Info => ":information_source:",
    }
}

/// The webhook payload for one message.
pub fn payload(settings: &SlackSettings, message: &Message) -> Value {
    let level = message.first().map_or(0, |first| first.alert.rule.level);
    let severity = Severity::of_level(level);
    let summary = slack_escape(&format::summary(message));
    let headline = format!("{} *{summary}*", emoji(severity));
    let facts: Vec<String> = format::facts(message, MAX_VALUE_BYTES)
        .into_iter()
        .map(|(label, value)| format!("*{}:* {}", slack_escape(&label), slack_escape(&value)))
        .collect();
    let mut payload = if settings.attachments {
        json!({
            "text": headline,
            "attachments": [{
                "color": colour(severity),
                "fallback": summary,
                "text": facts.join("\n"),
                "mrkdwn_in": ["text"],
                "footer": "jaga",
            }],
        })
    } else {
        json!({ "text": format!("{headline}\n{}", facts.join("\n")) })
    };
    for (key, value) in [
        ("username", &settings.username),
        ("channel", &settings.channel),
        ("icon_emoji", &settings.icon_emoji),
    ] {
        if let Some(value) = value {
            payload[key] = Value::String(value.clone());
        }
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::sample_alert;

    fn settings(text: &str) -> SlackSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn settings_have_defaults_and_refuse_unknown_keys() {
        let parsed = settings("url = { env = \"SLACK_URL\" }");
        assert!(parsed.attachments);
        assert_eq!(parsed.timeout, Duration::from_secs(10));
        assert!(toml::from_str::<SlackSettings>("url = \"x\"\nchanel = \"#ops\"").is_err());
    }

    #[test]
    fn one_alert_is_a_bold_headline_and_an_attachment_of_facts() {
        let settings = settings(
            "url = \"https://hooks.example/T/B/x\"\nusername = \"jaga\"\nchannel = \"#ops\"",
        );
        let payload = payload(&settings, &Message::single(sample_alert("a1", "web")));
        assert_eq!(
            payload["text"],
            ":rotating_light: *level 12 Privileged container started: web on host1*"
        );
        assert_eq!(payload["username"], "jaga");
        assert_eq!(payload["channel"], "#ops");
        assert!(payload.get("icon_emoji").is_none());
        let attachment = &payload["attachments"][0];
        assert_eq!(attachment["color"], "#d62728");
        let text = attachment["text"].as_str().unwrap();
        for line in [
            "*Rule:* 91011 (level 12, critical)",
            "*Container:* web",
            "*Image:* nginx:1.25",
            "*Host:* host1",
            "*Time:* 2024-05-01T10:00:00.123Z",
            "*action:* start",
            "*Alert id:* a1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }

    #[test]
    fn without_attachments_everything_is_in_the_text() {
        let settings = settings("url = \"https://x/\"\nattachments = false");
        let payload = payload(&settings, &Message::single(sample_alert("a1", "web")));
        assert!(payload.get("attachments").is_none());
        let text = payload["text"].as_str().unwrap();
        assert!(text.contains("\n*Image:* nginx:1.25\n"), "{text}");
    }

    #[test]
    fn a_group_says_how_many_on_which_container_and_lists_the_ids() {
        let message = Message {
            alerts: vec![sample_alert("a1", "web"), sample_alert("a2", "web")],
        };
        let payload = payload(&settings("url = \"https://x/\""), &message);
        assert!(payload["text"]
            .as_str()
            .unwrap()
            .contains("*2× level 12 Privileged container started: web on host1*"));
        let text = payload["attachments"][0]["text"].as_str().unwrap();
        assert!(text.lines().any(|l| l == "*Alert ids:* a1, a2"), "{text}");
    }

    #[test]
    fn names_cannot_forge_lines_links_or_mentions() {
        let alert = sample_alert("a1", "web\n*level 0* <!channel> <https://evil|click>");
        let payload = payload(&settings("url = \"https://x/\""), &Message::single(alert));
        let headline = payload["text"].as_str().unwrap();
        assert!(!headline.contains('\n'), "{headline}");
        assert!(!headline.contains('<'), "{headline}");
        assert!(headline.contains("&lt;!channel&gt;"), "{headline}");
        let facts = payload["attachments"][0]["text"].as_str().unwrap();
        assert!(!facts.contains("<!channel>"), "{facts}");
        assert!(facts.lines().all(|l| l.starts_with('*')), "{facts}");
    }
}

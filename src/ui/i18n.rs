//! The page's languages: one Fluent file per language in `src/ui/locales/` (a translator edits
//! text, not Rust), built into the binary. The page gets every message of its language rendered
//! with its variables as `%name%` markers, which its script fills with live values (numbers and
//! times in the locale's form, by the browser's `Intl`).

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use std::collections::BTreeMap;

/// The languages, by their tags (BCP 47), English first.
pub const LANGUAGES: &[&str] = &["en", "hi", "bn", "zh-CN", "vi"];

/// The Fluent sources, in the order of [`LANGUAGES`].
pub const SOURCES: &[(&str, &str)] = &[
    ("en", include_str!("locales/en.ftl")),
    ("hi", include_str!("locales/hi.ftl")),
    ("bn", include_str!("locales/bn.ftl")),
    ("zh-CN", include_str!("locales/zh-CN.ftl")),
    ("vi", include_str!("locales/vi.ftl")),
];

/// Every language's messages, rendered.
#[derive(Debug)]
pub struct Catalog {
    messages: BTreeMap<&'static str, BTreeMap<String, String>>,
}

impl Catalog {
    /// Reads every Fluent file; a file that does not parse, or a message that does not render,
    /// is an error naming the language and the message.
    pub fn load() -> Result<Catalog, String> {
        let mut messages = BTreeMap::new();
        for (lang, text) in SOURCES {
            messages.insert(*lang, render(lang, text)?);
        }
        Ok(Catalog { messages })
    }

    /// The messages of `lang` (English for a language the gateway does not have).
    pub fn messages(&self, lang: &str) -> &BTreeMap<String, String> {
        self.messages.get(lang).or_else(|| self.messages.get("en")).expect("English is built in")
    }

    /// The message ids of a language.
    pub fn ids(&self, lang: &str) -> Vec<&str> {
        self.messages.get(lang).map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
    }
}

/// A Fluent file's messages with each variable `$x` rendered as `%x%`.
fn render(lang: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let resource = FluentResource::try_new(text.to_string()).map_err(|(_, e)| format!("{lang}.ftl: {e:?}"))?;
    let tag: unic_langid::LanguageIdentifier = lang.parse().map_err(|e| format!("{lang}: {e}"))?;
    let mut bundle = FluentBundle::new_concurrent(vec![tag]);
    bundle.set_use_isolating(false);
    let ids: Vec<String> = resource
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
            _ => None,
        })
        .collect();
    bundle.add_resource(resource).map_err(|e| format!("{lang}.ftl: {e:?}"))?;
    let mut out = BTreeMap::new();
    for id in ids {
        let Some(pattern) = bundle.get_message(&id).and_then(|m| m.value()) else {
            return Err(format!("{lang}.ftl: `{id}` has no value"));
        };
        let mut args = FluentArgs::new();
        for var in ["since", "time", "depth", "age", "consult", "dev", "detail", "free", "days"] {
            args.set(var, format!("%{var}%"));
        }
        let mut errors = Vec::new();
        let value = bundle.format_pattern(pattern, Some(&args), &mut errors);
        if !errors.is_empty() {
            return Err(format!("{lang}.ftl: `{id}`: {errors:?}"));
        }
        out.insert(id, value.into_owned());
    }
    Ok(out)
}

/// The language for a request: `?lang=`, else the first of the browser's `Accept-Language` the
/// gateway has (by the whole tag, then its language), else the configured one.
pub fn pick(query: Option<&str>, accept_language: Option<&str>, default: &str) -> &'static str {
    let find = |tag: &str| {
        let tag = tag.trim();
        LANGUAGES.iter().find(|l| l.eq_ignore_ascii_case(tag)).copied().or_else(|| {
            let primary = tag.split(['-', '_']).next().unwrap_or("");
            LANGUAGES.iter().find(|l| l.split('-').next().is_some_and(|p| p.eq_ignore_ascii_case(primary))).copied()
        })
    };
    if let Some(l) = query.and_then(find) {
        return l;
    }
    if let Some(header) = accept_language {
        let mut tags: Vec<(f32, &str)> = header
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse().ok())).unwrap_or(1.0);
                Some((q, tag))
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some(l) = tags.iter().find_map(|(_, t)| find(t)) {
            return l;
        }
    }
    find(default).unwrap_or("en")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_english_message_and_no_other() {
        let c = Catalog::load().unwrap();
        let english = c.ids("en");
        assert!(english.len() >= 30);
        for lang in LANGUAGES {
            assert_eq!(c.ids(lang), english, "{lang}.ftl");
            for (id, text) in c.messages(lang) {
                assert!(!text.trim().is_empty(), "{lang}: {id} is empty");
            }
        }
    }

    #[test]
    fn variables_become_markers_the_page_fills() {
        let c = Catalog::load().unwrap();
        assert_eq!(c.messages("en")["consult-open"], "Readings are bound to consult %consult%");
        assert!(c.messages("bn")["consult-open"].contains("%consult%"));
    }

    #[test]
    fn the_language_is_the_query_then_the_browser_then_the_setting() {
        assert_eq!(pick(Some("bn"), Some("hi"), "en"), "bn");
        assert_eq!(pick(None, Some("fr;q=0.9, hi-IN;q=0.8, en;q=0.5"), "en"), "hi");
        assert_eq!(pick(None, Some("zh-Hans-CN, zh;q=0.9"), "en"), "zh-CN");
        assert_eq!(pick(None, Some("de"), "vi"), "vi");
        assert_eq!(pick(Some("xx"), None, "nope"), "en");
    }
}

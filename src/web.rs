//! The pages: the citizens' portal, the operators' console, the administrators' pages. Plain
//! HTML, CSS and JavaScript from `web/`, built into the binary, so `nca serve` needs nothing
//! else at run time and no page loads anything from another host.
//!
//! A page is a template with `{{key}}` (a text of the chosen language, HTML-escaped),
//! `{{=name}}` (a value the handler gives, HTML-escaped) and `{{i18n}}` (the language's texts as
//! JSON, for the scripts). Texts live in `web/i18n/{kk,ru,en}.json`; a key missing in Kazakh or
//! Russian falls back to English.
//!
//! Every page shares `web/pages/layout.html` (head, skip link, header with the language links,
//! footer): a page file fills its slots, `{{$name}}` in the layout. A slot is either one line,
//! `<!-- layout name: value -->` (the value exactly, between ": " and " -->"), or the lines that
//! follow `<!-- layout name -->` up to the next marker. Twenty lines of assembly here, once per
//! page at first use, rather than a template crate: the texts are this module's own `{{key}}`
//! syntax, which minijinja or askama would turn into an expression on every line of every page.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Kk,
    Ru,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Kk, Lang::Ru, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Kk => "kk",
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        let primary = s.split(['-', '_']).next().unwrap_or("");
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// `?lang=` when it names one of ours, else the best of `Accept-Language`, else Kazakh (the
    /// state language).
    pub fn choose(query: Option<&str>, accept_language: Option<&str>) -> Lang {
        query
            .and_then(Lang::parse)
            .or_else(|| accept_language.and_then(Lang::preferred))
            .unwrap_or(Lang::Kk)
    }

    /// The one of ours that an `Accept-Language` value prefers (by q-value, then order), if any:
    /// the one parser of that header, for the pages and for the API's answers alike.
    pub fn preferred(accept_language: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.split(',') {
            let mut it = part.split(';');
            let Some(l) = it.next().and_then(Lang::parse) else {
                continue;
            };
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, l));
            }
        }
        best.map(|(_, l)| l)
    }
}

type Texts = BTreeMap<String, String>;

static TEXTS: LazyLock<[Texts; 3]> = LazyLock::new(|| {
    let parse = |s: &str| serde_json::from_str::<Texts>(s).unwrap_or_default();
    let en = parse(include_str!("../web/i18n/en.json"));
    let with_fallback = |s: &str| {
        let mut m = en.clone();
        m.extend(parse(s));
        m
    };
    [
        with_fallback(include_str!("../web/i18n/kk.json")),
        with_fallback(include_str!("../web/i18n/ru.json")),
        en.clone(),
    ]
});

fn texts(lang: Lang) -> &'static Texts {
    &TEXTS[match lang {
        Lang::Kk => 0,
        Lang::Ru => 1,
        Lang::En => 2,
    }]
}

/// A text in `lang`, or the key itself when no language has it.
pub fn text(lang: Lang, key: &str) -> String {
    texts(lang).get(key).cloned().unwrap_or_else(|| key.to_string())
}

/// The layout every page fills (see the module's comment).
const LAYOUT: &str = include_str!("../web/pages/layout.html");
/// The slots of the layout, in the order they are filled.
const SLOTS: [&str; 7] = ["title", "script", "body", "header_class", "header", "main", "footer"];

/// The pages by name, as written: slots of the layout.
const PAGES: &[(&str, &str)] = &[
    ("portal", include_str!("../web/pages/portal.html")),
    ("status", include_str!("../web/pages/status.html")),
    ("console", include_str!("../web/pages/console.html")),
    ("admin", include_str!("../web/pages/admin.html")),
    ("cabinet", include_str!("../web/pages/cabinet.html")),
];

/// Static files under `/assets/`: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "nca.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/assets/nca.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../web/assets/favicon.svg"),
    ),
    ("common.js", JS, include_bytes!("../web/assets/common.js")),
    ("der.js", JS, include_bytes!("../web/assets/der.js")),
    ("keys.js", JS, include_bytes!("../web/assets/keys.js")),
    ("pkcs12.js", JS, include_bytes!("../web/assets/pkcs12.js")),
    ("pow-worker.js", JS, include_bytes!("../web/assets/pow-worker.js")),
    ("portal.js", JS, include_bytes!("../web/assets/portal.js")),
    ("status.js", JS, include_bytes!("../web/assets/status.js")),
    ("console.js", JS, include_bytes!("../web/assets/console.js")),
    ("admin.js", JS, include_bytes!("../web/assets/admin.js")),
    ("cabinet.js", JS, include_bytes!("../web/assets/cabinet.js")),
    ("p12read.js", JS, include_bytes!("../web/assets/p12read.js")),
    (
        "legacy-ciphers.js",
        JS,
        include_bytes!("../web/assets/legacy-ciphers.js"),
    ),
    ("sign.js", JS, include_bytes!("../web/assets/sign.js")),
];
const JS: &str = "text/javascript; charset=utf-8";

/// A static file and its content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, t, b)| (*t, *b))
}

/// The layout with `page`'s slots filled; None for a line outside any slot, or a slot the
/// layout does not have (the unit tests hold every page to that).
fn assemble(page: &str) -> Option<String> {
    let mut slots: BTreeMap<&str, String> = BTreeMap::new();
    let mut open: Option<&str> = None;
    for line in page.lines() {
        if let Some(marker) = line.strip_prefix("<!-- layout ").and_then(|l| l.strip_suffix(" -->")) {
            match marker.split_once(": ") {
                Some((name, value)) => {
                    slots.insert(name, value.to_string());
                    open = None;
                }
                None => {
                    slots.insert(marker, String::new());
                    open = Some(marker);
                }
            }
            continue;
        }
        let slot = slots.get_mut(open?)?;
        slot.push_str(line);
        slot.push('\n');
    }
    if slots.keys().any(|k| !SLOTS.contains(k)) {
        return None;
    }
    let mut out = LAYOUT.to_string();
    for name in SLOTS {
        out = out.replace(&format!("{{{{${name}}}}}"), slots.get(name).map_or("", String::as_str));
    }
    Some(out)
}

/// The pages assembled, once.
static ASSEMBLED: LazyLock<Vec<(&'static str, Option<String>)>> =
    LazyLock::new(|| PAGES.iter().map(|(name, page)| (*name, assemble(page))).collect());

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders page `name` in `lang` with the handler's values; None for no such page.
pub fn page(name: &str, lang: Lang, vars: &[(&str, String)]) -> Option<String> {
    let template = ASSEMBLED.iter().find(|(n, _)| *n == name)?.1.as_deref()?;
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let key = after[..end].trim();
        if key == "i18n" {
            let json = serde_json::to_string(texts(lang)).unwrap_or_else(|_| "{}".into());
            // Inside <script type="application/json">: nothing may close the element.
            out.push_str(&json.replace('<', "\\u003c"));
        } else if key == "lang" {
            out.push_str(lang.code());
        } else if let Some(name) = key.strip_prefix('=') {
            let v = vars
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            out.push_str(&escape(v));
        } else {
            out.push_str(&escape(&text(lang, key)));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_query_then_accept_language_then_kazakh() {
        assert_eq!(Lang::choose(Some("en"), Some("ru")), Lang::En);
        assert_eq!(Lang::choose(Some("de"), Some("ru-RU,ru;q=0.9")), Lang::Ru);
        assert_eq!(Lang::choose(None, Some("de-DE, en;q=0.5, kk;q=0.8")), Lang::Kk);
        assert_eq!(Lang::choose(None, Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::choose(None, None), Lang::Kk);
        assert_eq!(Lang::choose(None, Some("ru;q=0")), Lang::Kk);
        assert_eq!(Lang::preferred("de, fr;q=0.5"), None);
        assert_eq!(Lang::preferred("RU_ru;q=0.3, en;q=0.2"), Some(Lang::Ru));
    }

    #[test]
    fn every_language_has_every_english_text_and_every_template_key_exists() {
        let parse = |s: &str| serde_json::from_str::<Texts>(s).unwrap();
        let en = parse(include_str!("../web/i18n/en.json"));
        for (code, s) in [
            ("kk", include_str!("../web/i18n/kk.json")),
            ("ru", include_str!("../web/i18n/ru.json")),
        ] {
            let other = parse(s);
            let missing: Vec<_> = en.keys().filter(|k| !other.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{code} lacks {missing:?}");
        }
        for (name, template) in ASSEMBLED.iter() {
            let mut rest = template
                .as_deref()
                .unwrap_or_else(|| panic!("{name}: not the layout's slots"));
            while let Some(start) = rest.find("{{") {
                let after = &rest[start + 2..];
                let end = after.find("}}").unwrap();
                let key = after[..end].trim();
                assert!(
                    key == "i18n" || key == "lang" || key.starts_with('=') || en.contains_key(key),
                    "{name}: no text {key:?}"
                );
                rest = &after[end + 2..];
            }
        }
    }

    #[test]
    fn values_are_escaped_and_texts_json_cannot_close_the_script() {
        let html = page("portal", Lang::En, &[("pow_bits", "<x>".into())]).unwrap();
        assert!(!html.contains("<x>"));
        assert!(html.contains("<label for=\"iin\">IIN</label>"));
        let json_start = html.find("application/json").unwrap();
        let json_end = json_start + html[json_start..].find("</script>").unwrap();
        assert!(!html[json_start + 20..json_end].contains('<'));
    }

    #[test]
    fn every_page_fills_the_layout_and_nothing_else() {
        for (name, page) in PAGES {
            let html =
                assemble(page).unwrap_or_else(|| panic!("{name}: a line outside a slot, or a slot the layout lacks"));
            assert!(!html.contains("{{$"), "{name}");
            assert!(html.starts_with("<!doctype html>\n<html lang=\"{{lang}}\">"), "{name}");
            assert!(
                html.contains(&format!("<script type=\"module\" src=\"/assets/{name}.js\"></script>")),
                "{name}"
            );
            assert!(
                html.ends_with("</main>\n</body>\n</html>\n") || html.ends_with("</footer>\n</body>\n</html>\n"),
                "{name}"
            );
        }
        assert_eq!(assemble("<!-- layout nope: x -->\n"), None);
        assert_eq!(assemble("stray line\n"), None);
    }
}

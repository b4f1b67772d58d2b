//! Log lines: one line per event, whatever its values carry. A value from outside (a revocation
//! reason, a name, a serial as typed) with a newline or a terminal escape in it would otherwise
//! end the line and let the rest pass for an event of its own, or repaint an operator's terminal.
//! The text format writes every message and field through [`Escaping`]; the JSON format
//! (`NCA_LOG_FORMAT=json`) escapes them as JSON does.

use std::fmt::{self, Write};

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, FormatFields, Writer};

/// Writes to the inner writer with control characters (C0, DEL, C1: newline, carriage return,
/// ESC…) and the Unicode line and paragraph separators written as Rust escapes (`\n`, `\u{1b}`).
pub struct Escaping<'a, W: Write>(pub &'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                self.0.write_str(&s[plain..i])?;
                write!(self.0, "{}", c.escape_default())?;
                plain = i + c.len_utf8();
            }
        }
        self.0.write_str(&s[plain..])
    }
}

/// The text format's field formatter: the message as written, then `name=value` for each field,
/// everything escaped.
pub fn text_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug| {
            if field.name() == "message" {
                write!(Escaping(w), "{value:?}")
            } else {
                write!(Escaping(w), "{field}={value:?}")
            }
        },
    )
    .delimited(" ")
}

/// Sets up the process's subscriber: `NCA_LOG` the filter, `NCA_LOG_FORMAT=json` for JSON lines.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NCA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("NCA_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.fmt_fields(text_fields()).init();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_value_with_a_newline_or_an_escape_stays_on_its_events_line() {
        let buf = Buffer::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || out.clone())
            .fmt_fields(text_fields())
            .finish();
        let reason = "keyCompromise\nINFO audit: forged\u{1b}[2K\r\u{2028}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "audit", reason = %reason, quoted = ?reason, "request: reason=[{reason}]");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{2028}'));
        assert!(
            text.contains(r"request: reason=[keyCompromise\nINFO audit: forged\u{1b}[2K\r\u{2028}]"),
            "{text}"
        );
        assert!(text.contains(r"reason=keyCompromise\nINFO"), "{text}");
    }
}

//! The fields of text log lines and spans, written exactly as tracing-subscriber's default
//! formatter writes them, for less.
//!
//! The log layer formats a span's fields when the span is created and again each time one is
//! recorded, whether or not a line is ever printed: the gateway's `webhook` span records the
//! hook type, the event id and the duplicate flag on every delivery. The default formatter
//! sends each field through its styling and `Debug` machinery even with colours off, which cost
//! more than the rest of the span. [`PlainFields`] writes the common fields (texts that need no
//! escaping, booleans, integers) directly, with the same bytes, and hands every other field,
//! and every field when the output has colours, to the default formatter itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The text log layer's field formatter (`fmt::layer().fmt_fields(PlainFields)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> PlainVisitor<'a> {
        PlainVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one record's fields; see [`PlainFields`].
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet: the next field needs no separating space.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Writes `name=` and then `value`, as the default formatter does for a field that is not
    /// the message; `false` (nothing written) where that formatter would write something else.
    fn write_plain(&mut self, field: &Field, value: fmt::Arguments<'_>) -> bool {
        let name = field.name();
        if self.writer.has_ansi_escapes() || name == "message" || name.starts_with("r#") {
            return false;
        }
        if self.is_empty {
            self.is_empty = false;
        } else if let Err(error) = self.writer.write_char(' ') {
            self.result = Err(error);
            return true;
        }
        self.result = self
            .writer
            .write_str(name)
            .and_then(|()| self.writer.write_char('='))
            .and_then(|()| self.writer.write_fmt(value));
        true
    }

    /// Hands one field to the default formatter, which writes it after a space unless it is
    /// the first.
    fn default_formatter(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// Whether a field is one the default formatter leaves out: log metadata the log layer has
    /// already written (tracing-subscriber's `tracing-log` feature).
    fn skipped(&self, field: &Field) -> bool {
        self.result.is_err() || field.name().starts_with("log.")
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.skipped(field) {
            return;
        }
        // `Debug` of a text with nothing to escape is the text in quotes.
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        if !(plain && self.write_plain(field, format_args!("\"{value}\""))) {
            self.default_formatter(|visitor| visitor.record_str(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if !self.skipped(field) && !self.write_plain(field, format_args!("{value}")) {
            self.default_formatter(|visitor| visitor.record_bool(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.skipped(field) && !self.write_plain(field, format_args!("{value}")) {
            self.default_formatter(|visitor| visitor.record_i64(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.skipped(field) && !self.write_plain(field, format_args!("{value}")) {
            self.default_formatter(|visitor| visitor.record_u64(field, value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.skipped(field) {
            self.default_formatter(|visitor| visitor.record_error(field, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.skipped(field) {
            self.default_formatter(|visitor| visitor.record_debug(field, value));
        }
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What the text log layer writes for a set of spans and events, formatted by `fields`.
    fn log_with<N>(fields: N) -> String
    where
        N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let out = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(move || out.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let tenant = "acme";
            let span = tracing::info_span!(
                "webhook",
                tenant = %tenant,
                hook_type = tracing::field::Empty,
                event_id = tracing::field::Empty,
                duplicate = tracing::field::Empty,
            );
            span.record("hook_type", "inbox");
            span.record("event_id", "0123456789abcdef0123456789abcdef");
            span.record("duplicate", false);
            let _entered = span.enter();
            let error = io::Error::other("disk full");
            tracing::warn!(
                %error,
                plain = "text",
                quoted = "say \"hi\"",
                unicode = "Olá, привет 👋",
                control = "a\nb\t\u{1}",
                empty = "",
                yes = true,
                count = 42_u64,
                delta = -7_i64,
                ratio = 0.5,
                list = ?["a", "b"],
                r#type = "inbox",
                log.target = "hidden",
                "a message with \"quotes\""
            );
            tracing::info!(only = "fields");
            tracing::error!(
                cause = &error as &(dyn std::error::Error + 'static),
                "failed"
            );
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_what_the_default_formatter_writes() {
        let expected = log_with(DefaultFields::new());
        for written in [
            "tenant=acme hook_type=\"inbox\" event_id=\"0123456789abcdef0123456789abcdef\" duplicate=false",
            "plain=\"text\"",
            "yes=true count=42 delta=-7",
            "type=\"inbox\"",
            "only=\"fields\"",
        ] {
            assert!(expected.contains(written), "{written} in {expected}");
        }
        assert!(!expected.contains("hidden"), "{expected}");
        assert_eq!(log_with(PlainFields), expected);
    }
}

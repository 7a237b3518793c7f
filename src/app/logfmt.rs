//! The text log's line format: `TIMESTAMP LEVEL TARGET: MESSAGE key=value ...`, one event per
//! line, whatever the file names in it.
//!
//! tracing-subscriber's own text format writes `%`-recorded values (paths, errors, reasons) raw,
//! so a file named `a\n... INFO ...: end job=7 status=ok` printed a second, forged event. Here
//! every value goes through [`log_value`] (bare when it is a plain token, else quoted and
//! escaped) and the message through [`log_message`]; `docs/operations.md` gives the grammar a
//! log shipper can parse. JSON logs need none of this: serde_json escapes every string.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::os::quote::{log_bytes, log_message, log_value};

/// The text event format; ANSI colours (the level only) when the writer has them on.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFormat;

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        let level = *event.metadata().level();
        if writer.has_ansi_escapes() {
            write!(writer, " {}{level:>5}\x1b[0m ", colour(level))?;
        } else {
            write!(writer, " {level:>5} ")?;
        }
        write!(writer, "{}:", event.metadata().target())?;
        // Spans' fields are recorded by our own visitor too (`FieldsOf`), never raw.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, " {}", log_value(span.name()))?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{}}}", log_value(fields.as_str()))?;
                }
                writer.write_char(':')?;
            }
        }
        let mut fields = FieldsOf::default();
        event.record(&mut fields);
        if let Some(message) = &fields.message
            && !message.is_empty()
        {
            write!(writer, " {}", log_message(message))?;
        }
        writer.write_str(&fields.rest)?;
        writeln!(writer)
    }
}

fn colour(level: Level) -> &'static str {
    match level {
        Level::ERROR => "\x1b[31m",
        Level::WARN => "\x1b[33m",
        Level::INFO => "\x1b[32m",
        Level::DEBUG => "\x1b[34m",
        Level::TRACE => "\x1b[35m",
    }
}

/// An event's fields: the message apart, the others as ` key=value` with quoted values.
#[derive(Default)]
struct FieldsOf {
    message: Option<String>,
    rest: String,
}

impl FieldsOf {
    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
            return;
        }
        let name = field.name().strip_prefix("r#").unwrap_or(field.name());
        self.rest.push(' ');
        self.rest.push_str(&log_value(name));
        self.rest.push('=');
        self.rest.push_str(&log_value(value));
    }
}

impl Visit for FieldsOf {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, &value.to_string());
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        if field.name() == "message" {
            self.message = Some(String::from_utf8_lossy(value).into_owned());
            return;
        }
        self.rest.push(' ');
        self.rest.push_str(&log_value(field.name()));
        self.rest.push('=');
        self.rest.push_str(&log_bytes(value));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::TextFormat;

    /// A writer into a shared buffer, as `MakeWriter` wants it.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The text the event format writes for what `emit` logs, timestamps cut off.
    fn logged(emit: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .event_format(TextFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().expect("buffer").clone();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(|l| l.split_once(' ').expect("timestamp").1.to_string())
            .collect()
    }

    #[test]
    fn layout_is_level_target_message_fields() {
        let lines = logged(|| {
            tracing::info!(job = 3, rule = "review", status = "ok", "end");
            tracing::warn!(
                succeeded = 3,
                failed = 0,
                "idle: every job so far has finished"
            );
        });
        assert_eq!(
            lines,
            [
                " INFO shotrouter::app::logfmt::tests: end job=3 rule=review status=ok",
                " WARN shotrouter::app::logfmt::tests: idle: every job so far has finished succeeded=3 failed=0",
            ]
        );
    }

    #[test]
    fn values_and_messages_never_break_the_line() {
        let path = std::path::Path::new("/shots/x status=ok job=1\nend\x1b[2J.exr");
        let error = std::io::Error::other("disk \"full\"\n");
        let lines = logged(|| {
            tracing::error!(path = %path.display(), error = %error, "cannot run\nstep 2");
        });
        assert_eq!(
            lines,
            [concat!(
                "ERROR shotrouter::app::logfmt::tests: \"cannot run\\nstep 2\" ",
                "path=\"/shots/x status=ok job=1\\nend\\e[2J.exr\" error=\"disk \\\"full\\\"\\n\""
            )]
        );
    }
}

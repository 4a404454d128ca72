//! One JSON object a line: `timestamp`, `level`, `service`, `target`, `message`,
//! `request_id` (from the enclosing request span), then the event's own fields and those
//! of its spans.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where finished lines go: stdout in a service, a buffer in tests.
type Sink = Arc<Mutex<dyn Write + Send>>;

/// The JSON log layer.
pub struct JsonLayer {
    service: &'static str,
    sink: Sink,
}

impl JsonLayer {
    /// Writes to stdout.
    pub fn stdout(service: &'static str) -> Self {
        Self::to_writer(service, std::io::stdout())
    }

    /// Writes to any writer, e.g. a buffer a test reads back.
    pub fn to_writer(service: &'static str, writer: impl Write + Send + 'static) -> Self {
        Self {
            service,
            sink: Arc::new(Mutex::new(writer)),
        }
    }
}

/// A span's fields, kept in the span's extensions until it closes.
struct SpanFields(Map<String, Value>);

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut JsonVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.clone());
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));

        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::from(metadata.level().as_str()));
        line.insert("service".into(), Value::from(self.service));
        line.insert("target".into(), Value::from(metadata.target()));
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or(Value::from("")),
        );
        if let Some(request_id) = fields.remove("request_id") {
            line.insert("request_id".into(), request_id);
        }
        for (key, value) in fields {
            line.entry(key).or_insert(value);
        }

        let Ok(mut bytes) = serde_json::to_vec(&Value::Object(line)) else {
            return;
        };
        bytes.push(b'\n');
        if let Ok(mut sink) = self.sink.lock() {
            // A log line that cannot be written has nowhere else to go.
            let _ = sink.write_all(&bytes).and_then(|()| sink.flush());
        }
    }
}

/// Records `tracing` fields as JSON values, keeping numbers and booleans typed.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_json_line_with_service_request_id_and_fields() {
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::registry().with(JsonLayer::to_writer("user", buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "req-1", method = "GET");
            let _entered = span.enter();
            tracing::info!(status = 200, latency_ms = 1.5, "request completed");
        });
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1);
        let line: Value = serde_json::from_str(lines[0]).expect("json");
        assert_eq!(line["service"], "user");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200);
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

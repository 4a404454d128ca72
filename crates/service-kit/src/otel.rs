//! Spans exported over OTLP (HTTP, protobuf) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! The trace context is ours ([`crate::trace_context`]): every span id a service mints,
//! whether for a request it serves, an HTTP call it makes, an event it publishes or an
//! event it handles, is the id it sends on as the W3C `traceparent`, and [`record`]
//! exports a span with exactly that id and its parent. So the spans of one order, from
//! the gateway through every service and event hop to the email, form one tree in any
//! OTLP backend (Jaeger, Tempo), without a second, competing context.
//!
//! Without an endpoint nothing is set up and [`record`] returns at once.

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider};

use crate::trace_context::TraceParent;

pub use opentelemetry::trace::SpanKind as Kind;

struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

thread_local! {
    /// The ids of the span [`record`] is about to build on this thread.
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Gives the SDK the ids we already sent on the wire instead of fresh random ones (the
/// SDK's span builder takes no ids of its own choosing).
#[derive(Debug, Default)]
struct OurIds {
    random: RandomIdGenerator,
}

impl IdGenerator for OurIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .get()
            .map_or_else(|| self.random.new_trace_id(), |ids| ids.0)
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .get()
            .map_or_else(|| self.random.new_span_id(), |ids| ids.1)
    }
}

/// Starts exporting `service`'s spans to the OTLP/HTTP collector at `endpoint`
/// (e.g. `http://jaeger:4318`; `/v1/traces` is added). Batches go out from a thread of
/// their own every few seconds (`OTEL_BSP_SCHEDULE_DELAY`, ms).
pub fn init(service: &'static str, endpoint: &str) -> Result<(), ExportError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(ExportError::Exporter)?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(OurIds::default())
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer(service);
    EXPORTER
        .set(Exporter { provider, tracer })
        .map_err(|_| ExportError::AlreadySetUp)
}

/// Why span export could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: no exporter could be built for it")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("OTLP export was already set up")]
    AlreadySetUp,
}

/// Whether spans are being exported.
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// Sends what is still batched; call before the process exits.
pub fn shutdown() {
    if let Some(exporter) = EXPORTER.get()
        && let Err(error) = exporter.provider.shutdown()
    {
        tracing::warn!(error = %error, "OTLP export did not flush");
    }
}

/// Exports a span that ran from `start` until now: `span` is its id (and trace), and
/// `parent` the id of the span it continues, if any. `describe` gives its name and
/// attributes; it runs only when spans are exported, so callers on hot paths build
/// nothing for nothing.
pub fn record(
    kind: SpanKind,
    span: TraceParent,
    parent: Option<[u8; 8]>,
    start: SystemTime,
    describe: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
) {
    let Some(exporter) = EXPORTER.get() else {
        return;
    };
    let (name, attributes) = describe();
    let trace_id = TraceId::from_bytes(span.trace_id);
    let builder = exporter
        .tracer
        .span_builder(name)
        .with_kind(kind)
        .with_start_time(start)
        .with_attributes(attributes);
    let context = match parent {
        Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            SpanId::from_bytes(parent),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    NEXT_IDS.set(Some((trace_id, SpanId::from_bytes(span.span_id))));
    let mut span = builder.start_with_context(&exporter.tracer, &context);
    NEXT_IDS.set(None);
    opentelemetry::trace::Span::end(&mut span);
}

//! Logging and tracing, set up once per process.
//!
//! Logs: JSON lines on Lambda (CloudWatch parses them), compact text elsewhere; `RUST_LOG`
//! filters, `info` by default.
//!
//! Traces: each invocation of a function runs in an `invocation` span (`invocation_span`)
//! that continues the trace its caller started: an HTTP request's `traceparent` header, a
//! queue message's `traceparent` attribute, or the run's own trace (recorded when the run
//! was created). Every span inside it (the handlers', steps' and adapters'
//! `#[instrument]`s) belongs to that trace, with its own span id and its parent's. Sending
//! a message or starting an execution carries the current trace on (`current`), so one run
//! is one trace from the API call through Step Functions and SQS to every step. Ended spans
//! go to `TRACE_FILE` as JSON lines when it is set (local mode, tests), and to the X-Ray
//! daemon as subsegments of the invocation's segment on Lambda (`Tracing: Active`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Sets up logs and traces. Calling it twice is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn"));
    // Colours only for a person at a terminal, never in CI logs or CloudWatch.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    // Traces keep the spans at info and above: the handlers', steps' and adapters' own, not
    // the libraries' debug spans.
    let registry = tracing_subscriber::registry()
        .with(Spans.with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    let _ = if on_lambda {
        let logs = tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .without_time()
            .with_writer(std::io::stderr)
            .with_filter(filter);
        registry.with(logs).try_init()
    } else {
        let logs = tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(filter);
        registry.with(logs).try_init()
    };
}

/// Where a span sits in its trace: W3C trace context ids (an X-Ray trace id is the same
/// 128 bits, its first 32 the epoch seconds it began).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
}

impl TraceContext {
    /// A new trace, begun now.
    pub fn new_root() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0) as u32;
        let random: u128 = rand::random::<u128>() & ((1u128 << 96) - 1);
        TraceContext {
            trace_id: (u128::from(secs) << 96) | random,
            span_id: new_span_id(),
        }
    }

    /// `00-<trace id>-<span id>-01`, the W3C `traceparent`.
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// Reads a W3C `traceparent`; `None` if it is not one.
    pub fn parse_traceparent(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, _flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || span.len() != 16 || parts.next().is_some() {
            return None;
        }
        let context = TraceContext {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
        };
        (context.trace_id != 0 && context.span_id != 0).then_some(context)
    }

    /// The trace id as X-Ray writes it: `1-<8 hex>-<24 hex>`.
    pub fn xray_trace_id(&self) -> String {
        let hex = format!("{:032x}", self.trace_id);
        format!("1-{}-{}", &hex[..8], &hex[8..])
    }

    /// Reads X-Ray's header (`Root=1-…-…;Parent=…;Sampled=1`, Lambda's `_X_AMZN_TRACE_ID`).
    pub fn parse_xray(text: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        for part in text.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", value)) => root = Some(value.to_owned()),
                Some(("Parent", value)) => parent = u64::from_str_radix(value, 16).ok(),
                _ => {}
            }
        }
        let root = root?;
        let mut pieces = root.split('-');
        let (one, time, rest) = (pieces.next()?, pieces.next()?, pieces.next()?);
        if one != "1" || time.len() != 8 || rest.len() != 24 {
            return None;
        }
        Some(TraceContext {
            trace_id: u128::from_str_radix(&format!("{time}{rest}"), 16).ok()?,
            span_id: parent.unwrap_or_else(new_span_id),
        })
    }

    /// `Root=…;Parent=…;Sampled=1`, as Step Functions' `traceHeader` takes it.
    pub fn xray_header(&self) -> String {
        format!(
            "Root={};Parent={:016x};Sampled=1",
            self.xray_trace_id(),
            self.span_id
        )
    }
}

fn new_span_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// The span an invocation of `function` runs in, continuing `parent`'s trace (a new one
/// when there is none). On Lambda with X-Ray, the invocation's own segment is the parent.
pub fn invocation_span(function: &str, parent: Option<TraceContext>) -> tracing::Span {
    let parent = lambda_segment()
        .or(parent)
        .unwrap_or_else(TraceContext::new_root);
    tracing::info_span!(
        "invocation",
        function,
        traceparent = parent.traceparent().as_str()
    )
}

/// The X-Ray segment Lambda opened for this invocation (`_X_AMZN_TRACE_ID`, which the
/// runtime sets for each event), when tracing is active.
fn lambda_segment() -> Option<TraceContext> {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME")?;
    TraceContext::parse_xray(&std::env::var("_X_AMZN_TRACE_ID").ok()?)
}

/// Traces only (no logs) into `path` as JSON lines, for a process that hosts functions
/// without `init` (a test): the first call wins, later ones change nothing.
pub fn trace_to_file(path: &std::path::Path) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()
        .map(Mutex::new);
    let _ = EXPORTER.set(Exporter { file, xray: None });
    let _ = tracing_subscriber::registry()
        .with(Spans.with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .try_init();
}

/// The current span's place in its trace, if it is inside an invocation.
pub fn current() -> Option<TraceContext> {
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(id)?;
            let extensions = span.extensions();
            let data = extensions.get::<SpanData>()?;
            Some(TraceContext {
                trace_id: data.trace_id,
                span_id: data.span_id,
            })
        })
        .flatten()
}

/// What a traced span keeps until it closes.
struct SpanData {
    trace_id: u128,
    span_id: u64,
    parent_id: u64,
    name: &'static str,
    function: Option<String>,
    fields: String,
    start: SystemTime,
}

/// The layer that gives spans inside an invocation their trace, and exports them.
struct Spans;

/// Reads the fields a span was made with: `traceparent` and `function` for an invocation,
/// the rest as `name=value` pairs.
#[derive(Default)]
struct Fields {
    traceparent: Option<String>,
    function: Option<String>,
    text: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "traceparent" => self.traceparent = Some(value.to_owned()),
            "function" => self.function = Some(value.to_owned()),
            name => {
                let _ = write!(self.text, "{}{name}={value}", sep(&self.text));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.text, "{}{}={value:?}", sep(&self.text), field.name());
    }
}

fn sep(text: &str) -> &'static str {
    if text.is_empty() { "" } else { " " }
}

impl<S> Layer<S> for Spans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let enclosing = span.parent().and_then(|parent| {
            let extensions = parent.extensions();
            let data = extensions.get::<SpanData>()?;
            Some((data.trace_id, data.span_id, data.function.clone()))
        });
        // A span naming a traceparent continues that trace (in the function it runs in).
        let parent = match fields
            .traceparent
            .as_deref()
            .and_then(TraceContext::parse_traceparent)
        {
            Some(context) => Some((
                context.trace_id,
                context.span_id,
                fields
                    .function
                    .clone()
                    .or_else(|| enclosing.and_then(|(_, _, function)| function)),
            )),
            None => enclosing,
        };
        // A span outside every invocation (start-up, the runner's own loops) is not traced.
        let Some((trace_id, parent_id, function)) = parent else {
            return;
        };
        span.extensions_mut().insert(SpanData {
            trace_id,
            span_id: new_span_id(),
            parent_id,
            name: attrs.metadata().name(),
            function,
            fields: fields.text,
            start: SystemTime::now(),
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        if let Some(data) = span.extensions_mut().remove::<SpanData>() {
            export(&data, SystemTime::now());
        }
    }
}

fn seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Where ended spans go: a file of JSON lines, and/or the X-Ray daemon.
struct Exporter {
    file: Option<Mutex<std::fs::File>>,
    xray: Option<(std::net::UdpSocket, String)>,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

fn exporter() -> &'static Exporter {
    EXPORTER.get_or_init(|| Exporter {
        file: std::env::var("TRACE_FILE").ok().and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .map(Mutex::new)
        }),
        xray: std::env::var_os("AWS_LAMBDA_FUNCTION_NAME")
            .and_then(|_| std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok())
            .and_then(|address| {
                let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
                Some((socket, address))
            }),
    })
}

fn export(data: &SpanData, end: SystemTime) {
    let exporter = exporter();
    if let Some(file) = &exporter.file {
        let line = serde_json::json!({
            "trace_id": format!("{:032x}", data.trace_id),
            "span_id": format!("{:016x}", data.span_id),
            "parent_id": format!("{:016x}", data.parent_id),
            "name": data.name,
            "function": data.function,
            "fields": data.fields,
            "start": seconds(data.start),
            "end": seconds(end),
        });
        if let Ok(mut file) = file.lock() {
            let _ = writeln!(file, "{line}");
        }
    }
    if let Some((socket, address)) = &exporter.xray {
        // A subsegment document, sent to the daemon Lambda runs beside the function.
        let context = TraceContext {
            trace_id: data.trace_id,
            span_id: data.span_id,
        };
        let document = serde_json::json!({
            "name": data.name,
            "id": format!("{:016x}", data.span_id),
            "trace_id": context.xray_trace_id(),
            "parent_id": format!("{:016x}", data.parent_id),
            "type": "subsegment",
            "start_time": seconds(data.start),
            "end_time": seconds(end),
            "annotations": {"fields": data.fields},
        });
        let packet = format!("{{\"format\": \"json\", \"version\": 1}}\n{document}");
        let _ = socket.send_to(packet.as_bytes(), address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_headers_round_trip_between_w3c_and_xray() {
        let root = TraceContext::new_root();
        assert_eq!(
            TraceContext::parse_traceparent(&root.traceparent()),
            Some(root)
        );
        assert_eq!(TraceContext::parse_xray(&root.xray_header()), Some(root));
        let lambda = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let parsed = TraceContext::parse_xray(lambda).expect("X-Ray's example header");
        assert_eq!(
            parsed.xray_trace_id(),
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert_eq!(parsed.span_id, 0x53995c3f42cd8ad8);
        for bad in [
            "",
            "00-abc-def-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::parse_traceparent(bad), None, "{bad}");
        }
        let secs = (root.trace_id >> 96) as u64;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        assert!(
            now.abs_diff(secs) < 5,
            "an X-Ray trace id starts with its time"
        );
    }

    #[test]
    fn spans_inside_an_invocation_share_its_trace_and_chain_their_parents() {
        let subscriber = tracing_subscriber::registry().with(Spans);
        tracing::subscriber::with_default(subscriber, || {
            let parent = TraceContext::new_root();
            let invocation = invocation_span("step-plan", Some(parent));
            let _entered = invocation.enter();
            let outer = current().expect("inside an invocation");
            assert_eq!(outer.trace_id, parent.trace_id);
            assert_ne!(outer.span_id, parent.span_id);
            let child = tracing::info_span!("send", queue = "plan");
            let _in_child = child.enter();
            let inner = current().expect("a traced child");
            assert_eq!(inner.trace_id, parent.trace_id);
            assert_ne!(inner.span_id, outer.span_id);
        });
        let outside = tracing_subscriber::registry().with(Spans);
        tracing::subscriber::with_default(outside, || {
            let _span = tracing::info_span!("start-up").entered();
            assert_eq!(current(), None, "no trace outside an invocation");
        });
    }
}

//! Process metrics in the Prometheus text format (`GET /metrics`). Counters and histograms live
//! in the [`App`](crate::app::App) (no global recorder, so every server in a process — and every
//! test — counts alone); gauges are read from their owners at scrape time. Labels come only from
//! fixed sets (outcomes, error codes, status codes): never a tenant id, never content.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0,
];

/// Everything counted while serving.
#[derive(Default)]
pub struct Metrics {
    messages: Counters,
    widget_errors: Counters,
    rate_limited: Counters,
    http_responses: Counters,
    tokens: Counters,
    reply_seconds: Histogram,
    first_token_seconds: Histogram,
}

/// Values owned elsewhere, read when scraped.
pub struct Gauges {
    pub sockets_open: usize,
    pub open_tenant_files: usize,
    pub sweeper_stalled: bool,
    /// Unix time of the last completed retention pass, if any.
    pub sweeper_last_run: Option<f64>,
}

impl Metrics {
    /// One visitor message handled: its outcome and how long it took. (Its error code, if any,
    /// is counted when the `error` frame is sent: see [`widget_error`](Self::widget_error).)
    pub fn message(&self, outcome: &'static str, took: Duration) {
        self.messages.add(outcome, 1);
        if outcome == "replied" {
            self.reply_seconds.observe(took);
        }
    }

    /// An `error` frame sent to a widget, whatever its cause (every one passes here).
    pub fn widget_error(&self, code: &'static str) {
        self.widget_errors.add(code, 1);
        if code == "rate_limited" {
            self.rate_limited.add("widget_messages", 1);
        }
    }

    /// The first piece of a reply reached the visitor this long after the submit.
    pub fn first_token(&self, after: Duration) {
        self.first_token_seconds.observe(after);
    }

    /// Tokens of one exchange, as the upstream reported (or as estimated).
    pub fn tokens(&self, prompt: u32, completion: u32) {
        self.tokens.add("in", u64::from(prompt));
        self.tokens.add("out", u64::from(completion));
    }

    /// One HTTP response (WebSocket handshakes included).
    pub fn http_response(&self, status: u16) {
        self.http_responses.add(status_label(status), 1);
        if status == 429 {
            self.rate_limited.add("http", 1);
        }
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        gauge(
            &mut out,
            "chatvault_widget_sockets_open",
            "Widget WebSockets open now.",
            gauges.sockets_open as f64,
        );
        gauge(
            &mut out,
            "chatvault_open_tenant_files",
            "Tenant SQLCipher files open now.",
            gauges.open_tenant_files as f64,
        );
        gauge(
            &mut out,
            "chatvault_retention_sweeper_stalled",
            "1 when the retention sweeper has not completed a pass in time.",
            f64::from(u8::from(gauges.sweeper_stalled)),
        );
        if let Some(at) = gauges.sweeper_last_run {
            gauge(
                &mut out,
                "chatvault_retention_last_sweep_timestamp_seconds",
                "Unix time of the last completed retention pass.",
                at,
            );
        }
        self.messages.render(
            &mut out,
            "chatvault_widget_messages_total",
            "Visitor messages by outcome.",
            "outcome",
        );
        self.widget_errors.render(
            &mut out,
            "chatvault_widget_errors_total",
            "Error frames sent to widgets by code.",
            "code",
        );
        self.rate_limited.render(
            &mut out,
            "chatvault_rate_limited_total",
            "Requests or messages refused by a rate limit.",
            "scope",
        );
        self.http_responses.render(
            &mut out,
            "chatvault_http_responses_total",
            "HTTP responses by status code.",
            "status",
        );
        self.tokens.render(
            &mut out,
            "chatvault_llm_tokens_total",
            "LLM tokens, prompt (in) and completion (out).",
            "direction",
        );
        self.reply_seconds.render(
            &mut out,
            "chatvault_llm_reply_seconds",
            "From a visitor's submit to the end of the upstream reply.",
        );
        self.first_token_seconds.render(
            &mut out,
            "chatvault_llm_first_token_seconds",
            "From a visitor's submit to the first piece of the reply.",
        );
        out
    }
}

/// Counters keyed by one label whose values are fixed strings.
#[derive(Default)]
struct Counters(Mutex<BTreeMap<&'static str, u64>>);

impl Counters {
    fn add(&self, label: &'static str, n: u64) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(label).or_insert(0) += n;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (value, count) in map.iter() {
            let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
        }
    }
}

/// A latency histogram with fixed buckets; sums kept in microseconds.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// Status codes as fixed labels, so a stray code cannot grow the label set.
fn status_label(status: u16) -> &'static str {
    match status {
        101 => "101",
        200 => "200",
        201 => "201",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counters_render_their_labels() {
        let metrics = Metrics::default();
        metrics.message("replied", Duration::from_millis(300));
        metrics.message("replied", Duration::from_secs(3));
        metrics.message("refused", Duration::ZERO);
        metrics.widget_error("rate_limited");
        metrics.http_response(429);
        let text = metrics.render(&Gauges {
            sockets_open: 2,
            open_tenant_files: 1,
            sweeper_stalled: false,
            sweeper_last_run: None,
        });
        assert!(text.contains("chatvault_widget_sockets_open 2\n"));
        assert!(text.contains("chatvault_widget_messages_total{outcome=\"replied\"} 2\n"));
        assert!(text.contains("chatvault_llm_reply_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(text.contains("chatvault_llm_reply_seconds_bucket{le=\"4\"} 2\n"));
        assert!(text.contains("chatvault_llm_reply_seconds_count 2\n"));
        assert!(text.contains("chatvault_rate_limited_total{scope=\"http\"} 1\n"));
        assert!(text.contains("chatvault_rate_limited_total{scope=\"widget_messages\"} 1\n"));
    }
}

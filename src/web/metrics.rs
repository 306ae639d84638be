//! Prometheus metrics kept in memory: requests by route and status, a latency histogram,
//! and the database pool's use, rendered as Prometheus text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::db::DbPool;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The methods of RFC 9110 (and PATCH): every other method string is labelled `OTHER`.
const STANDARD_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// `route` is the matched pattern (`/studies/{code}`), never the raw path with ids; a method
    /// outside HTTP's standard ones counts as `OTHER`, so no client can add series.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = STANDARD_METHODS.iter().find(|m| **m == method).copied().unwrap_or("OTHER");
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_string()).or_default();
            let secs = elapsed.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    pub fn render(&self, pool: &DbPool) -> String {
        let mut out = String::new();
        out.push_str("# HELP evidentia_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE evidentia_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "evidentia_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
        out.push_str("# HELP evidentia_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE evidentia_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                let r = escape(route);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "evidentia_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "evidentia_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "evidentia_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
                let _ = writeln!(out, "evidentia_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
            }
        }
        let state = pool.state();
        out.push_str("# HELP evidentia_db_pool_connections Database pool connections by state.\n");
        out.push_str("# TYPE evidentia_db_pool_connections gauge\n");
        let _ = writeln!(out, "evidentia_db_pool_connections{{state=\"idle\"}} {}", state.idle_connections);
        let _ = writeln!(
            out,
            "evidentia_db_pool_connections{{state=\"in_use\"}} {}",
            state.connections - state.idle_connections
        );
        let _ = writeln!(out, "evidentia_db_pool_max_size {}", pool.max_size());
        out
    }
}

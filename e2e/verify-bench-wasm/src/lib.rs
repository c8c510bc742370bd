//! `verify_bench.wasm`: what one JWT signature verification costs inside Envoy's V8,
//! per algorithm. Never shipped; `bench verify` (e2e/src/bin/bench.rs) loads it.
//!
//! The module gets a JWKS and one token per algorithm as its plugin configuration,
//! verifies each token once (and refuses it with one signature bit flipped, so a
//! broken verifier cannot post a fast time), then times batches of verifications with
//! Envoy's clock and logs one JSON line per algorithm. The same code runs natively in
//! the benchmark binary ([`Bench::run`] with the process clock) for reference.
//!
//! What is timed is `tollgate_core::jwt::verify::verify` with the key already chosen:
//! the signature check a request with a new token pays, without token decoding.
//!
//! Method: Envoy's clock reads in microseconds or better, but a single verification
//! can be a microsecond (HMAC), so each measurement is a batch of at least
//! `batchMs` milliseconds, sized from a calibration run that also warms the code up.
//! Batches of all algorithms alternate for `rounds` rounds, so a noisy moment on the
//! shared machine hits every algorithm alike; the minimum batch is the most
//! reproducible figure and the median the typical one.

use std::hint::black_box;

use serde::{Deserialize, Serialize};
use tollgate_core::jwt::alg::Alg;
use tollgate_core::jwt::jwks::{self, Jwks};
use tollgate_core::jwt::token;
use tollgate_core::jwt::verify;

/// Prefix of every line the module logs for the benchmark binary.
pub const LOG_MARKER: &str = "tollgate-verify-bench ";

/// The plugin configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// A JWKS document.
    pub jwks: String,
    /// One compact JWS per algorithm to time (the algorithm is the token's `alg`).
    pub tokens: Vec<String>,
    /// Shortest batch, in milliseconds.
    pub batch_ms: u64,
    pub rounds: usize,
}

/// One algorithm's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub alg: String,
    /// The very first verification, before any warm-up.
    pub first_us: f64,
    /// Verifications per batch.
    pub iterations: u64,
    /// Microseconds per verification, one figure per batch, in round order.
    pub batches_us: Vec<f64>,
}

impl Timing {
    pub fn min_us(&self) -> f64 {
        self.batches_us
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
    }

    pub fn median_us(&self) -> f64 {
        let mut sorted = self.batches_us.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// One token ready to verify: its algorithm, the key index in the set, and the parts.
struct Case {
    alg: Alg,
    key: usize,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// Parsed keys and tokens, each checked to verify.
pub struct Bench {
    jwks: Jwks,
    cases: Vec<Case>,
}

impl Bench {
    /// Parses the keys and tokens and checks that every token verifies with the key
    /// the filter would pick, and fails with a flipped signature bit.
    pub fn new(config: &Config) -> Result<Bench, String> {
        let (jwks, _skipped) = jwks::parse(&config.jwks)?;
        let mut cases = Vec::new();
        for raw in &config.tokens {
            let t = token::decode(raw).map_err(|e| format!("token {raw}: {e:?}"))?;
            let alg = Alg::parse(&t.alg).ok_or_else(|| format!("unsupported alg {}", t.alg))?;
            let key = verify::candidates(&jwks, alg, t.kid.as_deref())
                .next()
                .and_then(|k| jwks.keys.iter().position(|j| std::ptr::eq(j, k)))
                .ok_or_else(|| format!("{}: no key in the set fits", t.alg))?;
            let case = Case {
                alg,
                key,
                signing_input: t.signing_input.as_bytes().to_vec(),
                signature: t.signature,
            };
            if !case.check(&jwks, &case.signature) {
                return Err(format!("{}: the token does not verify", t.alg));
            }
            let mut tampered = case.signature.clone();
            if let Some(byte) = tampered.get_mut(case.signature.len() / 2) {
                *byte ^= 1;
            }
            if case.check(&jwks, &tampered) {
                return Err(format!("{}: a tampered signature verifies", t.alg));
            }
            cases.push(case);
        }
        Ok(Bench { jwks, cases })
    }

    /// Times every algorithm (see the crate doc); `now_ns` is the clock in nanoseconds.
    pub fn run(&self, now_ns: &dyn Fn() -> u64, batch_ms: u64, rounds: usize) -> Vec<Timing> {
        let batch_ns = batch_ms.max(1) * 1_000_000;
        let mut timings: Vec<Timing> = self
            .cases
            .iter()
            .map(|case| {
                let start = now_ns();
                black_box(case.verify(&self.jwks));
                let first_us = elapsed_ns(now_ns, start) as f64 / 1e3;
                // Calibration doubles as warm-up: run for about one batch.
                let start = now_ns();
                let mut n = 0u64;
                while elapsed_ns(now_ns, start) < batch_ns {
                    black_box(case.verify(&self.jwks));
                    n += 1;
                }
                let per_call = (elapsed_ns(now_ns, start) / n.max(1)).max(1);
                Timing {
                    alg: case.alg.name().to_string(),
                    first_us,
                    iterations: (batch_ns / per_call).max(3),
                    batches_us: Vec::with_capacity(rounds),
                }
            })
            .collect();
        for _ in 0..rounds {
            for (case, timing) in self.cases.iter().zip(timings.iter_mut()) {
                let start = now_ns();
                for _ in 0..timing.iterations {
                    black_box(case.verify(&self.jwks));
                }
                let ns = elapsed_ns(now_ns, start);
                timing
                    .batches_us
                    .push(ns as f64 / timing.iterations as f64 / 1e3);
            }
        }
        timings
    }
}

impl Case {
    /// The timed operation: this case's signature checked by the filter's verifier.
    fn verify(&self, jwks: &Jwks) -> bool {
        self.check(jwks, black_box(&self.signature))
    }

    fn check(&self, jwks: &Jwks, signature: &[u8]) -> bool {
        jwks.keys.get(self.key).is_some_and(|key| {
            verify::verify(self.alg, key, black_box(&self.signing_input), signature)
        })
    }
}

fn elapsed_ns(now_ns: &dyn Fn() -> u64, start: u64) -> u64 {
    now_ns().saturating_sub(start)
}

#[cfg(target_family = "wasm")]
mod vm {
    //! The proxy-wasm side: run once per Envoy, in `on_configure`, log the results.

    use std::time::UNIX_EPOCH;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{BufferType, ContextType, LogLevel, Status};

    use super::{Bench, Config, LOG_MARKER};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| Box::new(Root));
    }}

    /// Marks the benchmark as taken in this Envoy (every VM of the plugin shares it).
    const RAN: &str = "tollgate_verify_bench_ran";

    struct Root;
    struct Pass;
    impl Context for Root {}
    impl Context for Pass {}
    impl HttpContext for Pass {}

    fn now_ns() -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
            .unwrap_or(0)
    }

    fn log(line: &str) {
        let _ = hostcalls::log(LogLevel::Info, &format!("{LOG_MARKER}{line}"));
    }

    /// Whether this VM is the first to get here: Envoy configures the plugin in the main
    /// thread's VM and in every worker's, and one measurement is enough (and two
    /// running at once on this 2-core machine would disturb each other).
    fn first_vm() -> bool {
        match hostcalls::get_shared_data(RAN) {
            Ok((None, cas)) => hostcalls::set_shared_data(RAN, Some(b"1"), cas).is_ok(),
            _ => false,
        }
    }

    fn config() -> Result<Config, String> {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Err("no plugin configuration".into()),
            Err(Status::NotFound) => return Err("no plugin configuration".into()),
            Err(status) => return Err(format!("reading the configuration: {status:?}")),
        };
        serde_json::from_slice(&bytes).map_err(|e| format!("bad configuration: {e}"))
    }

    impl RootContext for Root {
        fn on_configure(&mut self, _: usize) -> bool {
            if !first_vm() {
                return true;
            }
            let config = match config() {
                Ok(config) => config,
                Err(e) => {
                    log(&serde_json::json!({"error": e}).to_string());
                    return false;
                }
            };
            // The clock's step, so a reader can tell whether batches are long enough.
            let start = now_ns();
            let mut next = now_ns();
            while next == start {
                next = now_ns();
            }
            log(&serde_json::json!({"clockStepNs": next - start}).to_string());
            match Bench::new(&config) {
                Ok(bench) => {
                    for timing in bench.run(&now_ns, config.batch_ms, config.rounds) {
                        log(&serde_json::to_string(&timing).unwrap_or_default());
                    }
                    log("{\"done\": true}");
                    true
                }
                Err(e) => {
                    log(&serde_json::json!({"error": e}).to_string());
                    false
                }
            }
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Pass))
        }
    }
}

//! `make bench-*`: each suite runs Envoy with no filter, with Envoy's native
//! filter doing the same job, and with ours (the dynamic module and the wasm
//! build), alternating for
//! several rounds, and prints a Markdown table of medians (method:
//! docs/benchmarks.md#method) and, where the suite has one, whether the dynamic
//! module meets its target.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{ensure, Context as _, Result};
use clap::{Parser, ValueEnum};
use e2e::bench::rotating_header_script;
use e2e::bench::{self, Settings, Side, Variant};
use e2e::bench_verify;
use e2e::envoy_config::{
    cluster, direct_route, dynamic_module_cluster_specifier, grpc_cluster, native_ratelimit_filter,
    prefix_route, wasm_filter, Listener, Runtime,
};
use e2e::jwt_mint::Keys;
use e2e::paths;
use e2e::process::{die_with_parent, free_port};
use e2e::ratelimit_server::RatelimitServer;
use e2e::redis::Redis;
use e2e::roundtrip::Exchange;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    about = "Tollgate filter benchmarks (Envoy CPU per request, side by side with native filters)"
)]
struct Args {
    suite: Suite,
    /// Rounds of alternating variants; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each measured wrk run.
    #[arg(long, default_value_t = 4)]
    seconds: u64,
    /// Also run our filter built from another .wasm (e.g. the previous commit's), to
    /// A/B a change in the same run. For `verify`, another build of verify_bench.wasm.
    #[arg(long)]
    compare_wasm: Option<PathBuf>,
    /// `verify`: rounds of batches (every algorithm once per round).
    #[arg(long, default_value_t = 9)]
    verify_rounds: usize,
    /// `verify`: shortest batch of verifications, in milliseconds.
    #[arg(long, default_value_t = 50)]
    batch_ms: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Suite {
    /// header_mod (dynamic module and wasm) vs envoy.filters.http.header_mutation.
    Headers,
    /// jwt_auth (dynamic module and wasm) vs envoy.filters.http.jwt_authn (RS256, ES256;
    /// repeated and distinct tokens).
    Jwt,
    /// One JWT signature verification per algorithm inside Envoy's V8 (the prebuilt
    /// verify_bench.wasm) and natively.
    Verify,
    /// ratelimit (dynamic module and wasm, local mode) vs envoy.filters.http.local_ratelimit,
    /// limit never reached.
    Ratelimit,
    /// ratelimit (dynamic module and wasm, global mode) vs envoy.filters.http.ratelimit, all
    /// calling `tollgate ratelimit-server` and one Redis; limit never reached.
    RatelimitGlobal,
    /// canary (dynamic module and wasm) + a `cluster_header` route, and the
    /// dynamic module's canary cluster specifier, vs a native
    /// `weighted_clusters` split (1:2).
    Canary,
    /// All four filters in one chain (dynamic module and wasm) vs Envoy's own four;
    /// the memory target.
    All,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let settings = Settings {
        rounds: args.rounds,
        duration: std::time::Duration::from_secs(args.seconds),
        ..Settings::default()
    };
    let scratch = tempfile::tempdir()?;
    let (title, variants, target) = match args.suite {
        Suite::Headers => (
            "header modification",
            headers(args.compare_wasm.as_deref(), scratch.path())?,
            Some(Target::Times(1.25)),
        ),
        Suite::Jwt => {
            let variants = jwt(scratch.path())?;
            let samples =
                run_and_print("JWT authentication", &variants, &settings, args.seconds).await?;
            print_jwt_targets(&bench::summarize(&variants, &samples, "no filter"));
            return Ok(());
        }
        Suite::Verify => return verify(&args).await,
        Suite::Ratelimit => (
            "local rate limiting",
            ratelimit(scratch.path())?,
            Some(Target::Plus(1.5)),
        ),
        Suite::Canary => {
            let stable = Upstream::start_as(scratch.path(), "stable").await?;
            let canary_upstream = Upstream::start_as(scratch.path(), "canary").await?;
            let variants = canary([&stable, &canary_upstream], args.compare_wasm.as_deref());
            let target = Some(Target::Plus(3.0));
            return report(
                "canary selection",
                &variants,
                target,
                &settings,
                args.seconds,
            )
            .await;
        }
        Suite::All => {
            let upstream = Upstream::start(scratch.path()).await?;
            let variants = all_filters(&upstream)?;
            let target = Some(Target::Rss(10.0));
            return report(
                "all four filters in one chain",
                &variants,
                target,
                &settings,
                args.seconds,
            )
            .await;
        }
        Suite::RatelimitGlobal => {
            let rig = GlobalRig::start(scratch.path()).await?;
            let variants = rig.variants();
            let target = Some(Target::TimesP99(1.1));
            return report(
                "global rate limiting",
                &variants,
                target,
                &settings,
                args.seconds,
            )
            .await;
        }
    };
    report(title, &variants, target, &settings, args.seconds).await
}

/// Native's row in every suite, named so that the targets below can find it.
const NATIVE: &str = "native";
/// The dynamic module's row in the suites that have one, for the same reason.
const DYNAMIC_MODULE: &str = "dynamic module";
/// The canary suite's row for the dynamic module's cluster specifier, held to
/// the same target as the filter.
const CLUSTER_SPECIFIER: &str = "dynamic module, cluster specifier";

/// How a Tollgate build is named in the tables.
fn label(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::DynamicModule => DYNAMIC_MODULE,
        Runtime::Wasm => "wasm",
    }
}

/// Both builds of our filters, the dynamic module first (each round runs the
/// variants in this order, after no filter and native).
const RUNTIMES: [Runtime; 2] = [Runtime::DynamicModule, Runtime::Wasm];

/// A suite's target for the dynamic module (issue 17): its added Envoy CPU per
/// request (median over rounds, paired with no filter) against native's.
#[derive(Clone, Copy)]
enum Target {
    /// At most this many times native's added cost.
    Times(f64),
    /// At most native's added cost plus this many µs.
    Plus(f64),
    /// At most this many times native's added cost, and p99 no worse than native's.
    TimesP99(f64),
    /// Envoy's RSS at most native's plus this many MiB.
    Rss(f64),
}

impl Target {
    /// One line per condition, each ending in "met" or "missed", with the numbers.
    fn verdicts(self, module: &bench::Summary, native: &bench::Summary) -> Vec<String> {
        let (dm, nat) = (module.added_us, native.added_us);
        let met = |ok: bool| if ok { "met" } else { "missed" };
        let times = |factor: f64| {
            format!(
                "added CPU {dm:.1} µs/req vs native {nat:.1} ({:.2}×; target ≤ {factor}×, i.e. ≤ {:.1} µs): {}",
                dm / nat,
                factor * nat,
                met(dm <= factor * nat)
            )
        };
        match self {
            Target::Times(factor) => vec![times(factor)],
            Target::Plus(us) => vec![format!(
                "added CPU {dm:.1} µs/req vs native {nat:.1} ({:+.1} µs; target ≤ native + {us} µs, i.e. ≤ {:.1} µs): {}",
                dm - nat,
                nat + us,
                met(dm <= nat + us)
            )],
            Target::Rss(mib) => vec![format!(
                "Envoy RSS {:.1} MiB vs native {:.1} MiB ({:+.1} MiB; target ≤ native + {mib} MiB): {}",
                module.rss_mib,
                native.rss_mib,
                module.rss_mib - native.rss_mib,
                met(module.rss_mib <= native.rss_mib + mib)
            )],
            Target::TimesP99(factor) => vec![
                times(factor),
                format!(
                    "p99 {:.2} ms vs native {:.2} ms (target no worse): {}",
                    module.p99_ms,
                    native.p99_ms,
                    met(module.p99_ms <= native.p99_ms)
                ),
            ],
        }
    }
}

/// The target lines under a suite's table, plus the per-round difference to
/// native (paired like added cost, a second view of the same runs) and the
/// memory of every Tollgate build next to native's.
fn print_targets(
    target: Target,
    variants: &[Variant],
    samples: &[Vec<bench::Sample>],
    summaries: &[bench::Summary],
) {
    let find = |list: &[bench::Summary], name: &str| list.iter().find(|s| s.name == name).cloned();
    let (Some(module), Some(native)) = (find(summaries, DYNAMIC_MODULE), find(summaries, NATIVE))
    else {
        return;
    };
    println!("dynamic module targets (issue 17):\n");
    for line in target.verdicts(&module, &native) {
        println!("- {line}");
    }
    if let Some(specifier) = find(summaries, CLUSTER_SPECIFIER) {
        for line in target.verdicts(&specifier, &native) {
            println!("- {CLUSTER_SPECIFIER}: {line}");
        }
    }
    let over_native = bench::summarize(variants, samples, NATIVE);
    for row in [DYNAMIC_MODULE, CLUSTER_SPECIFIER] {
        if let Some(d) = find(&over_native, row) {
            println!(
                "- {row} − native, per round: median {:+.1} µs/req (range {:+.1} … {:+.1})",
                d.added_us, d.added_range.0, d.added_range.1
            );
        }
    }
    for build in RUNTIMES.map(label).into_iter().chain([CLUSTER_SPECIFIER]) {
        if let Some(s) = find(summaries, build) {
            println!(
                "- Envoy RSS with {build}: {:.1} MiB vs native {:.1} MiB ({:+.1} MiB)",
                s.rss_mib,
                native.rss_mib,
                s.rss_mib - native.rss_mib
            );
        }
    }
    println!();
}

async fn report(
    title: &str,
    variants: &[Variant],
    target: Option<Target>,
    settings: &Settings,
    seconds: u64,
) -> Result<()> {
    let samples = run_and_print(title, variants, settings, seconds).await?;
    if let Some(target) = target {
        let summaries = bench::summarize(variants, &samples, "no filter");
        print_targets(target, variants, &samples, &summaries);
    }
    Ok(())
}

/// Runs the rounds and prints the suite's table; the samples, for targets.
async fn run_and_print(
    title: &str,
    variants: &[Variant],
    settings: &Settings,
    seconds: u64,
) -> Result<Vec<Vec<bench::Sample>>> {
    eprintln!(
        "benchmark: {title}; {} rounds × {} variants, wrk -t1 -c{} -d{}s, Envoy --concurrency 1",
        settings.rounds,
        variants.len(),
        settings.connections,
        seconds
    );
    let samples = bench::run(variants, settings).await?;
    let summaries = bench::summarize(variants, &samples, "no filter");
    println!(
        "\n{title} — {} (medians of {} rounds)\n",
        today(),
        settings.rounds
    );
    println!("{}", bench::table(&summaries, "no filter"));
    Ok(samples)
}

/// The JWT targets (issue 17): the dynamic module's throughput against
/// native `jwt_authn`'s, at least 1.0× with distinct tokens and 2× with one
/// repeated token, per algorithm; and every build's memory.
fn print_jwt_targets(summaries: &[bench::Summary]) {
    let rps = |name: String| summaries.iter().find(|s| s.name == name).map(|s| s.rps);
    println!("dynamic module targets (issue 17):\n");
    for alg in ["RS256", "ES256"] {
        for (tokens, want) in [
            ("one token".to_string(), 2.0),
            (format!("{DISTINCT_TOKENS} tokens"), 1.0),
        ] {
            let (Some(dm), Some(nat)) = (
                rps(format!("{DYNAMIC_MODULE} {alg} {tokens}")),
                rps(format!("{NATIVE} {alg} {tokens}")),
            ) else {
                continue;
            };
            let ratio = dm / nat;
            println!(
                "- {alg}, {tokens}: {dm:.0} req/s vs native {nat:.0} ({ratio:.2}×; target ≥ {want}×): {}",
                if ratio >= want { "met" } else { "missed" }
            );
        }
    }
    println!();
}

/// The in-VM cost of one verification per algorithm, next to the native cost.
async fn verify(args: &Args) -> Result<()> {
    let wasm = paths::bench_wasm("verify_bench");
    let config = bench_verify::config(args.batch_ms, args.verify_rounds);
    eprintln!(
        "benchmark: one JWT signature verification per algorithm; {} rounds of batches of ≥{} ms, in Envoy's V8 ({}) and natively",
        config.rounds,
        config.batch_ms,
        wasm.display()
    );
    let vm = bench_verify::in_envoy(&wasm, &config).await?;
    let other = match &args.compare_wasm {
        Some(path) => Some(bench_verify::in_envoy(path, &config).await?),
        None => None,
    };
    let native = bench_verify::native(&config)?;
    println!(
        "\nJWT signature verification, µs per verification — {} (min and median of {} batches; Envoy clock step {} ns)\n",
        today(),
        config.rounds,
        vm.clock_step_ns
    );
    let other = other.as_ref().map(|o| ("other", o.timings.as_slice()));
    println!("{}", bench_verify::table(&vm.timings, &native, other));
    if let Some(path) = &args.compare_wasm {
        println!("other = {}", path.display());
    }
    Ok(())
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn direct(filters: Vec<Value>) -> Value {
    Listener {
        http_filters: filters,
        routes: vec![direct_route("bench", "/", "ok")],
        ..Listener::default()
    }
    .bootstrap()
}

/// The same edits every way (native, the dynamic module, wasm): request set + add +
/// remove, response set + add.
fn headers(compare: Option<&Path>, scratch: &Path) -> Result<Vec<Variant>> {
    let ours = json!({
        "request": {
            "set": [{"name": "x-set", "value": "set-value"}],
            "add": [{"name": "x-add", "value": "add-value"}],
            "remove": ["x-remove"]
        },
        "response": {
            "set": [{"name": "x-resp-set", "value": "set-value"}],
            "add": [{"name": "x-resp-add", "value": "add-value"}]
        }
    });
    let append = |key: &str, value: &str, action: &str| json!({"append": {"header": {"key": key, "value": value}, "append_action": action}});
    let native = json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {
                "request_mutations": [
                    {"remove": "x-remove"},
                    append("x-set", "set-value", "OVERWRITE_IF_EXISTS_OR_ADD"),
                    append("x-add", "add-value", "APPEND_IF_EXISTS_OR_ADD")
                ],
                "response_mutations": [
                    append("x-resp-set", "set-value", "OVERWRITE_IF_EXISTS_OR_ADD"),
                    append("x-resp-add", "add-value", "APPEND_IF_EXISTS_OR_ADD")
                ]
            }
        }
    });
    let headers = vec![
        ("x-remove".to_string(), "1".to_string()),
        ("x-set".to_string(), "old".to_string()),
    ];
    let edited = |ex: &Exchange| -> Result<()> {
        status_ok(ex)?;
        ensure!(
            ex.header("x-resp-set").as_deref() == Some("set-value"),
            "x-resp-set missing"
        );
        ensure!(
            ex.header("x-resp-add").as_deref() == Some("add-value"),
            "x-resp-add missing"
        );
        Ok(())
    };
    let unedited = |ex: &Exchange| -> Result<()> {
        ensure!(
            ex.status == 200 && ex.header("x-resp-set").is_none(),
            "unexpected response"
        );
        Ok(())
    };
    let variant = |name: String, filters: Vec<Value>, check: bench::Check| Variant {
        name,
        config: direct(filters),
        headers: headers.clone(),
        script: None,
        side: Side::default(),
        check,
    };
    let mut variants = vec![
        variant("no filter".into(), vec![], Box::new(unedited)),
        variant(NATIVE.into(), vec![native], Box::new(edited)),
    ];
    for runtime in RUNTIMES {
        let filter = runtime.filter("header_mod", &ours);
        variants.push(variant(
            label(runtime).into(),
            vec![filter],
            Box::new(edited),
        ));
    }
    // The same filter with nothing to do: Envoy's fixed cost of calling each build.
    for runtime in RUNTIMES {
        let filter = runtime.filter("header_mod", &json!({}));
        let name = format!("{}, no edits", label(runtime));
        variants.push(variant(name, vec![filter], Box::new(unedited)));
    }
    // The same edits from the cheapest proxy-wasm module possible (bench-data/*.wat):
    // what any wasm filter costs in this Envoy, whatever its code does.
    let floor = scratch.join("header_edits_floor.wasm");
    std::fs::write(
        &floor,
        wat::parse_file(paths::workspace_root().join("e2e/bench-data/header_edits_floor.wat"))?,
    )?;
    variants.push(Variant {
        name: "wasm floor".into(),
        config: direct(vec![wasm_filter("floor", &floor, &json!({}))]),
        headers: variants[0].headers.clone(),
        script: None,
        side: Side::default(),
        check: Box::new(edited),
    });
    if let Some(wasm) = compare {
        variants.push(Variant {
            name: format!("wasm @ {}", wasm.display()),
            config: direct(vec![wasm_filter("header_mod", wasm, &ours)]),
            headers: variants[0].headers.clone(),
            script: None,
            side: Side::default(),
            check: Box::new(edited),
        });
    }
    Ok(variants)
}

/// Our JWT filter's config and native jwt_authn's with the same inline JWKS,
/// issuer, audience and claim header (`x-user` from `sub`), and the keys to
/// sign tokens that both accept until `exp`.
struct JwtSetup {
    keys: Keys,
    issuer: &'static str,
    exp: u64,
    ours: Value,
    native: Value,
}

impl JwtSetup {
    fn new() -> Result<JwtSetup> {
        let keys = Keys::default();
        let mut jwks = keys.jwks();
        if let Some(list) = jwks["keys"].as_array_mut() {
            list.retain(|k| k["kid"] != "enc-only");
        }
        let jwks = jwks.to_string();
        let issuer = "https://issuer.example";
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            + 3600;
        let ours = json!({"providers": [{
            "name": "example", "issuer": issuer, "audiences": ["api"],
            "localJWKS": {"inline": jwks},
            "claimToHeaders": [{"header": "x-user", "claim": "sub"}]
        }]});
        let native = json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"example": {
                    "issuer": issuer, "audiences": ["api"],
                    "local_jwks": {"inline_string": jwks},
                    "claim_to_headers": [{"header_name": "x-user", "claim_name": "sub"}]
                }},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "example"}}]
            }
        });
        Ok(JwtSetup {
            keys,
            issuer,
            exp,
            ours,
            native,
        })
    }

    /// A token for `sub` alice that both filters accept.
    fn token(&self, alg: &str, kid: &str, jti: usize) -> String {
        let claims = json!({"iss": self.issuer, "aud": "api", "sub": "alice", "exp": self.exp, "jti": jti.to_string()});
        self.keys.sign(alg, Some(kid), &claims)
    }
}

/// How many distinct tokens the "distinct" variants cycle through.
const DISTINCT_TOKENS: usize = 10_000;

/// Our filter and native jwt_authn with the same inline JWKS, provider and claim header.
/// The route echoes the claim header back (`x-seen-user`), so every check proves the
/// token was verified and its claims used, not just that a request got through.
fn jwt(scratch: &Path) -> Result<Vec<Variant>> {
    let setup = JwtSetup::new()?;
    let (ours, native) = (&setup.ours, &setup.native);
    let config = |filters: Vec<Value>| {
        Listener {
            http_filters: filters,
            routes: vec![json!({
                "name": "bench",
                "match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
                "response_headers_to_add": [{"header": {"key": "x-seen-user", "value": "%REQ(x-user)%"}}]
            })],
            ..Listener::default()
        }
        .bootstrap()
    };
    let verified = |ex: &Exchange| -> Result<()> {
        status_ok(ex)?;
        ensure!(
            ex.header("x-seen-user").as_deref() == Some("alice"),
            "claim header not set"
        );
        Ok(())
    };
    let refused = |ex: &Exchange| -> Result<()> {
        ensure!(
            ex.status == 401,
            "a request without a token got {}",
            ex.status
        );
        Ok(())
    };
    let mut variants = vec![Variant {
        name: "no filter".into(),
        config: config(vec![]),
        headers: vec![],
        script: None,
        side: Side::default(),
        check: Box::new(status_ok),
    }];
    for (alg, kid) in [("RS256", "rsa"), ("ES256", "p256")] {
        let one = vec![(
            "authorization".to_string(),
            format!("Bearer {}", setup.token(alg, kid, 0)),
        )];
        eprintln!("minting {DISTINCT_TOKENS} distinct {alg} tokens");
        let tokens: Vec<String> = (1..=DISTINCT_TOKENS)
            .map(|i| setup.token(alg, kid, i))
            .collect();
        let script = rotating_header_script(scratch, alg, "authorization", "Bearer ", &tokens)?;
        let builds = RUNTIMES.map(|r| (label(r), r.filter("jwt_auth", ours)));
        for (who, filter) in [(NATIVE, native.clone())].into_iter().chain(builds) {
            variants.push(Variant {
                name: format!("{who} {alg} one token"),
                config: config(vec![filter.clone()]),
                headers: one.clone(),
                script: None,
                side: Side::default(),
                check: Box::new(verified),
            });
            variants.push(Variant {
                name: format!("{who} {alg} {DISTINCT_TOKENS} tokens"),
                config: config(vec![filter]),
                headers: vec![],
                script: Some(script.clone()),
                side: Side::default(),
                check: Box::new(refused),
            });
        }
    }
    Ok(variants)
}

/// Distinct `x-user-id` values cycled by the distinct-bucket variant.
const DISTINCT_USERS: usize = 10_000;

/// One limit, set so high nothing is refused, native and ours (both builds); all
/// add the draft-03 `x-ratelimit-*` headers. Ours also with one bucket per
/// `x-user-id`, which native local_ratelimit cannot express without route
/// descriptors, and the dynamic module's floor (a filter with nothing to do).
/// A local limit so high nothing is refused: Envoy's `local_ratelimit` and ours
/// (one rule for every request), both adding the draft-03 `x-ratelimit-*` headers.
fn local_limits() -> (Value, Value) {
    let huge = 1_000_000_000u64;
    let native = json!({
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench",
            "token_bucket": {"max_tokens": huge, "tokens_per_fill": huge, "fill_interval": "1s"},
            "filter_enabled": {"runtime_key": "rl_enabled", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"runtime_key": "rl_enforced", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03"
        }
    });
    let ours = json!({"local": {"rules": [{"limit": {"requests": huge, "unit": "Second"}}]}});
    (native, ours)
}

fn ratelimit(scratch: &Path) -> Result<Vec<Variant>> {
    let (native, all) = local_limits();
    let limit = &all["local"]["rules"][0]["limit"];
    let per_user = json!({"local": {"rules": [{
        "clientSelectors": [{"headers": [{"name": "x-user-id", "type": "Distinct"}]}],
        "limit": limit
    }]}});
    let users: Vec<String> = (0..DISTINCT_USERS).map(|i| format!("user-{i}")).collect();
    let script = rotating_header_script(scratch, "users", "x-user-id", "", &users)?;
    let variant = |name: String, filters: Vec<Value>, check: bench::Check| Variant {
        name,
        config: direct(filters),
        headers: vec![],
        script: None,
        side: Side::default(),
        check,
    };
    let mut variants = vec![
        variant("no filter".into(), vec![], Box::new(status_ok)),
        variant(NATIVE.into(), vec![native], Box::new(rate_limit_counted)),
    ];
    for runtime in RUNTIMES {
        let filter = runtime.filter("ratelimit", &all);
        variants.push(variant(
            label(runtime).into(),
            vec![filter],
            Box::new(rate_limit_counted),
        ));
    }
    for runtime in RUNTIMES {
        let filter = runtime.filter("ratelimit", &per_user);
        let name = format!(
            "{} Distinct x-user-id ({DISTINCT_USERS} values)",
            label(runtime)
        );
        // The check request carries no x-user-id: the rule does not apply.
        let mut distinct = variant(name, vec![filter], Box::new(status_ok));
        distinct.script = Some(script.clone());
        variants.push(distinct);
    }
    variants.push(variant(
        format!("{DYNAMIC_MODULE}, no-op"),
        vec![module_noop()],
        Box::new(status_ok),
    ));
    Ok(variants)
}

/// The dynamic module's header filter with nothing to do: what Envoy costs to
/// call the module's filter at all (its per-stream and per-callback overhead),
/// the floor under every other dynamic module row.
fn module_noop() -> Value {
    Runtime::DynamicModule.filter("header_mod", &json!({}))
}

/// The global suite's shared parts: one Redis, one `tollgate ratelimit-server`
/// (its `--config` gives the native filter's descriptor a limit; ours sends
/// its own), and an echo upstream, because Envoy's native filter only calls
/// the service for routes that forward (not for `direct_response`).
struct GlobalRig {
    redis: Redis,
    server: Rc<RatelimitServer>,
    upstream: Upstream,
}

/// `dist/echo-backend` as a process: the benchmark's event loop is blocked
/// while wrk runs, so the upstream cannot live in it.
struct Upstream {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Upstream {
    async fn start(scratch: &Path) -> Result<Upstream> {
        Upstream::start_as(scratch, "echo").await
    }

    /// An upstream that names itself `pod` in its replies.
    async fn start_as(scratch: &Path, pod: &str) -> Result<Upstream> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = std::fs::File::create(scratch.join(format!("upstream-{pod}.log")))?;
        let mut command =
            std::process::Command::new(paths::workspace_root().join("dist/echo-backend"));
        die_with_parent(&mut command);
        let child = command
            .args(["--listen", &addr.to_string(), "--pod", pod])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("running dist/echo-backend (make build)")?;
        let upstream = Upstream { child, addr };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(upstream);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("echo-backend did not listen on {addr} within 5 s")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// High enough that nothing is refused, and within the API's 32-bit `requests_per_unit`.
const GLOBAL_LIMIT: u64 = 1_000_000_000;

impl GlobalRig {
    async fn start(scratch: &Path) -> Result<GlobalRig> {
        let redis = Redis::start().await?;
        let limits = format!(
            "domain: bench\ndescriptors:\n  - key: generic_key\n    value: all\n    rate_limit: {{unit: second, requests_per_unit: {GLOBAL_LIMIT}}}\n"
        );
        let server =
            RatelimitServer::start(&paths::tollgate_bin(), &redis.url(), Some(&limits)).await?;
        Ok(GlobalRig {
            redis,
            server: Rc::new(server),
            upstream: Upstream::start(scratch).await?,
        })
    }

    fn bootstrap(&self, filters: Vec<Value>, rate_limits: bool) -> Value {
        let mut route = prefix_route("bench", "/", "upstream");
        if rate_limits {
            route["route"]["rate_limits"] =
                json!([{"actions": [{"generic_key": {"descriptor_value": "all"}}]}]);
        }
        Listener {
            http_filters: filters,
            routes: vec![route],
            clusters: vec![
                cluster("upstream", self.upstream.addr),
                grpc_cluster("rls", self.server.grpc),
            ],
            ..Listener::default()
        }
        .bootstrap()
    }

    fn side(&self) -> Side {
        let server = Rc::clone(&self.server);
        let mut processes = vec![("service".to_string(), self.server.pid())];
        processes.extend(self.redis.pid().map(|pid| ("Redis".to_string(), pid)));
        Side {
            processes,
            counts: vec![(
                "Redis round trips".to_string(),
                Box::new(move || {
                    let server = Rc::clone(&server);
                    Box::pin(async move {
                        server
                            .metric("tollgate_ratelimit_redis_pipelines_total")
                            .await
                    })
                }),
            )],
        }
    }

    /// No filter, the native filter, ours (both builds): the same limit, the
    /// same service; then the dynamic module's floor on this forwarding route.
    fn variants(&self) -> Vec<Variant> {
        let ours = json!({
            "global": {"rules": [{"limit": {"requests": GLOBAL_LIMIT, "unit": "Second"}}]},
            "service": {"cluster": "rls", "domain": "bench", "timeout": "2s"}
        });
        let variant = |name: String, config: Value, check: bench::Check| Variant {
            name,
            config,
            headers: vec![],
            script: None,
            side: self.side(),
            check,
        };
        let native = native_ratelimit_filter("bench", "rls", false);
        let mut variants = vec![
            variant(
                "no filter".into(),
                self.bootstrap(vec![], false),
                Box::new(status_ok),
            ),
            variant(
                NATIVE.into(),
                self.bootstrap(vec![native], true),
                Box::new(rate_limit_counted),
            ),
        ];
        for runtime in RUNTIMES {
            let config = self.bootstrap(vec![runtime.filter("ratelimit", &ours)], false);
            variants.push(variant(
                label(runtime).into(),
                config,
                Box::new(rate_limit_counted),
            ));
        }
        variants.push(variant(
            format!("{DYNAMIC_MODULE}, no-op"),
            self.bootstrap(vec![module_noop()], false),
            Box::new(status_ok),
        ));
        variants
    }
}

/// The 1:2 split the canary and all-filters suites make over two clusters,
/// `stable` and `canary`: the listener, Envoy's `weighted_clusters` route and
/// our policy.
struct Split {
    stable: SocketAddr,
    canary: SocketAddr,
}

impl Split {
    /// One route (`route` its action) in front of the two clusters.
    fn bootstrap(&self, filters: Vec<Value>, route: Value) -> Value {
        Listener {
            http_filters: filters,
            routes: vec![json!({"name": "bench", "match": {"prefix": "/"}, "route": route})],
            clusters: vec![
                cluster("stable", self.stable),
                cluster("canary", self.canary),
            ],
            ..Listener::default()
        }
        .bootstrap()
    }

    /// Our canary policy, weights 1:2.
    fn ours() -> Value {
        json!({"backends": [{"name": "stable", "weight": 1}, {"name": "canary", "weight": 2}]})
    }

    /// Envoy's own split, weights 1:2.
    fn weighted() -> Value {
        json!({"weighted_clusters": {"clusters": [
            {"name": "stable", "weight": 1}, {"name": "canary", "weight": 2}
        ]}})
    }
}

/// Weights 1:2 over two clusters, `stable` and `canary`, each its own echo
/// upstream naming itself by pod (so that a check sees which one answered):
/// Envoy's `weighted_clusters` route; ours as the filter (the dynamic module
/// and the wasm build) writing the header a `cluster_header` route reads; and
/// the dynamic module's cluster specifier naming the cluster on the route,
/// with no header. The baseline forwards to one cluster.
fn canary(upstreams: [&Upstream; 2], compare: Option<&Path>) -> Vec<Variant> {
    let clusters = Split {
        stable: upstreams[0].addr,
        canary: upstreams[1].addr,
    };
    let bootstrap = |filters: Vec<Value>, route: Value| clusters.bootstrap(filters, route);
    let ours = Split::ours();
    // Forwarded to one of the two backends.
    let split = move |ex: &Exchange| -> Result<String> {
        forwarded(ex)?;
        let pod = ex.echo.as_ref().map(|e| e.pod.clone()).unwrap_or_default();
        ensure!(
            matches!(pod.as_str(), "stable" | "canary"),
            "answered by {pod:?}, not a backend of the split"
        );
        Ok(pod)
    };
    let header = |ex: &Exchange| {
        ex.echo
            .as_ref()
            .and_then(|e| e.header("x-tollgate-backend"))
    };
    // Forwarded to the backend the selection header names.
    let selected = move |ex: &Exchange| -> Result<()> {
        let pod = split(ex)?;
        let selected = header(ex);
        ensure!(
            selected.as_deref() == Some(pod.as_str()),
            "the selection header upstream is {selected:?}, the backend {pod}"
        );
        Ok(())
    };
    // Forwarded to a backend of the split, with no header written.
    let specified = move |ex: &Exchange| -> Result<()> {
        split(ex)?;
        ensure!(header(ex).is_none(), "a selection header upstream");
        Ok(())
    };
    let variant = |name: String, config: Value, check: bench::Check| Variant {
        name,
        config,
        headers: vec![],
        script: None,
        side: Side::default(),
        check,
    };
    let weighted = Split::weighted();
    let mut variants = vec![
        variant(
            "no filter".into(),
            bootstrap(vec![], json!({"cluster": "stable"})),
            Box::new(forwarded),
        ),
        variant(
            NATIVE.into(),
            bootstrap(vec![], weighted),
            Box::new(move |ex: &Exchange| split(ex).map(drop)),
        ),
    ];
    for runtime in RUNTIMES {
        let config = bootstrap(
            vec![runtime.filter("canary", &ours)],
            json!({"cluster_header": "x-tollgate-backend"}),
        );
        variants.push(variant(label(runtime).into(), config, Box::new(selected)));
    }
    variants.push(variant(
        CLUSTER_SPECIFIER.into(),
        bootstrap(vec![], dynamic_module_cluster_specifier("canary", &ours)),
        Box::new(specified),
    ));
    // A filter that does nothing here (the header filter with no edits), in
    // each build: what Envoy costs to call it before it does anything.
    for runtime in RUNTIMES {
        let config = bootstrap(
            vec![runtime.filter("header_mod", &json!({}))],
            json!({"cluster": "stable"}),
        );
        let name = format!("{}, no edits", label(runtime));
        variants.push(variant(name, config, Box::new(forwarded)));
    }
    if let Some(wasm) = compare {
        variants.push(Variant {
            name: format!("wasm @ {}", wasm.display()),
            config: bootstrap(
                vec![wasm_filter("canary", wasm, &ours)],
                json!({"cluster_header": "x-tollgate-backend"}),
            ),
            headers: vec![],
            script: None,
            side: Side::default(),
            check: Box::new(forwarded),
        });
    }
    variants
}

/// All four filters in one chain, for memory (issue 17: Envoy with all four
/// loaded at most native + 10 MiB RSS) and the cost of the whole chain: a
/// verified RS256 token whose `sub` becomes `x-user`, a local limit that is
/// never reached, a response header set, and a 1:2 split over two clusters
/// (both the echo upstream). Native does each with Envoy's own filter
/// (`jwt_authn`, `local_ratelimit`, `header_mutation`, `weighted_clusters`).
fn all_filters(upstream: &Upstream) -> Result<Vec<Variant>> {
    let jwt = JwtSetup::new()?;
    let (native_limit, our_limit) = local_limits();
    let our_headers = json!({"response": {"set": [{"name": "x-served-by", "value": "tollgate"}]}});
    let native_headers = json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"response_mutations": [{"append": {
                "header": {"key": "x-served-by", "value": "tollgate"},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
            }}]}
        }
    });
    let our_split = Split::ours();
    let both = Split {
        stable: upstream.addr,
        canary: upstream.addr,
    };
    let bootstrap = |filters: Vec<Value>, route: Value| both.bootstrap(filters, route);
    // Every filter did its part: the upstream saw the claim header, the
    // response carries the limit and the edit.
    let all_done = move |ex: &Exchange| -> Result<()> {
        forwarded(ex)?;
        let user = ex.echo.as_ref().and_then(|e| e.header("x-user"));
        ensure!(
            user.as_deref() == Some("alice"),
            "no claim header upstream: {user:?}"
        );
        ensure!(ex.header("x-ratelimit-limit").is_some(), "not counted");
        ensure!(
            ex.header("x-served-by").as_deref() == Some("tollgate"),
            "response header not set"
        );
        Ok(())
    };
    let token = vec![(
        "authorization".to_string(),
        format!("Bearer {}", jwt.token("RS256", "rsa", 0)),
    )];
    let variant = |name: String, config: Value, check: bench::Check| Variant {
        name,
        config,
        headers: token.clone(),
        script: None,
        side: Side::default(),
        check,
    };
    let mut variants = vec![
        variant(
            "no filter".into(),
            bootstrap(vec![], json!({"cluster": "stable"})),
            Box::new(forwarded),
        ),
        variant(
            NATIVE.into(),
            bootstrap(
                vec![jwt.native.clone(), native_limit, native_headers],
                Split::weighted(),
            ),
            Box::new(all_done),
        ),
    ];
    for runtime in RUNTIMES {
        let chain = vec![
            runtime.filter("jwt_auth", &jwt.ours),
            runtime.filter("ratelimit", &our_limit),
            runtime.filter("header_mod", &our_headers),
            runtime.filter("canary", &our_split),
        ];
        let config = bootstrap(chain, json!({"cluster_header": "x-tollgate-backend"}));
        variants.push(variant(label(runtime).into(), config, Box::new(all_done)));
    }
    Ok(variants)
}

/// Answered 200 by the echo upstream (not by Envoy itself).
fn forwarded(ex: &Exchange) -> Result<()> {
    status_ok(ex)?;
    ensure!(
        ex.echo.is_some(),
        "not answered by the upstream: {}",
        ex.body
    );
    Ok(())
}

/// The request got a 200 (what every baseline checks, and every other check first).
fn status_ok(ex: &Exchange) -> Result<()> {
    ensure!(ex.status == 200, "status {}", ex.status);
    Ok(())
}

/// Allowed and counted by a rate limit filter (in global mode: the service answered).
fn rate_limit_counted(ex: &Exchange) -> Result<()> {
    status_ok(ex)?;
    ensure!(
        ex.header("x-ratelimit-limit").is_some(),
        "no x-ratelimit-limit header: the request was not counted"
    );
    Ok(())
}

//! The alerting rules and the Grafana dashboard in `contrib/` use only metrics the binary
//! exports: the metric names are parsed out of every rule expression and every dashboard
//! query, and looked up in the `/metrics` of the real daemon (`okta-spot-sync run`) after one
//! cycle against the emulators on loopback. A histogram's `_bucket`, `_sum` and `_count` count
//! as its family. Waits are bounded polls; nothing asserts how long anything took.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use okta_spot_sim::{Emulators, Fixture, Section};

const BIN: &str = env!("CARGO_BIN_EXE_okta-spot-sync");
const PATIENCE: Duration = Duration::from_secs(60);

const RULES: &str = "contrib/prometheus/okta-spot-sync.rules.yml";
const DASHBOARD: &str = "contrib/grafana/okta-spot-sync.json";

/// PromQL words that are not metric names: aggregations, binary operators and modifiers.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "start",
    "end",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression (or a Grafana query: `$variables` and
/// `label_values(<expr>, <label>)` allowed) selects: identifiers used bare or followed by `{`
/// or `[`, never a function, a keyword, a label name, a label value, a duration or a number.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let expr = expr.trim();
    if let Some(args) = expr
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        // Grafana: the series selector, then the label name (not a metric).
        let selector = args.rsplit_once(',').map_or(args, |(s, _)| s);
        return metric_names(selector);
    }
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_until(&chars, i, '}'),
            '[' => i = skip_until(&chars, i, ']'),
            '#' => {
                i = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p)
            }
            '$' => {
                // A Grafana variable: $name, ${name} or ${name:format}.
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_until(&chars, i, '}');
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (5m, 1h30m, 1e3, 0x1f).
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let followed_by_paren = chars.get(next) == Some(&'(');
                let lower = word.to_ascii_lowercase();
                if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                    if followed_by_paren {
                        i = skip_until(&chars, next, ')');
                    }
                } else if KEYWORDS.contains(&lower.as_str()) || followed_by_paren {
                    // An aggregation, an operator or a function call.
                } else {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The index after the string literal that starts at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The index after the `close` that ends the group opened at `i` (strings and nested groups of
/// the same kind skipped).
fn skip_until(chars: &[char], mut i: usize, close: char) -> usize {
    let open = chars[i];
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// The `expr:` values of a Prometheus rules file: one-line (plain or quoted) or block scalars
/// (`|`, `>`, with chomping indicators).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        i += 1;
        let Some(value) = trimmed
            .strip_prefix("expr:")
            .or_else(|| trimmed.strip_prefix("- expr:"))
        else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let mut block = String::new();
            while i < lines.len()
                && (lines[i].trim().is_empty()
                    || lines[i].len() - lines[i].trim_start().len() > indent)
            {
                block.push_str(lines[i].trim());
                block.push('\n');
                i += 1;
            }
            exprs.push(block);
        } else if let Some(quoted) = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        {
            exprs.push(quoted.replace("\\\"", "\"").replace("''", "'"));
        } else {
            exprs.push(value.to_string());
        }
    }
    exprs
}

/// Every query of a Grafana dashboard: each `expr` (panel targets, nested rows included) and
/// each templating variable's query.
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    if key == "expr" {
                        out.extend(value.as_str().map(str::to_string));
                    }
                    walk(value, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        out.extend(var["definition"].as_str().map(str::to_string));
        match &var["query"] {
            serde_json::Value::String(q) => out.push(q.clone()),
            q => out.extend(q["query"].as_str().map(str::to_string)),
        }
    }
    out
}

/// Metric name -> where it is used, for the rules and the dashboard.
fn used_metrics(root: &Path) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut used: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let rules = std::fs::read_to_string(root.join(RULES)).unwrap();
    let exprs = rule_exprs(&rules);
    assert!(
        exprs.len() >= 5,
        "too few rule expressions found: {exprs:?}"
    );
    for expr in &exprs {
        for name in metric_names(expr) {
            used.entry(name).or_default().insert(RULES);
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(DASHBOARD)).unwrap()).unwrap();
    let exprs = dashboard_exprs(&dashboard);
    assert!(
        exprs.len() >= 10,
        "too few dashboard queries found: {exprs:?}"
    );
    for expr in &exprs {
        for name in metric_names(expr) {
            used.entry(name).or_default().insert(DASHBOARD);
        }
    }
    used
}

/// Metric families of a Prometheus text exposition (`# TYPE name type`) and sample names.
fn exported(text: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut families = BTreeMap::new();
    let mut samples = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                families.insert(name.to_string(), kind.to_string());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (families, samples)
}

/// Whether `name` is an exported family, or a histogram's or summary's series.
fn is_exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|k| kinds.contains(&k.as_str()))
            {
                return true;
            }
        }
    }
    false
}

/// Kills the daemon if the test ends before it is stopped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_rules_and_the_dashboard_is_exported_by_the_daemon() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let used = used_metrics(&root);

    let emu = Emulators::start_local(Fixture::demo()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_loopback_port();
    let config = emu
        .client_config(dir.path())
        .without_daemon_listen()
        .keys(Section::Daemon, &format!("listen = \"127.0.0.1:{port}\""))
        // One cycle at start; the schedule fires once a year.
        .keys(Section::Sync, "schedule = \"0 0 0 1 1 *\"")
        .write()
        .unwrap();
    let stderr = dir.path().join("stderr.log");
    let mut daemon = Daemon(
        Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), "run"])
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap(),
    );

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let start = Instant::now();
    let text = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!(
                "the daemon exited ({status}): {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        if let Ok(resp) = client.get(&url).send().await {
            let text = resp.text().await.unwrap_or_default();
            // The last-success gauge is set when the first cycle completed.
            if text.contains("\nokta_spot_sync_last_success_timestamp_seconds ") {
                break text;
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "gave up waiting for a completed cycle: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (families, samples) = exported(&text);
    assert!(samples.len() > 10, "{text}");

    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !is_exported(name, &families))
        .map(|(name, files)| format!("{name} (in {files:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics used in contrib/ that the daemon does not export: {missing:#?}\n\nexported families: {:#?}",
        families.keys().collect::<Vec<_>>()
    );
    // Every family the daemon exports is on the dashboard.
    let unused: Vec<&String> = families
        .keys()
        .filter(|f| {
            !used.iter().any(|(name, files)| {
                files.contains(DASHBOARD)
                    && (name == *f
                        || name
                            .strip_prefix(f.as_str())
                            .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)))
            })
        })
        .collect();
    assert!(
        unused.is_empty(),
        "exported but not on the dashboard: {unused:?}"
    );

    let _ = unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    emu.shutdown().await;
}

#[test]
fn metric_names_are_told_from_functions_keywords_labels_and_variables() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (job, le) (rate(a_seconds_bucket{route="/x/{id}", s!~"2.."}[5m] offset 1h))"#
        ),
        ["a_seconds_bucket"]
    );
    assert_eq!(
        names("time() - b_timestamp > 3600 and on (instance) group_left (x) c_total unless d"),
        ["b_timestamp", "c_total", "d"]
    );
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum without (pod) (rate(e_bucket{job=~"$job"}[$__rate_interval])))"#
        ),
        ["e_bucket"]
    );
    assert_eq!(
        names("topk(3, f) / ignoring(status) count(g) * 1e3 + 0x1f - bool_h == bool 1"),
        ["bool_h", "f", "g"]
    );
    assert_eq!(
        names(r#"label_values(i_users{job=~"$job"}, instance)"#),
        ["i_users"]
    );
    assert_eq!(names("j:recorded:rate5m[1h:5m]"), ["j:recorded:rate5m"]);
    assert_eq!(names("${datasource} k"), ["k"]);
}

#[test]
fn rule_expressions_are_read_in_every_yaml_form() {
    let yaml = "groups:\n  - rules:\n      - alert: A\n        expr: a > 1\n        for: 1m\n      - alert: B\n        expr: \"b{x=\\\"y\\\"} > 2\"\n      - alert: C\n        expr: |\n          c\n          and on (i)\n          d\n        labels:\n          severity: x\n      - record: e\n        expr: 'rate(f[5m])'\n";
    assert_eq!(
        rule_exprs(yaml),
        [
            "a > 1",
            "b{x=\"y\"} > 2",
            "c\nand on (i)\nd\n",
            "rate(f[5m])"
        ]
    );
}

#[test]
fn histogram_series_count_as_their_family_and_nothing_else_does() {
    let (families, samples) = exported(
        "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\nh_sum 0\nh_count 0\n# TYPE c counter\nc{a=\"b\"} 1\n",
    );
    assert!(samples.contains("h_bucket") && samples.contains("c"));
    assert!(is_exported("h", &families));
    assert!(is_exported("h_bucket", &families));
    assert!(is_exported("h_count", &families));
    assert!(is_exported("c", &families));
    assert!(!is_exported("c_count", &families));
    assert!(!is_exported("c_total", &families));
    assert!(!is_exported("h_total", &families));
}

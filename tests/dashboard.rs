//! The Grafana dashboard in the chart (charts/samlcred/dashboards/samlcred.json): linted (valid JSON,
//! every panel has its datasource and queries, ids and refIds unique, a layout that fits the grid,
//! every variable defined, every query valid PromQL by promtool), shipped in the ConfigMap the
//! Grafana sidecar picks up, and every query answered by the metrics a real operator exports after
//! a rotation (real API server, okta-sim, `samlcred controller`): each metric it names is in
//! /metrics, and Prometheus's engine (promtool) finds data for each query in those metrics.

mod support;
mod tools;

use jiff::SignedDuration;
use okta_sim::{Fault, FaultKind, RateLimitOverride};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{ControllerProcess, World, wait_for};
use tools::{ROOT, render, run, scratch, tool};

const DASHBOARD: &str = "charts/samlcred/dashboards/samlcred.json";
const LONG: Duration = Duration::from_secs(90);
/// Variables Grafana defines itself.
const BUILT_IN: [&str; 4] = ["__rate_interval", "__interval", "__range", "__name"];

fn dashboard() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join(DASHBOARD)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

/// Every panel, rows' collapsed panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        all.extend(panel["panels"].as_array().into_iter().flatten());
    }
    all
}

/// (panel title and refId, PromQL) of every query in the panels.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    panels(dashboard)
        .into_iter()
        .flat_map(|p| {
            p["targets"].as_array().into_iter().flatten().map(move |t| {
                (
                    format!("{} ({})", p["title"].as_str().unwrap_or("?"), t["refId"]),
                    t["expr"].as_str().unwrap_or("").into(),
                )
            })
        })
        .collect()
}

/// The query as Prometheus gets it: Grafana's variables replaced by values they may take.
fn promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$namespace", ".*")
}

/// The names of samlcred's metrics a query reads: identifiers outside string literals that start
/// with `samlcred_` (no PromQL function, keyword or Grafana variable does).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let (mut quote, mut word) = (None, String::new());
    for c in expr.chars().chain([' ']) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
            None if c.is_ascii_alphanumeric() || c == '_' || c == ':' => {
                word.push(c);
                continue;
            }
            None => {}
        }
        if word.starts_with("samlcred_") {
            names.insert(word.clone());
        }
        word.clear();
    }
    names
}

/// `$name` and `${name}` references in a text.
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let body = if braced { &rest[1..] } else { rest };
        let name: String = body.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn dashboard_json_is_lint_clean() {
    let dash = dashboard();
    let mut problems = Vec::new();
    let uid = dash["uid"].as_str().unwrap_or("");
    if uid.is_empty() || uid.len() > 40 || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        problems.push(format!("dashboard uid {uid:?}: 1 to 40 of [A-Za-z0-9_-]"));
    }
    for key in ["title", "description"] {
        if dash[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("dashboard has no {key}"));
        }
    }
    if dash["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push("schemaVersion must be 36 or later (datasources by uid)".into());
    }
    if dash.get("__inputs").and_then(Value::as_array).is_some_and(|i| !i.is_empty()) {
        problems.push("__inputs: a sidecar-loaded dashboard cannot ask for inputs; use the datasource variable".into());
    }
    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    let defined: BTreeSet<String> = vars.iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    if !vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus") {
        problems.push("no datasource variable of type datasource, query prometheus".into());
    }
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    for var in vars.iter().filter(|v| v["type"] == "query") {
        if var["datasource"] != datasource {
            problems.push(format!("variable {}: datasource must be {datasource}", var["name"]));
        }
    }

    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for panel in panels(&dash) {
        let title = panel["title"].as_str().unwrap_or("").to_string();
        if title.is_empty() {
            problems.push(format!("panel {} has no title", panel["id"]));
        }
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => problems.push(format!("panel id {id} ({title}) is used twice")),
            None => problems.push(format!("panel {title} has no numeric id")),
            _ => {}
        }
        let g = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap_or(-1));
        if x < 0 || y < 0 || w < 1 || h < 1 || x + w > 24 {
            problems.push(format!("panel {title}: gridPos {g} does not fit the 24-column grid"));
        }
        for (other, area) in &boxes {
            let [ox, oy, ow, oh] = *area;
            if x < ox + ow && ox < x + w && y < oy + oh && oy < y + h {
                problems.push(format!("panels {other} and {title} overlap"));
            }
        }
        boxes.push((title.clone(), [x, y, w, h]));
        if panel["type"] == "row" {
            continue;
        }
        if panel["description"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("panel {title} has no description"));
        }
        if panel["datasource"] != datasource {
            problems.push(format!("panel {title}: datasource must be {datasource}"));
        }
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title} has no targets"));
        }
        let mut refs = BTreeSet::new();
        for target in targets {
            if !refs.insert(target["refId"].as_str().unwrap_or("").to_string()) || target["refId"].as_str().is_none() {
                problems.push(format!("panel {title}: refId {} missing or used twice", target["refId"]));
            }
            if target["datasource"] != datasource {
                problems.push(format!("panel {title} {}: datasource must be {datasource}", target["refId"]));
            }
            let expr = target["expr"].as_str().unwrap_or("");
            if metric_names(expr).is_empty() {
                problems
                    .push(format!("panel {title} {}: the query reads no samlcred metric: {expr:?}", target["refId"]));
            }
        }
    }
    let text = serde_json::to_string(&dash).unwrap();
    for var in variables(&text) {
        if !defined.contains(&var) && !BUILT_IN.contains(&var.as_str()) {
            problems.push(format!("variable ${var} is used but not defined in templating"));
        }
    }
    assert!(problems.is_empty(), "{DASHBOARD}:\n  {}", problems.join("\n  "));

    // Prometheus's own parser: every query as a recording rule, through `promtool check rules`.
    let rules: Vec<Value> = queries(&dash)
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("dashboard:query_{i}"), "expr": promql(expr)}))
        .collect();
    let count = rules.len();
    let dir = scratch("dashboard-check");
    std::fs::write(dir.join("queries.yaml"), json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string())
        .unwrap();
    let out = run(Command::new(tool("promtool")).current_dir(&dir).args(["check", "rules", "queries.yaml"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("SUCCESS: {count} rules found")), "{text}");
}

#[test]
fn the_lint_finds_what_it_looks_for() {
    assert_eq!(
        metric_names(r#"sum by (x) (rate(samlcred_a_total{l="samlcred_not_a_metric"}[5m])) / samlcred_b"#),
        BTreeSet::from(["samlcred_a_total".to_string(), "samlcred_b".to_string()])
    );
    assert_eq!(variables("a=~\"$namespace\" ${datasource} [$__rate_interval] $5"), {
        BTreeSet::from(["namespace", "datasource", "__rate_interval", "5"].map(String::from))
    });
}

#[test]
fn the_chart_ships_the_dashboard_for_the_grafana_sidecar() {
    let yaml = render(
        "templates/grafana-dashboard.yaml",
        &[
            "metrics.grafanaDashboard.enabled=true",
            r#"metrics.grafanaDashboard.namespace="grafana""#,
            r#"metrics.grafanaDashboard.annotations.grafana_folder="Operators""#,
        ],
    );
    let map: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(map["kind"], "ConfigMap", "{yaml}");
    assert_eq!(map["metadata"]["namespace"], "grafana");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "the sidecar's default label");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Operators");
    let shipped: Value = serde_json::from_str(map["data"]["samlcred.json"].as_str().unwrap()).unwrap();
    assert_eq!(shipped, dashboard(), "the ConfigMap carries the dashboard unchanged");
    let mut cmd = Command::new(tools::helm());
    cmd.args(["template", "samlcred"]).arg(Path::new(ROOT).join("charts/samlcred"));
    let all = String::from_utf8(run(&mut cmd).stdout).unwrap();
    assert!(!all.contains("samlcred.json"), "the dashboard is off by default");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The samples of a text exposition: series (name and labels, as PromQL writes them) to value.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("exposition line {l:?}"));
            (series.to_string(), value.to_string())
        })
        .collect()
}

fn metric_of(series: &str) -> &str {
    series.split('{').next().unwrap()
}

#[tokio::test]
async fn every_query_finds_its_metrics_after_a_rotation() {
    let world = World::new("dashboard").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    // Manual activation parks the rotation at Published, so the phase gauge is seen mid-rotation.
    world
        .create_credential(
            "watched",
            &app.id,
            json!({"activation": {"policy": "Manual", "delay": "1s"}, "retainPrevious": "1s"}),
        )
        .await;
    // One 503 and one 429 (reset in a second): the error and rate-limit panels have data too.
    let path = format!("/api/v1/apps/{}", app.id);
    let reset = (jiff::Timestamp::now().as_second() + 1).to_string();
    world.sim.inject_fault(Fault {
        method: None,
        path_prefix: path.clone(),
        count: 1,
        kind: FaultKind::RateLimitHeaders(RateLimitOverride {
            remaining: Some("0".into()),
            reset: Some(reset),
            refuse: true,
            ..Default::default()
        }),
    });
    world.sim.inject_fault(Fault {
        method: None,
        path_prefix: path,
        count: 1,
        kind: FaultKind::Status { status: 503, error_code: "E0000009".into(), summary: "Service unavailable".into() },
    });
    let port = free_port();
    let ns = world.ns.name.clone();
    let _controller =
        ControllerProcess::start_with(&[&ns], &[&format!("--metrics-bind-address=127.0.0.1:{port}")], &[]);
    let http = reqwest::Client::new();
    let scrape = |want: String| {
        let http = http.clone();
        async move {
            let text = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.ok()?.text().await.ok()?;
            text.contains(&want).then_some(text)
        }
    };

    let pending = wait_for("the new key to be published, awaiting approval", LONG, || async {
        let status = world.credential("watched").await.status?;
        let published = status.rotation.as_ref()?.phase == samlcred::api::RotationPhase::Published;
        status.pending_key.filter(|_| published).map(|key| key.kid)
    })
    .await;
    let phase = |p: &str, v: u8| {
        format!("samlcred_credential_rotation_phase{{namespace=\"{ns}\",name=\"watched\",phase=\"{p}\"}} {v}")
    };
    let mid = wait_for("the Published phase in /metrics", LONG, || scrape(phase("Published", 1))).await;
    assert!(mid.contains(&phase("Generating", 0)) && mid.contains(&phase("Activating", 0)), "{mid}");

    world.annotate("watched", "samlcred.io/activate", &pending).await;
    let text = wait_for("the completed rotation in /metrics", LONG, || {
        scrape("samlcred_rotations_total{result=\"succeeded\"} 1".into())
    })
    .await;
    assert!(text.contains(&phase("Published", 0)), "no phase once the rotation is done:\n{text}");
    let samples = samples(&text);
    let exported: BTreeSet<&str> = samples.keys().map(|s| metric_of(s)).collect();

    let dash = dashboard();
    let mut all = queries(&dash);
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(def) = var["definition"].as_str() {
            all.push((format!("variable {}", var["name"]), def.to_string()));
        }
    }
    let mut missing = Vec::new();
    for (what, expr) in &all {
        for name in metric_names(expr) {
            if !exported.contains(name.as_str()) {
                missing.push(format!("{what}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics the dashboard reads but samlcred does not export:\n  {}\n{text}",
        missing.join("\n  ")
    );

    // Prometheus's engine over those samples (held for 10 minutes): each panel query, as an alert
    // `count(query)`, fires, i.e. finds data, matchers and groupings included.
    let series: Vec<Value> =
        samples.iter().map(|(series, value)| json!({"series": series, "values": format!("{value}x10")})).collect();
    let panel_queries = queries(&dash);
    let rules: Vec<Value> = panel_queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"alert": format!("Query{i}"), "expr": format!("count({})", promql(expr))}))
        .collect();
    let cases: Vec<Value> = (0..panel_queries.len())
        .map(|i| json!({"eval_time": "10m", "alertname": format!("Query{i}"), "exp_alerts": [{"exp_labels": {}}]}))
        .collect();
    let dir = scratch("dashboard-eval");
    std::fs::write(dir.join("queries.yaml"), json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string())
        .unwrap();
    let test = json!({"rule_files": ["queries.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}]});
    std::fs::write(dir.join("queries.test.yaml"), test.to_string()).unwrap();
    let out =
        tools::output(Command::new(tool("promtool")).current_dir(&dir).args(["test", "rules", "queries.test.yaml"]));
    if !out.status.success() {
        let report = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        let empty: Vec<String> = panel_queries
            .iter()
            .enumerate()
            .filter(|(i, _)| report.contains(&format!("alertname: Query{i},")))
            .map(|(_, (what, expr))| format!("{what}: {expr}"))
            .collect();
        panic!("dashboard queries that find no data in the operator's metrics:\n  {}\n{report}", empty.join("\n  "));
    }
}

//! The chart's PrometheusRule, checked by Prometheus's own promtool (built from its pinned module by
//! tests/tools/build.sh): the rendered rules pass `promtool check rules`, and every alert has unit
//! tests in tests/alerts/samlcred.test.yaml (`promtool test rules`) that fire when they should and
//! stay quiet otherwise.

mod tools;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tools::{ROOT, output, render, run, scratch, tool};

const TESTS: &str = "tests/alerts/samlcred.test.yaml";

/// The PrometheusRule's spec (a Prometheus rule file: `groups:`), rendered with `set`.
fn rule_file(set: &[&str]) -> Value {
    let mut values = vec!["metrics.prometheusRule.enabled=true"];
    values.extend_from_slice(set);
    let yaml = render("templates/prometheusrule.yaml", &values);
    let rule: Value = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("rendered PrometheusRule: {e}\n{yaml}"));
    assert_eq!(rule["kind"], "PrometheusRule", "{yaml}");
    rule["spec"].clone()
}

/// How many alerting rules the file holds (an alert may have one rule per threshold).
fn rule_count(rules: &Value) -> usize {
    let groups = rules["groups"].as_array().unwrap().iter();
    groups.flat_map(|g| g["rules"].as_array().unwrap()).filter(|r| r["alert"].is_string()).count()
}

fn alert_names(rules: &Value) -> BTreeSet<String> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect()
}

/// A directory with rules.yaml (JSON is YAML) and a copy of the unit tests beside it.
fn workdir(rules: &Value) -> PathBuf {
    let dir = scratch("alerts");
    std::fs::write(dir.join("rules.yaml"), serde_json::to_string_pretty(rules).unwrap()).unwrap();
    std::fs::copy(Path::new(ROOT).join(TESTS), dir.join("samlcred.test.yaml")).unwrap();
    dir
}

fn promtool(dir: &Path) -> Command {
    let mut cmd = Command::new(tool("promtool"));
    cmd.current_dir(dir);
    cmd
}

#[test]
fn rendered_rules_pass_promtool_check() {
    for set in [
        &[][..],
        &["metrics.prometheusRule.expiryWarningDays=3", r#"metrics.prometheusRule.additionalLabels.team="identity""#][..],
        &[r#"metrics.prometheusRule.disabled=["SamlcredOktaRateLimited","SamlcredOktaErrors"]"#][..],
    ] {
        let rules = rule_file(set);
        let dir = workdir(&rules);
        let out = run(promtool(&dir).args(["check", "rules", "rules.yaml"]));
        let text = String::from_utf8_lossy(&out.stdout);
        let count = rule_count(&rules);
        assert!(text.contains(&format!("SUCCESS: {count} rules found")), "promtool check rules ({set:?}):\n{text}");
    }
    let fewer = alert_names(&rule_file(&[r#"metrics.prometheusRule.disabled=["SamlcredOktaRateLimited"]"#]));
    assert!(!fewer.contains("SamlcredOktaRateLimited") && fewer.len() == alert_names(&rule_file(&[])).len() - 1);
}

#[test]
fn every_alert_has_a_test_that_fires_and_one_that_stays_quiet() {
    let rules = rule_file(&[]);
    let alerts = alert_names(&rules);
    assert_eq!(alerts.len(), 5, "the chart's alerts: {alerts:?}");
    let tests: Value = serde_saphyr::from_str(&std::fs::read_to_string(Path::new(ROOT).join(TESTS)).unwrap()).unwrap();
    let cases: Vec<&Value> =
        tests["tests"].as_array().unwrap().iter().flat_map(|t| t["alert_rule_test"].as_array().unwrap()).collect();
    for alert in &alerts {
        let of_alert = || cases.iter().filter(|c| c["alertname"] == alert.as_str());
        let fires = of_alert().any(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()));
        let quiet = of_alert().any(|c| c["exp_alerts"].as_array().is_some_and(|a| a.is_empty()));
        assert!(fires && quiet, "{alert} needs a unit test where it fires and one where it stays quiet in {TESTS}");
    }
    for case in &cases {
        let name = case["alertname"].as_str().unwrap();
        assert!(alerts.contains(name), "{TESTS} tests {name}, which the chart does not render");
    }

    let dir = workdir(&rules);
    let out = run(promtool(&dir).args(["test", "rules", "samlcred.test.yaml"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUCCESS"), "promtool test rules:\n{text}");
}

/// The unit tests depend on the rule: with other thresholds the same tests fail, each on its alert.
#[test]
fn the_unit_tests_fail_when_the_thresholds_change() {
    let rules = rule_file(&[
        "metrics.prometheusRule.expiryWarningDays=5",
        r#"metrics.prometheusRule.notReadyFor="30m""#,
        "metrics.prometheusRule.oktaErrorRatio=0.5",
    ]);
    let dir = workdir(&rules);
    let out = output(promtool(&dir).args(["test", "rules", "samlcred.test.yaml"]));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "promtool test rules passed against changed thresholds:\n{text}");
    for alert in ["SamlcredCertificateExpiringWithoutRotation", "SamlcredCredentialNotReady", "SamlcredOktaErrors"] {
        assert!(text.contains(&format!("alertname: {alert}")), "no failure of {alert} in:\n{text}");
    }
    for alert in ["SamlcredRotationFailing", "SamlcredOktaRateLimited"] {
        assert!(
            !text.contains(&format!("alertname: {alert}")),
            "{alert} failed although its rule is unchanged:\n{text}"
        );
    }
}

//! What admission refuses: the checks the API server cannot make (CEL has no cron), by the very
//! functions the controller plans with, so that admission and the InvalidSpec condition agree.

use crate::api::SamlAppCredential;
use crate::rotation::{Policy, SpecError, Windows};

/// Whether the controller can plan with this credential's spec; if not, every reason, each naming
/// its field (`spec.activation.windows[0].schedule "0 0 30 2 *" never fires`).
pub fn validate(credential: &SamlAppCredential) -> Result<(), Vec<String>> {
    let spec = &credential.spec;
    // All the windows' problems at once, rather than the first that planning stops at.
    let mut problems: Vec<String> =
        Windows::problems(&spec.activation.windows).iter().map(ToString::to_string).collect();
    match Policy::from_spec(spec) {
        Ok(_) => {}
        Err(SpecError::Duration(e)) => problems.push(format!("spec: {e}")),
        Err(SpecError::Window(e)) if problems.is_empty() => problems.push(e.to_string()),
        Err(SpecError::Window(_)) => {}
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn credential(windows: serde_json::Value) -> SamlAppCredential {
        serde_json::from_value(json!({
            "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {"orgRef": {"name": "acme"}, "appId": "0oa1", "secretName": "app-idp",
                     "activation": {"windows": windows}},
        }))
        .unwrap()
    }

    #[test]
    fn usable_windows_pass() {
        assert_eq!(validate(&credential(json!([]))), Ok(()));
        let windows = json!([
            {"schedule": "0 2 * * TUE", "duration": "2h", "timeZone": "Europe/Berlin"},
            {"schedule": "0 0 29 2 *", "duration": "90m"},
        ]);
        assert_eq!(validate(&credential(windows)), Ok(()));
    }

    #[test]
    fn every_unusable_window_is_named_with_its_field() {
        let windows = json!([
            {"schedule": "0 2 * * *", "duration": "1h"},
            {"schedule": "0 0 30 2 *", "duration": "1h"},
            {"schedule": "0 0 31 4,6,9,11 *", "duration": "1h"},
            {"schedule": "0 2 * * *", "duration": "0s"},
            {"schedule": "0 2 * * *", "duration": "1h", "timeZone": "Mars/Olympus_Mons"},
            {"schedule": "61 * * * *", "duration": "1h"},
        ]);
        let problems = validate(&credential(windows)).unwrap_err();
        assert_eq!(
            problems[..4],
            [
                r#"spec.activation.windows[1].schedule "0 0 30 2 *" never fires"#,
                r#"spec.activation.windows[2].schedule "0 0 31 4,6,9,11 *" never fires"#,
                r#"spec.activation.windows[3].duration "0s" must be positive"#,
                r#"spec.activation.windows[4].timeZone "Mars/Olympus_Mons" is not in the tz database"#,
            ]
        );
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(
            problems[4].starts_with(r#"spec.activation.windows[5].schedule "61 * * * *" is not a cron"#),
            "{problems:?}"
        );
    }

    #[test]
    fn a_duration_the_controller_cannot_read_is_refused_too() {
        let mut sac = credential(json!([]));
        sac.spec.renew_before = "99999999999999999999h".into();
        let problems = validate(&sac).unwrap_err();
        assert_eq!(problems, [r#"spec: duration "99999999999999999999h" is too long"#]);
    }
}

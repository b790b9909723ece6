//! One AdmissionReview in, one answer out: decoding, the checks of [`validate`], and a denial that
//! says why. Pure: the HTTP server around it only moves bytes.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use super::validate::validate;
use crate::api::SamlAppCredential;

/// The answer to a request body: whether the body was an AdmissionReview at all (the HTTP status
/// is 400 when not), and the review to send back.
pub struct Answer {
    pub decoded: bool,
    pub review: AdmissionReview<DynamicObject>,
}

/// Reviews one request body.
pub fn answer(body: &[u8]) -> Answer {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return invalid(format!("the request body is not an AdmissionReview: {e}")),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(_) => return invalid("the AdmissionReview has no request".into()),
    };
    Answer { decoded: true, review: respond(&request).into_review() }
}

fn invalid(reason: String) -> Answer {
    Answer { decoded: false, review: AdmissionResponse::invalid(reason).into_review() }
}

/// Allows or denies one request for a SamlAppCredential.
fn respond(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    let kind = &request.kind;
    if kind.group != "samlcred.io" || kind.kind != "SamlAppCredential" {
        let what = if kind.group.is_empty() { kind.kind.clone() } else { format!("{}.{}", kind.kind, kind.group) };
        return allowed.deny(format!("samlcred's webhook reviews SamlAppCredentials only, not {what}"));
    }
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return allowed;
    }
    let Some(object) = &request.object else {
        return allowed.deny("the AdmissionReview has no object to review");
    };
    let new = match decode(object) {
        Ok(credential) => credential,
        Err(e) => return allowed.deny(format!("not a SamlAppCredential samlcred can read: {e}")),
    };
    // Being deleted: removing a finalizer must not be refused for a spec nobody can fix any more.
    if new.metadata.deletion_timestamp.is_some() {
        return allowed;
    }
    let Err(mut problems) = validate(&new) else { return allowed };
    // An update refuses only what it makes wrong: an object created before the webhook existed
    // keeps taking metadata changes while its spec still waits for a fix (Ready=False says why).
    let old = request.old_object.as_ref().and_then(|old| decode(old).ok());
    let known = old.and_then(|old| validate(&old).err()).unwrap_or_default();
    let (kept, new_problems): (Vec<String>, Vec<String>) = problems.drain(..).partition(|p| known.contains(p));
    if new_problems.is_empty() {
        let mut allowed = allowed;
        allowed.warnings = Some(kept);
        return allowed;
    }
    allowed.deny(new_problems.join("; "))
}

fn decode(object: &DynamicObject) -> Result<SamlAppCredential, serde_json::Error> {
    serde_json::to_value(object).and_then(serde_json::from_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn credential(schedule: &str) -> Value {
        json!({
            "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {"orgRef": {"name": "acme"}, "appId": "0oa1", "secretName": "app-idp",
                     "activation": {"windows": [{"schedule": schedule, "duration": "1h"}]}},
        })
    }

    fn review(operation: &str, kind: (&str, &str), object: Value, old: Value) -> Vec<u8> {
        let (group, kind) = kind;
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "7d1c", "operation": operation,
                "kind": {"group": group, "version": "v1alpha1", "kind": kind},
                "resource": {"group": group, "version": "v1alpha1", "resource": "samlappcredentials"},
                "name": "app", "namespace": "team",
                "userInfo": {"username": "alice"},
                "object": object, "oldObject": old,
            }
        }))
        .unwrap()
    }

    fn response(answer: &Answer) -> &AdmissionResponse {
        answer.review.response.as_ref().unwrap()
    }

    const SAC: (&str, &str) = ("samlcred.io", "SamlAppCredential");

    #[test]
    fn a_valid_credential_is_allowed_and_the_uid_echoed() {
        let answer = answer(&review("CREATE", SAC, credential("0 2 * * *"), Value::Null));
        assert!(answer.decoded);
        assert!(response(&answer).allowed);
        assert_eq!(response(&answer).uid, "7d1c");
        assert_eq!(answer.review.types.api_version, "admission.k8s.io/v1");
    }

    #[test]
    fn a_schedule_that_never_fires_is_denied_naming_the_field() {
        let answer = answer(&review("CREATE", SAC, credential("0 0 30 2 *"), Value::Null));
        let response = response(&answer);
        assert!(!response.allowed);
        assert_eq!(response.result.message, r#"spec.activation.windows[0].schedule "0 0 30 2 *" never fires"#);
    }

    #[test]
    fn an_update_is_denied_only_for_what_it_breaks() {
        let broke = answer(&review("UPDATE", SAC, credential("0 0 30 2 *"), credential("0 2 * * *")));
        assert!(!response(&broke).allowed);
        // Already wrong before: a metadata change goes through, with the problem as a warning.
        let same = answer(&review("UPDATE", SAC, credential("0 0 30 2 *"), credential("0 0 30 2 *")));
        assert!(response(&same).allowed);
        assert_eq!(response(&same).warnings.as_deref().unwrap().len(), 1);
        let mut deleting = credential("0 0 30 2 *");
        deleting["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
        assert!(response(&answer(&review("UPDATE", SAC, deleting, credential("0 2 * * *")))).allowed);
    }

    #[test]
    fn other_kinds_and_unreadable_bodies_get_a_clear_answer() {
        let pod = answer(&review("CREATE", ("", "Pod"), json!({"apiVersion": "v1", "kind": "Pod"}), Value::Null));
        assert!(!response(&pod).allowed);
        assert!(response(&pod).result.message.contains("SamlAppCredentials only, not Pod"));
        let mut bad = credential("0 2 * * *");
        bad["spec"]["appId"] = json!(17);
        let unreadable = answer(&review("CREATE", SAC, bad, Value::Null));
        assert!(!response(&unreadable).allowed);
        assert!(response(&unreadable).result.message.starts_with("not a SamlAppCredential samlcred can read"));
        for body in [
            &b"not json"[..],
            b"{}",
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            &[0xff; 64],
        ] {
            let answer = answer(body);
            assert!(!answer.decoded, "{body:?}");
            assert!(!response(&answer).allowed);
        }
    }
}

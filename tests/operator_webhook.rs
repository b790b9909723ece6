//! The validating admission webhook (issue 14) end to end: a real `samlcred controller` process
//! serves it over HTTPS with the certificate it keeps in a Secret, patches the caBundle of a real
//! ValidatingWebhookConfiguration, and the real API server calls it on every create and update.

mod support;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{ControllerProcess, World, secret_text, wait_for};

const LONG: Duration = Duration::from_secs(60);
const PATH: &str = "/validate/samlappcredentials";
const SECRET: &str = "webhook-tls";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A controller serving the webhook on `port`, its certificate in Secret [`SECRET`] of the test's
/// namespace, valid for 127.0.0.1 (the configuration calls it by URL), patching `configuration`.
fn start_webhook(world: &World, port: u16, configuration: &str) -> ControllerProcess {
    let ns = world.ns.name.as_str();
    let args = [
        format!("--webhook-bind-address=127.0.0.1:{port}"),
        "--webhook-hosts=127.0.0.1".to_string(),
        format!("--webhook-secret-namespace={ns}"),
        format!("--webhook-secret-name={SECRET}"),
        format!("--webhook-configuration-name={configuration}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ControllerProcess::start_with(&[ns], &args, &[])
}

/// A ValidatingWebhookConfiguration calling `https://127.0.0.1:<port>` for the credentials of the
/// test's namespace only (the control plane is shared with the other tests of this binary), with
/// no caBundle: the operator must patch it in. Deleted when dropped.
struct Registration {
    name: String,
    api: Api<ValidatingWebhookConfiguration>,
}

impl Registration {
    async fn create(world: &World, port: u16) -> Registration {
        let name = format!("samlcred-{}", world.ns.name);
        let configuration: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "samlappcredentials.samlcred.io",
                "clientConfig": {"url": format!("https://127.0.0.1:{port}{PATH}")},
                "rules": [{"apiGroups": ["samlcred.io"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                           "resources": ["samlappcredentials"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.ns.name}},
                "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
            }],
        }))
        .unwrap();
        let api: Api<ValidatingWebhookConfiguration> = Api::all(world.client.clone());
        api.create(&PostParams::default(), &configuration).await.unwrap();
        Registration { name, api }
    }

    async fn ca_bundle(&self) -> Option<String> {
        let configuration = self.api.get(&self.name).await.unwrap();
        let bundle = configuration.webhooks?.first()?.client_config.ca_bundle.clone()?;
        Some(String::from_utf8(bundle.0).unwrap())
    }

    async fn resource_version(&self) -> String {
        self.api.get(&self.name).await.unwrap().metadata.resource_version.unwrap()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = testenv::shared().kubectl().args(["delete", "validatingwebhookconfiguration", &self.name]).output();
    }
}

/// The webhook Secret's CA bundle, once it exists.
async fn secret_ca(world: &World) -> Option<String> {
    let secret: Secret = world.secrets().get_opt(SECRET).await.unwrap()?;
    secret_text(&secret, "ca.crt")
}

/// Waits until the operator has patched the configuration's caBundle to the Secret's CA.
async fn patched_bundle(world: &World, registration: &Registration) -> String {
    wait_for("the caBundle to be patched to the Secret's CA", LONG, || async {
        let ca = secret_ca(world).await?;
        (registration.ca_bundle().await.as_deref() == Some(ca.as_str())).then_some(ca)
    })
    .await
}

/// A client that trusts only `bundle`.
fn client_trusting(bundle: &str) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).timeout(Duration::from_secs(5)).build().unwrap()
}

fn credential(name: &str, windows: Value) -> Value {
    json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
        "metadata": {"name": name},
        "spec": {"orgRef": {"name": "acme"}, "appId": "0oawebhook", "secretName": format!("{name}-idp"),
                 "activation": {"windows": windows}},
    })
}

/// Creates a credential; the API server's error message if it refuses.
async fn create(world: &World, object: Value) -> Result<(), String> {
    let object = serde_json::from_value(object).unwrap();
    match world.credentials().create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(e) => panic!("create: {e}"),
    }
}

/// Waits until the API server calls the webhook with the CA it was given: a never-firing schedule
/// is denied by it. (Until the API server has seen the configuration, such a create succeeds; the
/// object is deleted and the create tried again.)
async fn webhook_in_force(world: &World) {
    let never = || credential("probe", json!([{"schedule": "0 0 30 2 *", "duration": "1h"}]));
    wait_for("the API server to call the webhook", LONG, || async {
        match create(world, never()).await {
            Err(message) if message.contains("denied the request") => Some(()),
            Err(_) => None,
            Ok(()) => {
                world.credentials().delete("probe", &Default::default()).await.unwrap();
                None
            }
        }
    })
    .await;
}

#[tokio::test]
async fn admission_refuses_what_the_controller_cannot_plan_with() {
    let world = World::new("e2e-webhook").await;
    let port = free_port();
    let registration = Registration::create(&world, port).await;
    let _controller = start_webhook(&world, port, &registration.name);
    let bundle = patched_bundle(&world, &registration).await;
    webhook_in_force(&world).await;

    let refused = |windows: Value| {
        let world = &world;
        async move { create(world, credential("refused", windows)).await.expect_err("refused") }
    };
    let message = refused(json!([{"schedule": "0 0 30 2 *", "duration": "1h"}])).await;
    assert!(message.contains(r#"spec.activation.windows[0].schedule "0 0 30 2 *" never fires"#), "{message}");
    let message = refused(json!([
        {"schedule": "0 2 * * *", "duration": "1h"},
        {"schedule": "0 0 31 4,6,9,11 *", "duration": "1h", "timeZone": "Europe/Berlin"},
    ]))
    .await;
    assert!(message.contains(r#"spec.activation.windows[1].schedule "0 0 31 4,6,9,11 *" never fires"#), "{message}");
    let message = refused(json!([{"schedule": "0 2 * * *", "duration": "1h", "timeZone": "Mars/Olympus_Mons"}])).await;
    assert!(
        message.contains(r#"spec.activation.windows[0].timeZone "Mars/Olympus_Mons" is not in the tz database"#),
        "{message}"
    );
    // A zero duration: the CRD's CEL rule refuses it before the webhook is asked.
    let message = refused(json!([{"schedule": "0 2 * * *", "duration": "0s"}])).await;
    assert!(message.contains("spec.activation.windows[0].duration"), "{message}");
    assert!(message.contains("must be positive"), "{message}");

    let valid = json!([{"schedule": "0 2 * * TUE", "duration": "2h", "timeZone": "Europe/Berlin"}]);
    create(&world, credential("valid", valid)).await.expect("a valid spec is admitted");
    let never = json!({"spec": {"activation": {"windows": [{"schedule": "0 0 30 2 *", "duration": "1h"}]}}});
    let patched = world.credentials().patch("valid", &PatchParams::default(), &Patch::Merge(&never)).await;
    let Err(kube::Error::Api(status)) = patched else { panic!("the update was admitted: {patched:?}") };
    assert!(status.message.contains(r#"spec.activation.windows[0].schedule "0 0 30 2 *" never fires"#), "{status:?}");
    let kept = world.credential("valid").await;
    assert_eq!(kept.spec.activation.windows[0].schedule, "0 2 * * TUE", "the refused update left the object alone");

    // Called directly: what is not a review of a SamlAppCredential gets a clear answer, and an
    // oversized body is refused without being read to its end.
    let http = client_trusting(&bundle);
    let url = format!("https://127.0.0.1:{port}{PATH}");
    let answer = http.post(&url).body("not json").send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let review: Value = answer.json().await.unwrap();
    assert_eq!(review["response"]["allowed"], false);
    assert!(review["response"]["status"]["message"].as_str().unwrap().contains("not an AdmissionReview"), "{review}");
    let pod = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "1", "operation": "CREATE", "userInfo": {},
        "kind": {"group": "", "version": "v1", "kind": "Pod"}, "resource": {"group": "", "version": "v1", "resource": "pods"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}});
    let review: Value = http.post(&url).json(&pod).send().await.unwrap().json().await.unwrap();
    assert_eq!(review["response"]["uid"], "1");
    assert_eq!(review["response"]["allowed"], false);
    assert!(review["response"]["status"]["message"].as_str().unwrap().contains("not Pod"), "{review}");
    assert_eq!(http.get(format!("https://127.0.0.1:{port}/other")).send().await.unwrap().status(), 404);
    // The server may close the connection before the client has sent it all; then no status.
    let huge = client_trusting(&bundle).post(&url).body(vec![b' '; 9 << 20]).send().await;
    if let Ok(answer) = huge {
        assert_eq!(answer.status(), 413, "an oversized body is refused");
    }
}

#[tokio::test]
async fn replicas_share_one_ca_and_restore_an_emptied_ca_bundle() {
    let world = World::new("e2e-webhook-ha").await;
    let first_port = free_port();
    let registration = Registration::create(&world, first_port).await;
    let _first = start_webhook(&world, first_port, &registration.name);
    let bundle = patched_bundle(&world, &registration).await;
    let secret_version = world.secrets().get(SECRET).await.unwrap().metadata.resource_version;
    let configuration_version = registration.resource_version().await;

    // A second replica on the same Secret serves a certificate of the same CA and leaves both the
    // Secret and the caBundle as they were (no flapping between replicas).
    let second_port = free_port();
    let second = start_webhook(&world, second_port, &registration.name);
    let http = client_trusting(&bundle);
    let url = format!("https://127.0.0.1:{second_port}{PATH}");
    wait_for("the second replica to serve a certificate of the same CA", LONG, || async {
        let answer = http.post(&url).body("{}").send().await.ok()?;
        (answer.status() == 400).then_some(())
    })
    .await;
    wait_for("the second replica to have checked the caBundle", LONG, || async {
        second.log_text().contains("webhook Secret and caBundle checked").then_some(())
    })
    .await;
    assert_eq!(world.secrets().get(SECRET).await.unwrap().metadata.resource_version, secret_version);
    assert_eq!(registration.ca_bundle().await.as_deref(), Some(bundle.as_str()));
    assert_eq!(registration.resource_version().await, configuration_version, "nobody re-patched the caBundle");
    webhook_in_force(&world).await;

    // A GitOps sync that writes the configuration back without a caBundle is undone at the next
    // resync (every 30 s).
    let emptied = json!({"webhooks": [{"name": "samlappcredentials.samlcred.io", "clientConfig": {"caBundle": null}}]});
    registration.api.patch(&registration.name, &PatchParams::default(), &Patch::Strategic(&emptied)).await.unwrap();
    assert_eq!(registration.ca_bundle().await, None);
    let restored = patched_bundle(&world, &registration).await;
    assert_eq!(restored, bundle, "the same CA again");
}

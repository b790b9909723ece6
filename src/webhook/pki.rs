//! The webhook's own certificates, so that the chart needs no cert-manager: a self-signed CA (whose
//! certificate the API server trusts through the webhook configuration's caBundle) and a serving
//! certificate it signs for the Service's DNS names. Pure: what to renew, and the new material.

use std::fmt;

use jiff::{SignedDuration, Timestamp, ToSpan};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// How long the CA is valid. It is replaced (and trusted beside its successor until it expires)
/// once it could no longer sign a full-length serving certificate.
pub const CA_VALIDITY_DAYS: i32 = 5 * 365;
/// How long a serving certificate is valid; it is renewed once a third of that is left.
pub const SERVING_VALIDITY_DAYS: i32 = 365;
const CA_COMMON_NAME: &str = "samlcred-webhook-ca";

/// The PEM texts kept in the webhook's Secret. The keys are never printed: Debug leaves them out.
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    /// The CAs to trust, newest (the signer) first: the webhook configuration's caBundle.
    pub ca_bundle: String,
    pub ca_key: String,
    /// The serving certificate and its key.
    pub cert: String,
    pub key: String,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material").field("ca_bundle", &self.ca_bundle).field("cert", &self.cert).finish_non_exhaustive()
    }
}

/// What the Secret's material needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Good as it is, until the given time.
    Keep { renew_at: Timestamp },
    /// A new serving certificate from the same CA (it is due, or names other hosts).
    NewServing(&'static str),
    /// A new CA and serving certificate (none yet, unreadable, or the CA is due).
    NewCa(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the webhook needs at least one DNS name or IP address for its certificate")]
    NoHosts,
}

/// What `material` needs for serving `hosts` at `now`.
pub fn verdict(material: Option<&Material>, hosts: &[String], now: Timestamp) -> Verdict {
    let Some(material) = material else { return Verdict::NewCa("no certificate yet") };
    let Some(ca) = first_certificate(&material.ca_bundle) else { return Verdict::NewCa("the CA is unreadable") };
    let Ok(ca_key) = KeyPair::from_pem(&material.ca_key) else { return Verdict::NewCa("the CA key is unreadable") };
    let Some(ca) = Facts::of(&ca) else { return Verdict::NewCa("the CA is unreadable") };
    let full_serving = SignedDuration::from_hours(24 * i64::from(SERVING_VALIDITY_DAYS));
    let ca_renew_at = ca.not_after - full_serving - full_serving / 3;
    if now >= ca_renew_at {
        return Verdict::NewCa("the CA expires soon");
    }
    let serving = first_certificate(&material.cert).and_then(|der| Facts::of(&der));
    let Some(serving) = serving.filter(|_| KeyPair::from_pem(&material.key).is_ok()) else {
        return Verdict::NewServing("the serving certificate is unreadable");
    };
    if serving.issuer_key_id.as_deref() != Some(ca_params().key_identifier(&ca_key).as_slice()) {
        return Verdict::NewServing("the serving certificate is not the CA's");
    }
    let mut wanted: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut named: Vec<&str> = serving.hosts.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    named.sort_unstable();
    wanted.dedup();
    if wanted != named {
        return Verdict::NewServing("the serving certificate names other hosts");
    }
    let renew_at = serving.not_after - serving.not_after.duration_since(serving.not_before) / 3;
    if now >= renew_at {
        return Verdict::NewServing("the serving certificate expires soon");
    }
    Verdict::Keep { renew_at: renew_at.min(ca_renew_at) }
}

/// New material for `verdict`: a new serving certificate from `previous`'s CA, or a new CA (the
/// previous one stays in the bundle while it is valid, so that replicas still serving its
/// certificates are trusted until they pick up the new one).
pub fn issue(
    previous: Option<&Material>,
    verdict: &Verdict,
    hosts: &[String],
    now: Timestamp,
) -> Result<Material, PkiError> {
    if hosts.is_empty() {
        return Err(PkiError::NoHosts);
    }
    let reuse = previous.filter(|_| matches!(verdict, Verdict::NewServing(_)));
    let (ca_bundle, ca_key) = match reuse {
        Some(previous) => (previous.ca_bundle.clone(), KeyPair::from_pem(&previous.ca_key)?),
        None => {
            let key = KeyPair::generate()?;
            let mut params = ca_params();
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            set_validity(&mut params, now, CA_VALIDITY_DAYS);
            let mut bundle = params.self_signed(&key)?.pem();
            if let Some(old) = previous.and_then(|p| first_certificate(&p.ca_bundle).map(|der| (p, der)))
                && Facts::of(&old.1).is_some_and(|facts| facts.not_after > now)
                && let Some(old_pem) = pem_blocks(&old.0.ca_bundle).next()
            {
                bundle.push_str(old_pem);
                bundle.push('\n');
            }
            (bundle, key)
        }
    };
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, now, SERVING_VALIDITY_DAYS);
    let issuer = Issuer::new(ca_params(), &ca_key);
    let cert = params.signed_by(&key, &issuer)?.pem();
    Ok(Material { ca_bundle, ca_key: ca_key.serialize_pem(), cert, key: key.serialize_pem() })
}

/// The CA's name and key identifier method; the same on every call, so the issuer of a serving
/// certificate can be rebuilt from the CA key alone.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params
}

/// Valid from a day ago (clock skew) until `days` days from now, to the day.
fn set_validity(params: &mut CertificateParams, now: Timestamp, days: i32) {
    let day = |at: Timestamp| {
        let date = at.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(i32::from(date.year()), date.month() as u8, date.day() as u8)
    };
    let start = now.checked_sub(SignedDuration::from_hours(24)).unwrap_or(now);
    let end = now.to_zoned(jiff::tz::TimeZone::UTC).checked_add(days.days()).map(|z| z.timestamp()).unwrap_or(now);
    params.not_before = day(start);
    params.not_after = day(end);
}

/// The facts about a certificate that decide its renewal.
struct Facts {
    not_before: Timestamp,
    not_after: Timestamp,
    hosts: Vec<String>,
    issuer_key_id: Option<Vec<u8>>,
}

impl Facts {
    fn of(der: &CertificateDer<'_>) -> Option<Facts> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let at = |t: x509_parser::time::ASN1Time| Timestamp::from_second(t.timestamp()).ok();
        let validity = cert.validity();
        let mut hosts = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => hosts.push(dns.to_string()),
                    GeneralName::IPAddress(ip) => hosts.push(ip_text(ip)?),
                    _ => {}
                }
            }
        }
        let issuer_key_id = cert.iter_extensions().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|id| id.0.to_vec()),
            _ => None,
        });
        hosts.sort_unstable();
        Some(Facts { not_before: at(validity.not_before)?, not_after: at(validity.not_after)?, hosts, issuer_key_id })
    }
}

fn ip_text(octets: &[u8]) -> Option<String> {
    let ip: std::net::IpAddr = match octets.len() {
        4 => <[u8; 4]>::try_from(octets).ok()?.into(),
        16 => <[u8; 16]>::try_from(octets).ok()?.into(),
        _ => return None,
    };
    Some(ip.to_string())
}

/// The first certificate of a PEM bundle.
pub fn first_certificate(pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
}

/// The PEM blocks of a bundle, as text.
fn pem_blocks(pem: &str) -> impl Iterator<Item = &str> {
    const END: &str = "-----END CERTIFICATE-----";
    pem.split_inclusive(END).filter(|block| block.contains(END)).map(|block| block.trim_start_matches('\n'))
}

/// Hours until `at`, for log lines.
pub fn hours_until(at: Timestamp, now: Timestamp) -> i64 {
    at.duration_since(now).as_hours()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["samlcred-webhook.samlcred-system.svc".into(), "127.0.0.1".into()]
    }

    fn now() -> Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_fresh_secret_gets_a_ca_and_a_serving_certificate_for_the_hosts() {
        let verdict = verdict(None, &hosts(), now());
        assert!(matches!(verdict, Verdict::NewCa(_)));
        let material = issue(None, &verdict, &hosts(), now()).unwrap();
        let Verdict::Keep { renew_at } = super::verdict(Some(&material), &hosts(), now()) else { panic!() };
        let days = renew_at.duration_since(now()).as_hours() / 24;
        assert!((240..=245).contains(&days), "renewed two thirds into the year: {days}");
        let serving = Facts::of(&first_certificate(&material.cert).unwrap()).unwrap();
        assert_eq!(serving.hosts, ["127.0.0.1", "samlcred-webhook.samlcred-system.svc"]);
        assert!(!format!("{material:?}").contains("PRIVATE KEY"), "Debug leaves the keys out");
    }

    #[test]
    fn a_due_or_misnamed_serving_certificate_is_renewed_from_the_same_ca() {
        let material = issue(None, &Verdict::NewCa("test"), &hosts(), now()).unwrap();
        let later = now() + SignedDuration::from_hours(24 * 250);
        let due = verdict(Some(&material), &hosts(), later);
        assert_eq!(due, Verdict::NewServing("the serving certificate expires soon"));
        let renewed = issue(Some(&material), &due, &hosts(), later).unwrap();
        assert_eq!(renewed.ca_bundle, material.ca_bundle, "the caBundle does not change");
        assert_ne!(renewed.cert, material.cert);
        assert!(matches!(verdict(Some(&renewed), &hosts(), later), Verdict::Keep { .. }));
        let other = vec!["samlcred-webhook.other.svc".to_string()];
        assert_eq!(
            verdict(Some(&material), &other, now()),
            Verdict::NewServing("the serving certificate names other hosts")
        );
    }

    #[test]
    fn a_due_ca_is_replaced_and_trusted_beside_its_successor() {
        let material = issue(None, &Verdict::NewCa("test"), &hosts(), now()).unwrap();
        let late = now() + SignedDuration::from_hours(24 * (i64::from(CA_VALIDITY_DAYS) - 400));
        let due = verdict(Some(&material), &hosts(), late);
        assert_eq!(due, Verdict::NewCa("the CA expires soon"));
        let renewed = issue(Some(&material), &due, &hosts(), late).unwrap();
        assert_eq!(pem_blocks(&renewed.ca_bundle).count(), 2);
        assert!(renewed.ca_bundle.ends_with(&material.ca_bundle), "the old CA comes second");
        assert!(matches!(verdict(Some(&renewed), &hosts(), late), Verdict::Keep { .. }));
    }

    #[test]
    fn a_serving_certificate_of_another_ca_or_garbage_is_replaced() {
        let one = issue(None, &Verdict::NewCa("test"), &hosts(), now()).unwrap();
        let two = issue(None, &Verdict::NewCa("test"), &hosts(), now()).unwrap();
        let mixed = Material { cert: two.cert.clone(), key: two.key.clone(), ..one.clone() };
        assert_eq!(
            verdict(Some(&mixed), &hosts(), now()),
            Verdict::NewServing("the serving certificate is not the CA's")
        );
        let garbage = Material { ca_bundle: "junk".into(), ..one };
        assert!(matches!(verdict(Some(&garbage), &hosts(), now()), Verdict::NewCa(_)));
        assert!(matches!(issue(None, &Verdict::NewCa("t"), &[], now()), Err(PkiError::NoHosts)));
    }
}

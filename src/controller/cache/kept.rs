//! A kept Secret's reduced metadata, stored compactly.
//!
//! `ObjectMeta` is a few hundred bytes of mostly empty fields, and each of its label and
//! annotation maps allocates a B-tree node with room for eleven entries even when it holds one:
//! about 1.7 KiB per Secret, for the one or two values samlcred reads. At 10,000 credentials
//! (each with its Secret) that is 17 MiB; this form takes a fifth of it. Readers get the
//! reduced `PartialObjectMeta` back, built on lookup.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{ObjectMeta, PartialObjectMeta, PartialObjectMetaExt};

type Pairs = Box<[(Box<str>, Box<str>)]>;

#[derive(Debug, Clone, PartialEq)]
pub struct KeptSecret {
    resource_version: Option<Box<str>>,
    uid: Option<Box<str>>,
    owner_references: Box<[OwnerReference]>,
    deletion_timestamp: Option<Time>,
    labels: Pairs,
    annotations: Pairs,
}

fn pairs(map: &Option<std::collections::BTreeMap<String, String>>) -> Pairs {
    map.iter().flatten().map(|(k, v)| (k.as_str().into(), v.as_str().into())).collect()
}

fn map(pairs: &Pairs) -> Option<std::collections::BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

impl KeptSecret {
    /// The compact form of a reduced Secret's metadata ([`super::reduce_secret`]).
    pub fn of(secret: &PartialObjectMeta<Secret>) -> KeptSecret {
        let meta = &secret.metadata;
        KeptSecret {
            resource_version: meta.resource_version.as_deref().map(Into::into),
            uid: meta.uid.as_deref().map(Into::into),
            owner_references: meta.owner_references.iter().flatten().cloned().collect(),
            deletion_timestamp: meta.deletion_timestamp.clone(),
            labels: pairs(&meta.labels),
            annotations: pairs(&meta.annotations),
        }
    }

    /// The reduced metadata again, of the Secret `name` in `namespace`.
    pub fn expand(&self, namespace: &str, name: &str) -> PartialObjectMeta<Secret> {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            resource_version: self.resource_version.as_deref().map(str::to_string),
            uid: self.uid.as_deref().map(str::to_string),
            owner_references: (!self.owner_references.is_empty()).then(|| self.owner_references.to_vec()),
            deletion_timestamp: self.deletion_timestamp.clone(),
            labels: map(&self.labels),
            annotations: map(&self.annotations),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }
}

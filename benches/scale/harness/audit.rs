//! Kubernetes requests per identity, read from kube-apiserver's audit log (one JSON event per
//! line). The log is read incrementally; [`AuditLog::sync`] first makes a marker request and waits
//! until the server has logged it, so that every request made before the call is counted.

use super::cluster::{MARKER_PREFIX, SYSTEM_NAMESPACE, service_account_user};
use anyhow::{Context, Result};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{BufRead, Seek};
use std::path::PathBuf;
use std::time::Duration;

/// One request of a measured identity.
#[derive(Debug, Clone)]
pub struct Request {
    /// The ServiceAccount's name.
    pub user: String,
    pub verb: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub code: u16,
    pub at: Timestamp,
}

impl Request {
    pub fn is_write(&self) -> bool {
        matches!(self.verb.as_str(), "create" | "update" | "patch" | "delete" | "deletecollection")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    stage: String,
    verb: String,
    user: User,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    #[serde(default)]
    response_status: Option<Status>,
    request_received_timestamp: Timestamp,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: u16,
}

pub struct AuditLog {
    path: PathBuf,
    offset: u64,
    markers: Vec<String>,
    pub requests: Vec<Request>,
    /// Lines that were not one JSON event (each holds at least two requests, not counted).
    pub unparsed_lines: usize,
    users: Vec<(String, String)>,
    next_marker: u64,
}

impl AuditLog {
    /// Counts the requests of the ServiceAccounts `users` (names in the system namespace).
    pub fn new(path: PathBuf, users: &[&str]) -> AuditLog {
        let users = users.iter().map(|u| (service_account_user(u), u.to_string())).collect();
        AuditLog {
            path,
            offset: 0,
            markers: Vec::new(),
            requests: Vec::new(),
            unparsed_lines: 0,
            users,
            next_marker: 0,
        }
    }

    /// Reads everything logged up to now: makes a marker request, then reads until it appears.
    pub async fn sync(&mut self, admin: &kube::Client) -> Result<()> {
        let marker = format!("{MARKER_PREFIX}{}", self.next_marker);
        self.next_marker += 1;
        let api: Api<ConfigMap> = Api::namespaced(admin.clone(), SYSTEM_NAMESPACE);
        let _ = api.get_opt(&marker).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            tokio::task::block_in_place(|| self.read_new())?;
            if self.markers.contains(&marker) {
                return Ok(());
            }
            anyhow::ensure!(std::time::Instant::now() < deadline, "audit marker {marker} not logged within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn read_new(&mut self) -> Result<()> {
        let mut file = std::fs::File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        file.seek(std::io::SeekFrom::Start(self.offset))?;
        let mut reader = std::io::BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line)?;
            // Only whole lines: a line being written is read again next time.
            if read == 0 || !line.ends_with('\n') {
                return Ok(());
            }
            self.offset += read as u64;
            // kube-apiserver's log backend writes events without a lock: a short write (seen once
            // in a 10,000-credential run, under disk pressure) lets another event into the middle of
            // a line. Such a line is counted, not guessed at; the report shows how many there were.
            match serde_json::from_str::<Event>(&line) {
                Ok(event) => self.take(event),
                Err(_) => self.unparsed_lines += 1,
            }
        }
    }

    fn take(&mut self, event: Event) {
        let object = event.object_ref.unwrap_or(ObjectRef { resource: String::new(), subresource: None, name: None });
        if object.resource == "configmaps"
            && event.stage == "ResponseComplete"
            && let Some(name) = object.name.filter(|n| n.starts_with(MARKER_PREFIX))
        {
            self.markers.push(name);
            return;
        }
        // One event per request: a watch is counted when its response starts (it completes only
        // when it ends), anything else when it completes.
        let counted = match event.verb.as_str() {
            "watch" => event.stage == "ResponseStarted",
            _ => event.stage == "ResponseComplete" || event.stage == "Panic",
        };
        let Some((_, user)) = self.users.iter().find(|(full, _)| *full == event.user.username) else { return };
        if !counted {
            return;
        }
        let resource = match object.subresource {
            Some(sub) => format!("{}/{sub}", object.resource),
            None => object.resource,
        };
        self.requests.push(Request {
            user: user.clone(),
            verb: event.verb,
            resource,
            code: event.response_status.map_or(0, |s| s.code),
            at: event.request_received_timestamp,
        });
    }

    /// The requests of `user` received in `[from, to)`.
    pub fn window(&self, user: &str, from: Timestamp, to: Timestamp) -> KubeCounts {
        KubeCounts::of(self.requests.iter().filter(|r| r.user == user && r.at >= from && r.at < to))
    }
}

/// Requests and writes of one identity in one window.
#[derive(Debug, Clone, Default)]
pub struct KubeCounts {
    pub requests: usize,
    pub writes: usize,
    /// Writes of an org's status (OktaOrg, ClusterOktaOrg): per org, not per credential.
    pub org_writes: usize,
    /// Writes answered 409 Conflict.
    pub conflicts: usize,
    /// Requests answered 404 (reads of objects that do not exist yet, mostly).
    pub not_found: usize,
    /// Requests by `verb resource code`.
    pub by_kind: BTreeMap<String, usize>,
}

impl KubeCounts {
    pub fn of<'a>(requests: impl Iterator<Item = &'a Request>) -> KubeCounts {
        let mut counts = KubeCounts::default();
        for r in requests {
            counts.requests += 1;
            if r.is_write() {
                counts.writes += 1;
                if r.resource.starts_with("oktaorgs") || r.resource.starts_with("clusteroktaorgs") {
                    counts.org_writes += 1;
                }
                if r.code == 409 {
                    counts.conflicts += 1;
                }
            }
            if r.code == 404 {
                counts.not_found += 1;
            }
            *counts.by_kind.entry(format!("{} {} {}", r.verb, r.resource, r.code)).or_default() += 1;
        }
        counts
    }

    /// The writes by `verb resource code`, as one line.
    pub fn writes_note(&self) -> String {
        let write_verbs = ["create ", "update ", "patch ", "delete ", "deletecollection "];
        let writes = self.by_kind.iter().filter(|(kind, _)| write_verbs.iter().any(|v| kind.starts_with(v)));
        let note = writes.map(|(kind, count)| format!("{kind}: {count}")).collect::<Vec<_>>().join(", ");
        if note.is_empty() { "no writes".into() } else { note }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests, "writes": self.writes, "conflicts_409": self.conflicts,
            "not_found_404": self.not_found, "by_verb_resource_code": self.by_kind,
        })
    }
}

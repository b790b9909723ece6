//! The operator image that `make image` (and, from a debug build, `make image-dev`) assembles with
//! crane, without a Docker engine: its OCI layout is well-formed (every blob matches its digest),
//! its config runs `samlcred controller` as user 65532 with the OCI labels, its one layer holds the
//! static binary, CA certificates and /etc/passwd and nothing else (no shell), and the binary taken
//! out of the layer runs in that filesystem alone, as that user.
//!
//! The image is read from `$SAMLCRED_IMAGE_DIR`, by default target/image-dev (`make image-dev`).

mod tools;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use tools::{ROOT, output, run, scratch};

fn image_dir() -> PathBuf {
    let dir = std::env::var_os("SAMLCRED_IMAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/image-dev"));
    assert!(
        dir.join("oci/index.json").is_file(),
        "no image in {}: run `make image-dev` (or set SAMLCRED_IMAGE_DIR to the output of `make image`)",
        dir.display()
    );
    dir
}

/// A blob of the layout, checked against its digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or_else(|| panic!("digest {digest} is not sha256"));
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(format!("{:x}", Sha256::digest(&bytes)), hex, "blob {digest} does not match its digest");
    bytes
}

fn json_blob(layout: &Path, descriptor: &Value) -> Value {
    let bytes = blob(layout, descriptor["digest"].as_str().unwrap());
    assert_eq!(bytes.len() as u64, descriptor["size"].as_u64().unwrap(), "size of {descriptor}");
    serde_json::from_slice(&bytes).unwrap()
}

struct Image {
    manifest: Value,
    config: Value,
    layer: PathBuf,
}

fn image() -> Image {
    let layout = image_dir().join("oci");
    let layout_file: Value = serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout_file["imageLayoutVersion"], "1.0.0");
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "one image in the layout: {index}");
    assert_eq!(manifests[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json", "OCI, not Docker, media types");
    let manifest = json_blob(&layout, &manifests[0]);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let config = json_blob(&layout, &manifest["config"]);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer on an empty base: {manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let bytes = blob(&layout, layers[0]["digest"].as_str().unwrap());
    let layer = scratch("image").join("layer.tar.gz");
    std::fs::write(&layer, bytes).unwrap();
    Image { manifest, config, layer }
}

fn chart_field(key: &str) -> String {
    let chart: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(Path::new(ROOT).join("charts/samlcred/Chart.yaml")).unwrap())
            .unwrap();
    match key {
        "source" => chart["sources"][0].as_str().unwrap().into(),
        _ => chart[key].as_str().unwrap().into(),
    }
}

#[test]
fn the_config_runs_samlcred_controller_as_65532_with_oci_labels() {
    let Image { config, manifest, .. } = image();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!((config["os"].as_str(), config["architecture"].as_str()), (Some("linux"), Some(arch)), "{config}");
    let run = &config["config"];
    assert_eq!(run["User"], "65532:65532", "{run}");
    assert_eq!(run["Entrypoint"], serde_json::json!(["/usr/local/bin/samlcred"]), "{run}");
    assert_eq!(run["Cmd"], serde_json::json!(["controller"]), "the chart's args replace the command: {run}");
    let labels = &run["Labels"];
    let label = |k: &str| labels[format!("org.opencontainers.image.{k}")].as_str().unwrap_or_default().to_string();
    assert_eq!(label("title"), "samlcred");
    assert_eq!(label("version"), chart_field("appVersion"));
    assert_eq!(label("source"), chart_field("source"));
    assert_eq!(label("licenses"), "Apache-2.0");
    assert!(!label("description").is_empty(), "{labels}");
    let revision = label("revision");
    assert!(revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()), "revision {revision:?}");
    assert!(label("created").parse::<jiff::Timestamp>().is_ok(), "created {:?}", label("created"));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));

    // The Dockerfile builds the same image for people who have Docker: same user and command.
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    for line in ["USER 65532:65532", "ENTRYPOINT [\"/usr/local/bin/samlcred\"]", "CMD [\"controller\"]"] {
        assert!(dockerfile.lines().any(|l| l == line), "Dockerfile lacks {line:?}");
    }
}

#[test]
fn the_layer_holds_the_static_binary_certificates_and_passwd_only() {
    let Image { layer, .. } = image();
    let listing = String::from_utf8(run(Command::new("tar").arg("-tzvf").arg(&layer)).stdout).unwrap();
    let files: BTreeSet<String> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| l.split_whitespace().last().unwrap().trim_start_matches("./").to_string())
        .collect();
    let expected: BTreeSet<String> =
        ["etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/samlcred"]
            .map(String::from)
            .into();
    assert_eq!(files, expected, "the layer's files (no shell, nothing else):\n{listing}");
    for line in listing.lines() {
        assert!(line.contains(" root/root ") || line.contains(" 0/0 "), "owned by root: {line}");
    }

    let rootfs = layer.parent().unwrap().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    run(Command::new("tar").arg("-xzf").arg(&layer).arg("-C").arg(&rootfs));
    let binary = rootfs.join("usr/local/bin/samlcred");
    assert!(!elf_interpreter(&std::fs::read(&binary).unwrap()), "samlcred in the image is dynamically linked");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("nonroot:x:65532:65532:")), "{passwd}");
    let certs = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(certs.matches("-----BEGIN CERTIFICATE-----").count() > 50, "the system's CA roots, for Okta's TLS");

    // Run it in the layer's filesystem alone (nothing of the host's: no loader, no libraries), as the
    // image's user. chroot needs root; elsewhere it runs from the host, still a static binary.
    let version = format!("samlcred {}", env!("CARGO_PKG_VERSION"));
    let out = if unsafe { libc::geteuid() } == 0 {
        output(
            Command::new("chroot")
                .arg("--userspec=65532:65532")
                .arg(&rootfs)
                .args(["/usr/local/bin/samlcred", "--version"]),
        )
    } else {
        eprintln!("not root: running the extracted binary outside a chroot");
        output(Command::new(&binary).arg("--version"))
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == version,
        "{:?}: {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let help = output(Command::new(&binary).args(["controller", "--help"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--metrics-bind-address"), "samlcred controller --help");
}

#[test]
fn the_tarball_holds_the_same_image() {
    let dir = image_dir();
    let version = chart_field("appVersion");
    let tarball = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("samlcred-{version}-")))
        .unwrap_or_else(|| panic!("no samlcred-{version}-ARCH.tar in {}", dir.display()));
    let listing = String::from_utf8(run(Command::new("tar").arg("-tf").arg(&tarball)).stdout).unwrap();
    assert!(listing.lines().any(|l| l == "manifest.json"), "a `docker load` tarball: {listing}");
    let unpacked = scratch("tarball");
    run(Command::new("tar").arg("-xf").arg(&tarball).arg("-C").arg(&unpacked).arg("manifest.json"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let config_file = manifest[0]["Config"].as_str().unwrap();
    let digest = format!("sha256:{}", config_file.trim_start_matches("sha256:"));
    assert_eq!(digest, image().manifest["config"]["digest"].as_str().unwrap(), "the tarball's config is the layout's");
}

/// Whether an ELF file asks for a program interpreter (PT_INTERP): a dynamically linked executable.
fn elf_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

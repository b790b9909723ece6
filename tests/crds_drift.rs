//! `crds/samlcred.io.yaml` is generated from the Rust types; this fails when the two drift apart.
//! Regenerate with `make crds` (which runs `UPDATE_CRDS=1 cargo test --test crds_drift`).

use std::path::Path;

#[test]
fn crds_directory_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/samlcred.io.yaml");
    let generated = samlcred::api::crds_yaml();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, &generated).expect("write crds/samlcred.io.yaml");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date with the CRD types in src/api; run `make crds` \
         (or `UPDATE_CRDS=1 cargo test --test crds_drift`) and commit the result",
        path.display()
    );
}

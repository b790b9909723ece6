//! Prints the CRD field reference: `cargo run --example crd_reference > docs/reference/crds.md`
//! (what `make docs` runs). `tests/docs.rs` fails when the committed file differs.

fn main() {
    print!("{}", samlcred::api::reference::field_reference_markdown());
}

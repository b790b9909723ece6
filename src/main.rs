//! The `samlcred` binary.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "samlcred", version, about = "Rotates the signing certificates of Okta SAML applications")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (the source of `crds/`).
    Crds,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print!("{}", samlcred::api::crds_yaml()),
    }
}

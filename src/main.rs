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
    /// Run the operator (out of cluster from the kubeconfig, in cluster from the pod's service account).
    Controller(Box<samlcred::runtime::controller::ControllerArgs>),
    /// Print the CustomResourceDefinitions as YAML (the source of `crds/`).
    Crds,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Controller(args) => samlcred::runtime::controller::run(*args).await,
        Command::Crds => {
            print!("{}", samlcred::api::crds_yaml());
            Ok(())
        }
    }
}

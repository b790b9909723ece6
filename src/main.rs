//! The `samlcred` binary: the operator (`controller`), its CRDs (`crds`) and the day-2 commands.
//! Installed as `kubectl-samlcred`, it is the kubectl plugin `kubectl samlcred` with the same commands.

mod cli;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "samlcred", version, about = "Rotates the signing certificates of Okta SAML applications")]
struct Cli {
    #[command(flatten)]
    kube: cli::kube::KubeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (out of cluster from the kubeconfig, in cluster from the pod's service account).
    Controller(Box<samlcred::runtime::controller::ControllerArgs>),
    /// Print the CustomResourceDefinitions as YAML (the source of `crds/`).
    Crds,
    #[command(flatten)]
    Cli(cli::Command),
}

/// Whether the process was started as the kubectl plugin (argv[0] is `kubectl-samlcred`).
fn invoked_as_plugin() -> bool {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let stem = std::path::Path::new(&argv0).file_stem().map(|s| s.to_string_lossy().into_owned());
    stem.as_deref() == Some(cli::PLUGIN_NAME)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut command = Cli::command();
    if invoked_as_plugin() {
        command = command.name(cli::PLUGIN_NAME).bin_name("kubectl samlcred");
    }
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Controller(args) => samlcred::runtime::controller::run(*args).await,
        Command::Crds => {
            print!("{}", samlcred::api::crds_yaml());
            Ok(())
        }
        Command::Cli(command) => {
            if let Err(e) = cli::run(&cli.kube, command).await {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

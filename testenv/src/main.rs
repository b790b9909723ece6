//! `testenv`: starts the local control plane in the foreground until Ctrl-C (used by `make demo`).

use anyhow::Result;
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Runs etcd + kube-apiserver + kube-controller-manager on loopback until Ctrl-C")]
struct Args {
    /// Directory for certificates, the kubeconfig, data and logs.
    #[arg(long, default_value = ".testenv")]
    dir: PathBuf,
    /// Port for kube-apiserver (a free one by default).
    #[arg(long)]
    port: Option<u16>,
    /// Do not start kube-controller-manager.
    #[arg(long)]
    no_controller_manager: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = std::path::absolute(&args.dir)?;
    let plane = testenv::ControlPlane::start(testenv::Options {
        dir: Some(dir),
        apiserver_port: args.port,
        controller_manager: !args.no_controller_manager,
        ..Default::default()
    })?;
    println!("kube-apiserver {} ready in {:.1}s", plane.server(), plane.startup_time().as_secs_f64());
    println!("export KUBECONFIG={}", plane.kubeconfig().display());
    println!("logs in {}", plane.dir().display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    eprintln!("stopping the control plane");
    drop(plane);
    Ok(())
}

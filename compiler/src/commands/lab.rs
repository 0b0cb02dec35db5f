//! `lagic lab up|down|status`: the enclave behind a diode, on this machine.

use crate::cli::{LabCommand, LabDownArgs, LabStatusArgs, LabUpArgs};
use crate::failure::{Failure, Outcome};
use crate::lab::{self, LabError, Subnet, UpRequest};

pub fn run(command: LabCommand) -> Result<Outcome, Failure> {
    match command {
        LabCommand::Up(args) => up(args),
        LabCommand::Down(args) => down(args),
        LabCommand::Status(args) => status(args),
    }
}

fn up(args: LabUpArgs) -> Result<Outcome, Failure> {
    let subnet = Subnet::parse(&args.subnet).map_err(failure)?;
    lab::LabNames::new(&args.name).map_err(failure)?;
    lab::require_root().map_err(failure)?;
    let diode = super::run::diode_object(&args.diode)?;
    let enclave_bin = match args.enclave_bin {
        Some(path) if path.is_file() => path,
        Some(path) => {
            return Err(Failure::bad_input(format!(
                "--enclave-bin {}: no such file",
                path.display()
            )))
        }
        None => lab::find_enclave().map_err(failure)?,
    };
    let enclave_bin = std::fs::canonicalize(&enclave_bin).unwrap_or(enclave_bin);
    let request = UpRequest {
        name: args.name,
        subnet,
        diode,
        diode_source: std::fs::canonicalize(&args.diode)
            .unwrap_or(args.diode)
            .display()
            .to_string(),
        enclave_bin,
        enclave_args: args.enclave_args,
    };
    let state = lab::up(&request, &mut |line| {
        eprintln!("lab {}: {line}", request.name)
    })
    .map_err(failure)?;
    println!(
        "lab {} is up: enclave at http://{}:{} behind the diode on {} ingress",
        state.name, state.enclave_ip, state.port, state.host_if
    );
    println!(
        "  try: curl -s -m 5 -d '{{\"prompt\": \"Once upon a time\"}}' http://{}:{}/api/generate",
        state.enclave_ip, state.port
    );
    println!("  stop: lagic lab down --name {}", state.name);
    Ok(Outcome::Success)
}

fn down(args: LabDownArgs) -> Result<Outcome, Failure> {
    let report = lab::down(&args.name).map_err(failure)?;
    if report.removed.is_empty() {
        println!("lab {}: nothing to remove", args.name);
    } else {
        for line in &report.removed {
            println!("lab {}: removed {line}", args.name);
        }
    }
    Ok(Outcome::Success)
}

fn status(args: LabStatusArgs) -> Result<Outcome, Failure> {
    lab::require_root().map_err(failure)?;
    let labs = lab::status(args.name.as_deref()).map_err(failure)?;
    let all_up = !labs.is_empty() && labs.iter().all(|l| l.is_up());
    if args.json {
        let items: Vec<serde_json::Value> = labs
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.state.name,
                    "up": l.is_up(),
                    "subnet": l.state.subnet,
                    "namespace": {"name": l.state.netns, "exists": l.netns},
                    "host_if": {"name": l.state.host_if, "exists": l.link},
                    "enclave_if": l.state.enclave_if,
                    "enclave": {
                        "url": format!("http://{}:{}", l.state.enclave_ip, l.state.port),
                        "pid": l.state.pid,
                        "running": l.enclave_running,
                        "healthy": l.healthy,
                        "binary": l.state.enclave_bin,
                    },
                    "diode": l.diode.as_ref().map(super::status::to_json),
                })
            })
            .collect();
        super::status::print_out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
        ));
    } else if labs.is_empty() {
        match &args.name {
            Some(name) => println!("lab {name} is not up"),
            None => println!("no lab is up"),
        }
    } else {
        for l in &labs {
            let s = &l.state;
            let yes = |b: bool| if b { "ok" } else { "MISSING" };
            println!(
                "lab {}: {}",
                s.name,
                if l.is_up() { "up" } else { "DEGRADED" }
            );
            println!("  namespace  {} ({})", s.netns, yes(l.netns));
            println!(
                "  veth       {} {} <-> {} {} ({})",
                s.host_if,
                s.host_ip,
                s.enclave_if,
                s.enclave_ip,
                yes(l.link)
            );
            println!(
                "  enclave    pid {} at http://{}:{} (process {}, health {})",
                s.pid,
                s.enclave_ip,
                s.port,
                if l.enclave_running { "running" } else { "GONE" },
                if l.healthy { "200" } else { "no answer" }
            );
            match &l.diode {
                Some(d) => println!(
                    "  diode      {} (program {}) on {} ingress, {}, {}, since {}",
                    d.diode,
                    d.program_id,
                    d.iface,
                    d.mode.as_str(),
                    d.health.as_str(),
                    super::status::since_text(d.since)
                ),
                None => println!("  diode      NONE (traffic flows unfiltered)"),
            }
        }
    }
    Ok(if all_up {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

fn failure(e: LabError) -> Failure {
    match e {
        LabError::Attach(inner) => super::attach::failure(inner, "?"),
        LabError::NotRoot => Failure::bad_input(e.to_string()),
        other => Failure::bad_input(other.to_string()),
    }
}

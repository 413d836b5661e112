//! `provider-sim`: runs the stand-ins of `provider_sim` as processes, for the demo and the
//! benchmarks (the tests start them in process).

fn main() {
    eprintln!("provider-sim: no subcommand yet");
    std::process::exit(2);
}

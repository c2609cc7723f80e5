//! `vmctl`, the operator CLI for vmctld. Everything lives in `vmctl_controller::cli`.

fn main() -> std::process::ExitCode {
    vmctl_controller::cli::main()
}

//! The `kraliki` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    kraliki_api::cli::main()
}

//! `check-config FILE`: exit 0 when the file is good, otherwise print every
//! error with its line and column and exit 1.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

pub fn run(file: &Path) -> ExitCode {
    match Config::load(file) {
        Ok(config) => {
            println!(
                "{}: OK ({} site(s){})",
                file.display(),
                config.sites.len(),
                if config.agent.is_some() {
                    ", origin agent"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

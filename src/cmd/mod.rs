//! The one-shot commands: `diagnose` (probe a site once and name the
//! cause) and `check-config` (validate a configuration file).

pub mod check_config;
pub mod diagnose;

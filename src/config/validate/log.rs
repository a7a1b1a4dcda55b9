//! `[log]`: the format (`text` or `json`) and the level (a level name or a tracing
//! `EnvFilter` directive list).
//!
//! Returns [`LogSettings`] or every problem found. Must never set up logging: `logging` does,
//! from these settings.

use super::super::keys::LOG_LEVELS;
use super::super::raw::RawLog;
use super::super::settings::{LogFormat, LogSettings};
use super::Problems;

/// The `[log]` section.
pub(super) fn settings(raw: RawLog) -> Result<LogSettings, Vec<String>> {
    let mut p = Problems::default();
    let format = match raw.format.trim().to_ascii_lowercase().as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        _ => {
            p.push(format!(
                "log.format = {:?} is not a format; use \"text\" or \"json\"",
                raw.format
            ));
            None
        }
    };
    let level = p.check(validate_log_level(&raw.level));
    match (format, level) {
        (Some(format), Some(level)) if p.is_empty() => Ok(LogSettings { format, level }),
        _ => Err(p.into_problems("a [log] setting")),
    }
}

fn validate_log_level(raw: &str) -> Result<String, String> {
    let t = raw.trim();
    let lower = t.to_ascii_lowercase();
    if LOG_LEVELS.contains(&lower.as_str()) || lower == "off" {
        return Ok(lower);
    }
    let fix = format!(
        "use one of {} or a tracing EnvFilter directive such as \"info,okta_spot_sync=debug\"",
        LOG_LEVELS.join(", ")
    );
    // A bare word that is not a level would be taken by EnvFilter as a target name, which is
    // almost certainly a typo ("verbose", "warning").
    if !t.contains('=') && !t.contains(',') {
        return Err(format!("log.level = {raw:?} is not a log level; {fix}"));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(t)
        .map(|_| t.to_string())
        .map_err(|e| format!("log.level = {raw:?} is not a valid filter ({e}); {fix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        assert_eq!(validate_log_level(" WARN "), Ok("warn".to_string()));
        assert!(validate_log_level("info,hyper=warn").is_ok());
        assert!(validate_log_level("okta_spot_sync=trace").is_ok());
        assert!(validate_log_level("warning").is_err());
        assert!(validate_log_level("").is_err());
        assert!(validate_log_level("x=nope").is_err());
    }
}

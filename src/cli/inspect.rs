//! Printing `inspect`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::command::inspect;
use crate::error::{Error, Result};
use crate::platform::Platform;

pub fn run(
    root: &Path,
    image: &str,
    raw: bool,
    config: bool,
    platform: Option<&Platform>,
) -> Result<ExitCode> {
    let target = inspect::find(root, image, platform)?;
    let mut out = crate::cli::stdout();
    let write = |out: &mut crate::cli::Stdout, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| Error::io("write to standard output", "-", e))
    };
    if raw {
        write(&mut out, &target.raw_manifest(platform.is_none())?)?;
    } else if config {
        write(&mut out, &target.raw_config()?)?;
    } else {
        let text = serde_json::to_string_pretty(&target.inspection()?).expect("serializable");
        write(&mut out, text.as_bytes())?;
        write(&mut out, b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

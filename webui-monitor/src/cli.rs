//! Command line: `run`, `check`, `replay`.
pub fn run() -> anyhow::Result<()> {
    Ok(())
}

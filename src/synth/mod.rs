//! todo
pub fn command(_a: crate::cli::SynthArgs) -> Result<(), String> {
    Err("todo".into())
}

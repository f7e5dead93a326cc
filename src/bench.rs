//! todo
pub fn command(_a: crate::cli::BenchArgs) -> Result<(), String> {
    Err("todo".into())
}

//! The README says what the binary does: its help texts and feature table are quoted from the
//! binary, and this test keeps them identical.

mod common;

use common::ok;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn readme_quotes_every_help_text() {
    let readme = readme();
    for cmd in [
        &[][..],
        &["features"],
        &["replay"],
        &["synth"],
        &["train"],
        &["quantize"],
        &["eval"],
        &["bench"],
    ] {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let help = ok(&args);
        let quoted = format!("$ iotad {}\n{}", args.join(" "), help.trim_end());
        assert!(
            readme.contains(&quoted),
            "README.md does not quote `iotad {}` as the binary prints it:\n{quoted}",
            args.join(" ")
        );
    }
}

#[test]
fn readme_feature_table_is_the_code_table() {
    let table = ok(&["features", "--list"]);
    assert_eq!(table.lines().count(), iotad::window::F + 2);
    assert!(
        readme().contains(table.trim_end()),
        "README.md's feature table differs from `iotad features --list`"
    );
}

#[test]
fn config_defaults_in_readme_are_the_code_defaults() {
    let readme = readme();
    let start = readme.find("```json\n").expect("a JSON block") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let documented: iotad::config::Config =
        serde_json::from_str(&readme[start..end]).expect("the README's config parses");
    assert_eq!(documented, iotad::config::Config::default());
}

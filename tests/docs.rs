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
        &["run"],
        &["config"],
        &["features"],
        &["replay"],
        &["synth"],
        &["train"],
        &["quantize"],
        &["eval"],
        &["bench"],
        &["tune"],
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
fn readme_configuration_is_the_code_configuration() {
    let readme = readme();
    let example = ok(&["config", "--example"]);
    assert!(
        readme.contains(&format!("$ iotad config --example\n{}", example.trim_end())),
        "README.md does not quote `iotad config --example` as the binary prints it"
    );
    let table = ok(&["config", "--markdown"]);
    assert!(
        readme.contains(table.trim_end()),
        "README.md's configuration table differs from `iotad config --markdown`"
    );
    let parsed = iotad::config::Config::parse(&example).expect("the example parses");
    assert_eq!(parsed, iotad::config::Config::default());
}

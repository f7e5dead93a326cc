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

/// The README's evaluation table is `iotad eval --markdown` on all of `../shared/data`
/// (`make readme-eval`): it covers every capture of the manifest as it is now (the set
/// grows), each by name. Skipped, loudly, without the data.
#[test]
fn readme_evaluation_table_covers_every_shared_capture() {
    let data = std::env::var_os("IOTAD_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
        });
    let Ok(text) = std::fs::read_to_string(data.join("MANIFEST.json")) else {
        eprintln!(
            "\n*** SKIPPED readme_evaluation_table_covers_every_shared_capture: no {} ***\n",
            data.join("MANIFEST.json").display()
        );
        return;
    };
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    let files: Vec<&str> = m["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    let readme = readme();
    let block = readme
        .split_once("<!-- eval-table begin")
        .and_then(|(_, rest)| rest.split_once("<!-- eval-table end"))
        .map(|(block, _)| block)
        .expect("README.md has the eval-table markers");
    let head = format!("\n{} captures, model ", files.len());
    assert!(
        block.contains(&head),
        "README.md's evaluation table is not of the {} captures of the manifest: run `make readme-eval`",
        files.len()
    );
    let rows: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| capture "))
        .collect();
    assert_eq!(
        rows.len(),
        files.len(),
        "one row per capture: run `make readme-eval`"
    );
    for f in files {
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("| {f} |"))),
            "README.md's evaluation table has no row for {f}: run `make readme-eval`"
        );
    }
}

//! Snapshots of rendered findings, so a change of wording is reviewed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::PathBuf;

use palisade_core::render::{render_human, render_json};
use palisade_core::ScanReport;
use palisade_scan::{scan_path, ScanOptions};

fn report(files: &[&str]) -> ScanReport {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle");
    let reports = files
        .iter()
        .map(|f| scan_path(&root.join(f), f, &ScanOptions::default()))
        .collect();
    ScanReport::new("test", reports, 0, 0)
}

fn human(files: &[&str]) -> String {
    let mut out = Vec::new();
    render_human(&report(files), &mut out, false).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn human_direct_call() {
    insta::assert_snapshot!(human(&["malicious/reduce_os_system.pkl"]));
}

#[test]
fn human_nullifai_broken_stream() {
    insta::assert_snapshot!(human(&["malicious/nullifai_broken_stream.pkl"]));
}

#[test]
fn human_torch_zip_name_mismatch() {
    insta::assert_snapshot!(human(&["malicious/torch_zip_name_mismatch.pt"]));
}

#[test]
fn human_gadget_chains() {
    insta::assert_snapshot!(human(&[
        "malicious/operator_attrgetter.pkl",
        "malicious/dotted_pathlib_os_system.pkl",
        "malicious/dunder_numpy_builtins_get.pkl",
        "malicious/nested_base64_pickle_loads.pkl",
        "malicious/ext1_self_registered.pkl",
    ]));
}

#[test]
fn json_findings() {
    let mut out = Vec::new();
    render_json(
        &report(&[
            "malicious/joblib_payload_after_array.joblib",
            "malicious/npy_object_payload.npy",
        ]),
        &mut out,
    )
    .unwrap();
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}

fn format_report(files: &[&str]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats");
    let reports = files
        .iter()
        .map(|f| scan_path(&root.join(f), f, &ScanOptions::default()))
        .collect();
    let mut out = Vec::new();
    render_human(&ScanReport::new("test", reports, 0, 0), &mut out, false).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn human_other_formats() {
    insta::assert_snapshot!(format_report(&[
        "malicious/gguf_ssti_cycler_globals_os_popen.gguf",
        "malicious/onnx_extdata_traversal.onnx",
        "malicious/keras_lambda_marshal.keras",
        "malicious/keras_cve_2025_1550_subprocess_run.keras",
        "malicious/safetensors_overlapping_ranges.safetensors",
        "malicious/tf_graphdef_writefile.pb",
        "malicious/zip_slip_dotdot.zip",
        "malicious/tar_symlink_etc_passwd.tar",
    ]));
}

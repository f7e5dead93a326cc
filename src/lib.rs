//! iotad: an IoT network anomaly detector.
//!
//! The data path runs one way, one module per stage:
//!
//! ```text
//! capture -> wire -> device -> window -> model -> detect -> (sinks)
//! ```
//!
//! [`capture`] reads packets with libpcap, [`wire`] parses them without allocating,
//! [`device`] attributes them to the LAN stations they belong to, [`window`] turns each
//! device's traffic into fixed-length feature windows, [`model`] predicts each device's next
//! window with an LSTM+RNN, [`detect`] turns prediction errors into explained alerts, and
//! [`pipeline`] drives the stages. [`synth`] writes the synthetic captures the tests and the
//! demo use; [`eval`] measures detection on labelled captures; [`mod@bench`] measures speed.

// Numeric code indexes several arrays in step; a range loop says that most plainly.
#![allow(clippy::needless_range_loop)]

pub mod bench;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod device;
pub mod engine;
pub mod eval;
pub mod export;
pub mod files;
pub mod ingest;
pub mod math;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod sink;
pub mod status;
pub mod synth;
pub mod tune;
pub mod window;
pub mod wire;

//! `relbot version`.

use super::Outcome;

pub fn run() -> Outcome {
    println!("relbot {}", env!("CARGO_PKG_VERSION"));
    Outcome::Clean
}

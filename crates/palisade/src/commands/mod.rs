pub mod bom;
pub mod client;
pub mod guard;
pub mod rule;
pub mod scan;
pub mod serve;
pub mod sign;

use palisade_core::Rule;

/// The registry: every rule of every stage crate, in code order.
pub fn all_rules() -> Vec<&'static Rule> {
    let mut rules: Vec<&'static Rule> = palisade_scan::rules::ALL.to_vec();
    rules.extend_from_slice(palisade_guard::rules::ALL);
    rules.sort_by_key(|r| r.code);
    rules
}

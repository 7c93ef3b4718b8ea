//! `palisade bom`.
use anyhow::Result;

use crate::cli::BomArgs;

pub fn run(_args: BomArgs) -> Result<u8> {
    anyhow::bail!("not yet")
}

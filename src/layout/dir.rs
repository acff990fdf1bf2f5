//! containers/image's `dir:` layout, one folder per image:
//!
//! ```text
//! OUT/<repo>:<tag>/version                 "Directory Transport Version: 1.1\n"
//! OUT/<repo>:<tag>/manifest.json           the top manifest's exact bytes
//! OUT/<repo>:<tag>/<hex>                   each config and layer
//! OUT/<repo>:<tag>/<hex>.manifest.json     each child manifest of an index
//! ```
//!
//! `skopeo sync --src dir` names each image by its folder's path relative to
//! the source, so nested repositories nest as folders.

use crate::error::Result;
use crate::plan::{Phase, Plan};
use crate::selection::{Image, Selection};

pub const VERSION: &[u8] = b"Directory Transport Version: 1.1\n";

/// The folder of one image, relative to OUT.
pub fn image_dir(img: &Image) -> String {
    img.name()
}

/// Plans the `dir:` folders of a selection.
pub fn plan(sel: &Selection) -> Result<Plan> {
    let mut plan = Plan::new();
    for img in &sel.images {
        let dir = image_dir(img);
        plan.bytes(format!("{dir}/version"), VERSION, Phase::Content)?;
        for (i, m) in img.manifests.iter().enumerate() {
            let name = if i == 0 {
                "manifest.json".to_string()
            } else {
                format!("{}.manifest.json", m.digest.hex())
            };
            plan.blob(
                format!("{dir}/{name}"),
                &m.digest,
                m.node.size,
                Phase::Content,
            )?;
        }
        for b in &img.blobs {
            plan.blob(
                format!("{dir}/{}", b.digest.hex()),
                &b.stored,
                b.size,
                Phase::Content,
            )?;
        }
    }
    Ok(plan)
}

//! `conclab-kernel prepare`: the one-time build of the prelude crates.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::prelude;
use crate::prepared::{PreparedCrates, labkit_dir};

/// Builds the prelude crates in the template directory, unless another
/// process already did (or is doing it: this waits for it, then reuses it).
pub fn run(prepared: &PreparedCrates) -> anyhow::Result<()> {
    let template = prepared.template();
    let built = prepared.build_template(|dir| {
        println!(
            "Building rayon, crossbeam, serde, serde_json and labkit once for this machine in {} ...",
            template.display()
        );
        let _ = std::io::stdout().flush();
        build(dir)
    })?;
    if !built {
        println!("The prelude crates are ready in {}", template.display());
        return Ok(());
    }
    prepared.remove_stale_builds();
    println!("Done: new kernels start with these crates compiled.");
    Ok(())
}

/// Compiles the prelude crates with evcxr in `dir`, and labkit's worker
/// program.
fn build(dir: &Path) -> anyhow::Result<()> {
    // SAFETY: `prepare` runs on the main thread before any other thread exists.
    unsafe { std::env::set_var("EVCXR_TMPDIR", dir) };
    let (mut context, outputs) = prelude::start_evcxr(&labkit_dir(), prelude::Sources::Download)?;
    // Show what the warm-up prints, if anything, rather than losing it.
    std::thread::spawn(move || {
        for line in outputs.stderr.iter() {
            eprintln!("{line}");
        }
    });
    context
        .execute(prelude::WARM_UP)
        .map_err(|e| anyhow::anyhow!("compiling the prelude crates: {e}"))?;
    // Its code runner must be gone before the directory is moved.
    drop(context);
    // The process-pool steps start labkit's worker program: build it now too.
    let worker = labkit::worker::program().context("building labkit's worker program")?;
    println!("labkit's worker program: {}", worker.display());
    Ok(())
}

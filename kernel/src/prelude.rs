//! What every session evaluates before the learner's first cell.

use std::path::Path;

/// The crates every cell can use without a `:dep` line: each name with its
/// configuration, as `:dep NAME = CONFIG` takes it.
pub fn dependencies(labkit: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("rayon", r#""1""#.to_owned()),
        ("crossbeam", r#""0.8""#.to_owned()),
        (
            "serde",
            r#"{ version = "1", features = ["derive"] }"#.to_owned(),
        ),
        ("serde_json", r#""1""#.to_owned()),
        ("labkit", format!("{{ path = {labkit:?} }}")),
    ]
}

/// Where the prelude crates' sources come from when evcxr starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// crates.io, for `prepare`'s first build on a machine that may have
    /// never downloaded them.
    Download,
    /// This machine's cargo cache only, for a session: `prepare` put them
    /// there, and a start must not wait on the network.
    Offline,
}

/// Starts evcxr with the prelude crates in its first crate graph, their
/// sources from `sources`, and cells at [`CELL_OPT_LEVEL`].
///
/// Given as `:dep` lines after the start, the crates would have rust-analyzer
/// load the standard library a second time, with them: about a second of
/// every kernel's start (`vendor/evcxr` adds the constructor for this).
pub fn start_evcxr(
    labkit: &Path,
    sources: Sources,
) -> anyhow::Result<(evcxr::CommandContext, evcxr::EvalContextOutputs)> {
    let (context, outputs) = evcxr::EvalContext::with_initial_state(|state| {
        state.set_offline_mode(sources == Sources::Offline);
        state.set_opt_level(CELL_OPT_LEVEL)?;
        for (name, config) in dependencies(labkit) {
            state.add_dep(name, &config)?;
        }
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("starting evcxr with the prelude crates: {e}"))?;
    Ok((evcxr::CommandContext::with_eval_context(context), outputs))
}

/// The optimisation level a cell's own code is compiled at (evcxr's `:opt`).
/// A cell is glue around the lab crates: at 0 it compiles in about a third
/// of the time it takes at evcxr's default of 2 (0.36 s against 0.95 s for a
/// cell of rayon, crossbeam and serde_json calls), while the crates and
/// labkit's work functions stay optimised (see [`CARGO_CONFIG`]). A learner
/// who wants their own loops optimised types `:opt 2`.
pub const CELL_OPT_LEVEL: &str = "0";

/// Cargo configuration for every build under the kernel's cache (the
/// prelude template and each session's copy of it): dependencies stay
/// optimised whatever `:opt` says, since evcxr's generated manifest only sets
/// one level for everything.
pub const CARGO_CONFIG: &str = r#"# Written by conclab-kernel: the prelude crates stay optimised when a cell
# is compiled at a lower :opt level.
[profile.dev.package."*"]
opt-level = 2
"#;

/// Touches every prelude crate once, so that the first cell that uses one does
/// not pay for loading it. Evaluated while the kernel starts.
pub const WARM_UP: &str = r#"{
    use rayon::prelude::*;
    let _ = (0..4u64).into_par_iter().map(|n| n * n).sum::<u64>();
    let _ = crossbeam::channel::bounded::<u64>(1);
    let _ = serde_json::to_string(&serde_json::json!({"warm": true}));
    let _ = labkit::VERSION;
}"#;

/// Cells run once the kernel is idle, so that a learner's first top-level
/// `let` does not pay for what every first one pays: evcxr infers the type
/// of each top-level variable with rust-analyzer and writes it out as a path,
/// and the first inference through std and the prelude crates, and the first
/// paths into them, cost seconds. The warm-up cell in braces has no
/// top-level `let`, so it pays none of it. The variable is dropped at once
/// (evcxr forgets a variable a cell moved), so no learner ever sees it.
pub const WARM_VARIABLES: [&str; 2] = [
    // The `use` stays inside the block: at the top it would stay in scope
    // for the learner's cells.
    r#"let conclab_warm_up = (
    {
        use rayon::prelude::*;
        (0..4u64).into_par_iter().map(|n| n * n).collect::<Vec<u64>>()
    },
    crossbeam::channel::unbounded::<u64>(),
    std::sync::Arc::new(std::sync::Mutex::new(serde_json::json!({"warm": true}))),
);"#,
    "std::mem::drop(conclab_warm_up);",
];

/// evcxr's default format for a cell's value.
pub const DEFAULT_FORMAT: &str = "{:?}";

/// What a new session's code runner runs first: [`runner_setup`] with the
/// default format, then [`WARM_UP`]. A session's start and its reset both
/// run it.
pub fn first_cell() -> String {
    format!("{}\n{}", runner_setup(DEFAULT_FORMAT), WARM_UP)
}

/// Installs, inside the code runner, what [`crate::relay`] cannot do from
/// outside the cell's copy of std: flushing its stdout buffer at the end of a
/// cell, and reporting panics with the thread they happened on. Evaluated
/// again whenever the code runner restarts.
///
/// It also shows a cell's value on the first compile, as evcxr_jupyter would.
/// evcxr first tries `(value).evcxr_display()`, and when that does not
/// compile, compiles the cell a second time to print it with `format` (`{:?}`
/// unless `:fmt` changed it). A blanket `evcxr_display` for every `Debug`
/// type, in scope in every cell, makes the first try succeed. It takes
/// `&mut self` so that rustc's method lookup, which tries `value`, then
/// `&value`, then `&mut value`, finds it last: a type's own inherent
/// `evcxr_display(&self)` and a crate's trait method (evcxr_image's
/// `ImageDisplay`, plotters') are found first instead of being ambiguous with
/// it. Where `&mut value` cannot be taken (a variable declared without
/// `mut`), [`crate::final_value`] has the kernel show the value through
/// `ConclabPlace` and `conclab_probe`, defined here too.
pub fn runner_setup(format: &str) -> String {
    format!(
        r#"
trait ConclabDisplayDebug {{
    fn evcxr_display(&mut self);
}}
impl<T: std::fmt::Debug + ?Sized> ConclabDisplayDebug for T {{
    fn evcxr_display(&mut self) {{
        use std::io::Write;
        let text = format!("{format}", self);
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let _ = write!(out, "EVCXR_BEGIN_CONTENT text/plain\n{{text}}\nEVCXR_END_CONTENT\n");
        let _ = out.flush();
    }}
}}
// `(&ConclabPlace(&place)).conclab_value()` is a copy of the place if its
// type is Copy, else `&place`: method lookup tries `ConclabCopied` on
// `&ConclabPlace` before it borrows it again for `ConclabBorrowed`.
struct ConclabPlace<'a, T: ?Sized>(&'a T);
trait ConclabCopied<T> {{
    fn conclab_value(&self) -> T;
}}
impl<T: Copy> ConclabCopied<T> for ConclabPlace<'_, T> {{
    fn conclab_value(&self) -> T {{
        *self.0
    }}
}}
trait ConclabBorrowed<'a, T: ?Sized> {{
    fn conclab_value(&self) -> &'a T;
}}
impl<'a, T: ?Sized> ConclabBorrowed<'a, T> for &ConclabPlace<'a, T> {{
    fn conclab_value(&self) -> &'a T {{
        self.0
    }}
}}
// Only compiled, never called: a place of the value's type that may be
// borrowed mutably, on which `evcxr_display` fails to compile only if it
// takes a value that is not Copy.
fn conclab_probe<T: ?Sized>(_: &T) -> &mut T {{
    unreachable!("conclab_probe is only compiled")
}}
#[unsafe(no_mangle)]
pub extern "C" fn {flush}() {{
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}}
std::panic::set_hook(Box::new(|info| {{
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_string());
    // The runner's main thread runs the cell itself.
    let is_main = std::fs::read_link("/proc/thread-self")
        .map(|path| path.file_name() == Some(std::process::id().to_string().as_ref()))
        .unwrap_or(false);
    let current = std::thread::current();
    let thread = if is_main {{ "main" }} else {{ current.name().unwrap_or("<unnamed>") }};
    let location = info
        .location()
        .map(|l| format!("{{}}:{{}}:{{}}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let frame = serde_json::json!({{
        "thread": thread, "main": is_main, "message": message, "location": location
    }});
    // Under the checker, the trace says so at once: a cell whose own
    // thread panicked inside thread::scope may never end.
    labkit::trace::record(thread, None, labkit::trace::What::Panic {{
        main: is_main,
        message: message.clone(),
        location: location.clone(),
    }});
    eprintln!("{prefix}panic {{frame}}");
}}));
"#,
        // Inserted into a string literal of the generated code.
        format = format.replace('\\', "\\\\").replace('"', "\\\""),
        flush = crate::runner::FLUSH_SYMBOL,
        prefix = crate::frame::PREFIX.escape_default(),
    )
}

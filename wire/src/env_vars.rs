//! The environment variables conclab's processes pass to each other, in one
//! place, as uv's `EnvVars` keeps its own: the checker sets them for the
//! kernels it starts, a kernel for its code runner, and the code runner's
//! labkit reads some of them. Both sides name a variable through here, so a
//! rename cannot leave one side behind.

/// The names, each a constant spelled as the variable itself.
pub struct EnvVars;

impl EnvVars {
    /// The file labkit appends the trace to (checker → kernel → code
    /// runner). Unset, labkit records nothing. labkit owns the name: cells
    /// link labkit, not this crate.
    pub const CONCLAB_TRACE: &'static str = labkit::trace::TRACE_ENV;

    /// The nonce every trace line must carry, so that lines the learner's
    /// code writes are told apart (checker → code runner).
    pub const CONCLAB_TRACE_NONCE: &'static str = labkit::trace::NONCE_ENV;

    /// The seed of a perturbed run; set by the cell the checker sends
    /// (`labkit::perturb::set_seed`), and removed from a kernel's
    /// environment so that no outer seed leaks in.
    pub const CONCLAB_SEED: &'static str = labkit::perturb::SEED_ENV;

    /// The cgroup (a directory) the checker made for a kernel's code
    /// runners: each runner moves into a child `runner-PID` of it, which the
    /// checker kills as one (checker → kernel → code runner).
    pub const CONCLAB_CGROUP: &'static str = "CONCLAB_CGROUP";

    /// `0` keeps the checker from making cgroups at all: for tests of the
    /// fallback, and for machines where cgroups misbehave.
    pub const CONCLAB_CGROUPS: &'static str = "CONCLAB_CGROUPS";

    /// The address space, in MiB, the code runner may use (`RLIMIT_AS`): a
    /// cell that allocates past it fails to allocate instead of exhausting
    /// the machine. The checker sets it above the learner's limit, which it
    /// enforces itself.
    pub const CONCLAB_LIMIT_MEMORY_MB: &'static str = "CONCLAB_LIMIT_MEMORY_MB";

    /// The processes the code runner may have (`RLIMIT_NPROC`, where no
    /// cgroup holds it; root ignores it, so the checker counts too).
    pub const CONCLAB_LIMIT_PROCESSES: &'static str = "CONCLAB_LIMIT_PROCESSES";

    /// What a kernel does of its own once idle: [`crate::IdleWork`].
    pub const CONCLAB_IDLE_WORK: &'static str = "CONCLAB_IDLE_WORK";

    /// The kernel program the checker starts (or `--kernel`).
    pub const CONCLAB_KERNEL: &'static str = "CONCLAB_KERNEL";

    /// The log filter of the kernel and the checker (`tracing`'s syntax).
    pub const CONCLAB_LOG: &'static str = "CONCLAB_LOG";

    /// Where `conclab-kernel prepare` keeps the prepared crates.
    pub const CONCLAB_CACHE_DIR: &'static str = "CONCLAB_CACHE_DIR";

    /// The labkit sources to prepare, instead of the ones built in.
    pub const CONCLAB_LABKIT_DIR: &'static str = "CONCLAB_LABKIT_DIR";

    /// Where a kernel's code runner finds its std's shared library (the
    /// kernel → its code runner, the same program run again).
    pub const CONCLAB_STD_DIR: &'static str = "CONCLAB_STD_DIR";
}

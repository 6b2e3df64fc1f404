//! labkit-worker: runs named tasks sent as JSON lines on stdin (see labkit::worker).

fn main() -> std::io::Result<()> {
    labkit::worker::serve(std::io::stdin().lock(), std::io::stdout().lock())
}

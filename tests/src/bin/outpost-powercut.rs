//! The power-cut shim's process (`outpost_tests::powercut::serve`): mounts the FUSE shim
//! at the directory given and takes its commands on standard input until it closes.

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(mountpoint), Some(name)) = (args.next(), args.next()) else {
        eprintln!("usage: outpost-powercut <mountpoint> <name>");
        return std::process::ExitCode::from(2);
    };
    outpost_tests::powercut::serve(std::path::Path::new(&mountpoint), &name.to_string_lossy())
}

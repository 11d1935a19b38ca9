//! `distpoint completions SHELL` and `distpoint man DIR`: shell completions and
//! man pages generated from the same clap definitions that parse the command
//! line, so they cannot drift from it.

use super::Failure;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// `completions` options.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `man` options.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Folder to write distpoint.1 and one page per subcommand into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Print the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> Result<(), Failure> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}

/// Write the man pages into `args.dir` and list them.
pub fn man(args: ManArgs, cmd: clap::Command) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Failure::usage(format!("man: {}: {e}", args.dir.display())))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Resolves each subcommand's full name (distpoint-certs-dev) for its page.
    cmd.build();
    write_pages(cmd, &args.dir)
}

fn write_pages(cmd: clap::Command, dir: &Path) -> Result<(), Failure> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir)?;
    }
    let page = clap_mangen::Man::new(cmd)
        .generate_to(dir)
        .map_err(|e| Failure::usage(format!("man: {}: {e}", dir.display())))?;
    println!("wrote {}", page.display());
    Ok(())
}

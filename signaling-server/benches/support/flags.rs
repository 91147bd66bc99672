//! The benches' own flags: `--name value` pairs, after what `cargo bench` passes (`--bench`).

use std::str::FromStr;

/// Each `--flag value` pair of the command line, in order; `cargo bench`'s own `--bench` (a
/// flag without a value) is left out.
pub fn pairs() -> Vec<(String, String)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--bench" {
            i += 1;
            continue;
        }
        out.push((
            args[i].clone(),
            args.get(i + 1).cloned().unwrap_or_default(),
        ));
        i += 2;
    }
    out
}

/// A flag's value as a number (or whatever parses), or the bench stops saying why.
pub fn number<T: FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| fail(&format!("{flag} needs a number, not {value:?}")))
}

/// A flag this bench does not know: it stops saying so.
pub fn unknown(flag: &str) -> ! {
    fail(&format!("unknown option {flag}"))
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

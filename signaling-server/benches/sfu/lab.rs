//! The benchmark's network: a namespace of its own with one veth interface on a
//! documentation-range address (`../shared/DESIGN.md` §3). Janus gathers no loopback
//! candidates, so the servers and the load tester all use this address; nothing leaves the
//! machine, and nothing on the machine's own interfaces is touched.

use std::net::Ipv4Addr;
use std::process::Command;

pub const INTERFACE: &str = "sfubench0";
/// The veth pair's other end (unaddressed: traffic to our own address stays local).
const PEER: &str = "sfubench1";
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const INSIDE: &str = "CLASSROOM_SFU_BENCH_NETNS";

/// Outside the namespace: runs this benchmark again inside a new one and returns its exit
/// status. Inside: sets the interface up and returns `None` (the benchmark goes on).
pub fn enter() -> Option<i32> {
    if std::env::var_os(INSIDE).is_none() {
        let me = std::env::current_exe().expect("the benchmark's path");
        let status = Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg(me)
            .args(std::env::args_os().skip(1))
            .env(INSIDE, "1")
            .status();
        return Some(match status {
            Ok(s) => s.code().unwrap_or(1),
            Err(e) => {
                eprintln!(
                    "cannot run the benchmark in a network namespace of its own (unshare --net, as root): {e}"
                );
                1
            }
        });
    }
    let address = format!("{ADDRESS}/24");
    for args in [
        vec!["link", "set", "lo", "up"],
        vec![
            "link", "add", INTERFACE, "type", "veth", "peer", "name", PEER,
        ],
        vec!["addr", "add", &address, "dev", INTERFACE],
        vec!["link", "set", INTERFACE, "up"],
        vec!["link", "set", PEER, "up"],
    ] {
        let ok = Command::new("ip")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("ip {}: failed", args.join(" "));
            std::process::exit(1);
        }
    }
    None
}

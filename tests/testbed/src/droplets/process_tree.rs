//! Finds and kills a droplet's processes: its sshd, every descendant of it (found by parent
//! PID, since sshd's session children call `setsid` and leave its process group), and any
//! process that carries the droplet's marker in its environment (services the agent
//! detached, which were reparented away from the tree).
//!
//! Killing a parent first would reparent its children and hide them, so the whole set is
//! frozen with SIGSTOP (a stopped process cannot fork) until a walk finds nothing new, and
//! only then killed with SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use rustix::process::{kill_process, Pid, Signal};

use super::error::TestbedError;

/// The environment variable sshd sets in every session of a droplet (`SetEnv`), whose value
/// is unique to one droplet of one farm.
pub const MARKER_VAR: &str = "VMCTL_TESTBED_DROPLET";

/// Freeze rounds before giving up on finding a stable set. Each round can only add the
/// children forked before the previous round's SIGSTOPs landed, so a few suffice.
const MAX_FREEZE_ROUNDS: usize = 50;

/// One row of the process table: `(pid, parent pid)`.
pub type ProcessRow = (i32, i32);

/// Parses `/proc/<pid>/stat` into `(pid, ppid)`. The command name is in parentheses and may
/// itself contain spaces and parentheses, so the fields are read after its last `)`.
pub fn parse_stat(stat: &str) -> Option<ProcessRow> {
    let (head, tail) = stat.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    let mut fields = tail.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((pid, ppid))
}

/// Every process whose chain of parents reaches one of `roots`, and the roots themselves
/// when they appear in `table`.
pub fn descendants(table: &[ProcessRow], roots: &BTreeSet<i32>) -> BTreeSet<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &(pid, ppid) in table {
        children.entry(ppid).or_default().push(pid);
    }
    let present: BTreeSet<i32> = table.iter().map(|&(pid, _)| pid).collect();
    let mut found: BTreeSet<i32> = roots.intersection(&present).copied().collect();
    let mut stack: Vec<i32> = found.iter().copied().collect();
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or_default() {
            if found.insert(child) {
                stack.push(child);
            }
        }
    }
    found
}

/// True when a NUL-separated environment block holds `MARKER_VAR=marker`.
pub fn environ_has_marker(environ: &[u8], marker: &str) -> bool {
    let wanted = format!("{MARKER_VAR}={marker}");
    environ
        .split(|&b| b == 0)
        .any(|entry| entry == wanted.as_bytes())
}

/// Reads `(pid, ppid)` for every process now alive. Processes that exit mid-walk are skipped.
pub fn process_table() -> Vec<ProcessRow> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect()
}

/// The PIDs in `table` whose environment carries `marker`.
fn marked(table: &[ProcessRow], marker: &str) -> BTreeSet<i32> {
    table
        .iter()
        .map(|&(pid, _)| pid)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|environ| environ_has_marker(&environ, marker))
        })
        .collect()
}

/// `root` and all its descendants now alive, plus the processes marked with `marker` and
/// their descendants.
pub fn tree(root: Option<i32>, marker: Option<&str>) -> BTreeSet<i32> {
    let table = process_table();
    let mut roots: BTreeSet<i32> = root.into_iter().collect();
    if let Some(marker) = marker {
        roots.extend(marked(&table, marker));
    }
    descendants(&table, &roots)
}

/// Freezes, then SIGKILLs, `root`'s tree (see the module docs) and returns the PIDs it
/// signalled. The caller still has to reap `root` if it is its child.
pub fn kill_tree(root: i32, marker: Option<&str>) -> Result<BTreeSet<i32>, TestbedError> {
    let mut frozen = BTreeSet::new();
    for _ in 0..MAX_FREEZE_ROUNDS {
        let fresh: Vec<i32> = tree(Some(root), marker)
            .difference(&frozen)
            .copied()
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            signal(pid, Signal::Stop, "SIGSTOP")?;
            frozen.insert(pid);
        }
    }
    for &pid in &frozen {
        signal(pid, Signal::Kill, "SIGKILL")?;
    }
    Ok(frozen)
}

/// Sends `sig`, treating an already-gone process as success.
fn signal(pid: i32, sig: Signal, name: &'static str) -> Result<(), TestbedError> {
    let Some(target) = Pid::from_raw(pid) else {
        return Ok(());
    };
    match kill_process(target, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(errno) => Err(TestbedError::Kill {
            pid,
            signal: name,
            source: errno.into(),
        }),
    }
}

/// True while `/proc/<pid>` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, tail)| tail.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_stat_handles_parentheses_and_spaces_in_command_name() {
        let stat = "4242 (sshd: root@notty (x)) S 17 4242 4242 0 -1 4194560 1 0";
        assert_eq!(parse_stat(stat), Some((4242, 17)));
        assert_eq!(parse_stat("1 (init) S 0 1 1"), Some((1, 0)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_follow_ppid_across_generations_only_from_roots() {
        let table = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 11),
            (13, 12),
            (20, 1),
            (21, 20),
        ];
        assert_eq!(
            descendants(&table, &BTreeSet::from([10])),
            BTreeSet::from([10, 11, 12, 13])
        );
        assert_eq!(
            descendants(&table, &BTreeSet::from([11, 20])),
            BTreeSet::from([11, 12, 13, 20, 21])
        );
    }

    #[test]
    fn descendants_of_a_gone_root_are_empty() {
        let table = [(1, 0), (10, 1)];
        assert!(descendants(&table, &BTreeSet::from([99])).is_empty());
    }

    #[test]
    fn environ_marker_must_match_whole_entry() {
        let environ = b"PATH=/bin\0VMCTL_TESTBED_DROPLET=ab/web-1\0HOME=/root\0";
        assert!(environ_has_marker(environ, "ab/web-1"));
        assert!(!environ_has_marker(environ, "ab/web-10"));
        assert!(!environ_has_marker(environ, "ab/web"));
        assert!(!environ_has_marker(b"", "ab/web-1"));
    }
}

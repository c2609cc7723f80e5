//! Table-driven tests of the cluster-file loader: one row per kind of error, asserting file,
//! line, column, field and a piece of the message.

use std::time::Duration;

use vmctl_protocol::pool::PoolRole;

use super::*;

const FILE: &str = "conf/cluster.toml";

/// Lines 1-3.
const HEAD: &str = "name = \"vmst\"\n[ssh]\nprivate_key = \"/k\"\n";
/// Lines 4-5.
const WEB: &str = "[pools.web]\nrole = \"web\"\n";

fn node(name: &str, pool: &str, extra: &str) -> String {
    format!("[[nodes]]\nname = \"{name}\"\npool = \"{pool}\"\naddress = \"10.0.0.1\"\n{extra}")
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse_cluster(FILE, text) {
        Ok(doc) => panic!("expected errors, got {doc:?}\n--- text ---\n{text}"),
        Err(e) => e.errors().to_vec(),
    }
}

/// (case, text, line, column, field, message fragment)
type Row = (
    &'static str,
    String,
    usize,
    usize,
    &'static str,
    &'static str,
);

fn rows() -> Vec<Row> {
    let hw = format!("{HEAD}{WEB}");
    vec![
        // --- syntax, unknown keys, types: toml's own errors ---
        ("syntax", "name = \"vmst\n".into(), 1, 13, "name", "invalid basic string"),
        ("syntax in table", format!("{HEAD}[pools.web]\nrole = = \"web\"\n"), 5, 8, "pools.web.role", "string"),
        ("unknown top-level key", "name = \"vmst\"\ncolour = 1\n[ssh]\nprivate_key = \"/k\"\n".into(), 2, 1, "colour", "unknown field `colour`"),
        ("unknown ssh key", format!("{HEAD}port = 2\n"), 4, 1, "ssh.port", "unknown field `port`"),
        ("unknown pool key", format!("{hw}size = 3\n"), 6, 1, "pools.web.size", "unknown field `size`"),
        ("unknown node key", format!("{hw}{}", node("a", "web", "foo = 1\n")), 10, 1, "nodes[0].foo", "unknown field `foo`"),
        ("port is a string", format!("{hw}{}", node("a", "web", "port = \"22\"\n")), 10, 8, "nodes[0].port", "invalid type"),
        ("queues not an array", format!("{HEAD}[pools.s]\nrole = \"sidekiq\"\nqueues = \"push\"\n"), 6, 10, "pools.s.queues", "invalid type"),
        // --- cluster ---
        ("missing name", "[ssh]\nprivate_key = \"/k\"\n".into(), 1, 1, "name", "is required"),
        ("bad name", "name = \"Vmst\"\n[ssh]\nprivate_key = \"/k\"\n".into(), 1, 8, "name", "not a valid name"),
        ("duration without unit", "name = \"vmst\"\nprobe_interval = \"5\"\n[ssh]\nprivate_key = \"/k\"\n".into(), 2, 18, "probe_interval", "invalid duration"),
        ("zero duration", "name = \"vmst\"\ncall_timeout = \"0s\"\n[ssh]\nprivate_key = \"/k\"\n".into(), 2, 16, "call_timeout", "greater than zero"),
        ("bad connect_timeout unit", "name = \"vmst\"\nconnect_timeout = \"3d\"\n[ssh]\nprivate_key = \"/k\"\n".into(), 2, 19, "connect_timeout", "unit must be"),
        // --- managed pools and healing ---
        ("negative droplet count", format!("{HEAD}[pools.web]\nrole = \"web\"\n[pools.web.droplets]\ncount = -1\nregion = \"nyc3\"\nsize = \"s-1\"\nimage = \"base\"\n"), 7, 9, "pools.web.droplets.count", "between 0 and 1000"),
        ("bad droplet region", format!("{HEAD}[pools.web]\nrole = \"web\"\n[pools.web.droplets]\ncount = 1\nregion = \"ny c3\"\nsize = \"s-1\"\nimage = \"base\"\n"), 8, 10, "pools.web.droplets.region", "not a DigitalOcean slug"),
        ("unknown droplet key", format!("{HEAD}[pools.web]\nrole = \"web\"\n[pools.web.droplets]\ncolour = 1\n"), 7, 1, "pools.web.droplets.colour", "unknown field"),
        ("healing percent out of range", format!("{HEAD}[healing]\nmax_unhealthy_pool_percent = 150\n"), 5, 30, "healing.max_unhealthy_pool_percent", "between 0 and 100"),
        // --- ssh ---
        ("missing [ssh]", "name = \"vmst\"\n".into(), 1, 1, "ssh", "[ssh] table is required"),
        ("missing private_key", "name = \"vmst\"\n[ssh]\nuser = \"root\"\n".into(), 2, 1, "ssh.private_key", "is required"),
        ("relative private_key", "name = \"vmst\"\n[ssh]\nprivate_key = \"id\"\n".into(), 3, 15, "ssh.private_key", "absolute path"),
        ("bad user", format!("{HEAD}user = \"Root\"\n"), 4, 8, "ssh.user", "not a valid user name"),
        // --- pools ---
        ("bad pool name", format!("{HEAD}[pools.Web]\nrole = \"web\"\n"), 4, 8, "pools.Web", "not a valid name"),
        ("missing role", format!("{HEAD}[pools.web]\n"), 4, 8, "pools.web.role", "is required"),
        ("unknown role", format!("{HEAD}[pools.web]\nrole = \"db\"\n"), 5, 8, "pools.web.role", "unknown role \"db\""),
        ("queues on a web pool", format!("{hw}queues = [\"default\"]\n"), 6, 10, "pools.web.queues", "only allowed on sidekiq and exec"),
        ("unknown queue", format!("{HEAD}[pools.s]\nrole = \"sidekiq\"\nqueues = [\"default\", \"mail\"]\n"), 6, 22, "pools.s.queues[1]", "unknown queue \"mail\""),
        ("queue listed twice", format!("{HEAD}[pools.s]\nrole = \"sidekiq\"\nqueues = [\"push\", \"push\"]\n"), 6, 19, "pools.s.queues[1]", "already listed"),
        (
            "scheduler in two pools",
            format!(
                "{HEAD}[pools.exec]\nrole = \"exec\"\nqueues = [\"scheduler\"]\n[pools.s]\nrole = \"sidekiq\"\nqueues = [\"push\", \"scheduler\"]\n{}",
                node("x", "exec", "")
            ),
            9, 19, "pools.s.queues[1]", "already run by pool \"exec\" (line 6)",
        ),
        (
            "scheduler pool with two nodes",
            format!(
                "{HEAD}[pools.exec]\nrole = \"exec\"\nqueues = [\"scheduler\"]\n{}{}",
                node("x", "exec", ""),
                node("y", "exec", "")
            ),
            6, 11, "pools.exec.queues[0]", "exactly 1 node; pool \"exec\" has 2 (x, y)",
        ),
        (
            "scheduler pool with no node",
            format!("{HEAD}[pools.exec]\nrole = \"exec\"\nqueues = [\"scheduler\"]\n"),
            6, 11, "pools.exec.queues[0]", "has 0",
        ),
        // --- nodes ---
        ("missing node name", format!("{hw}[[nodes]]\npool = \"web\"\naddress = \"10.0.0.1\"\n"), 6, 1, "nodes[0].name", "is required"),
        ("missing address", format!("{hw}[[nodes]]\nname = \"a\"\npool = \"web\"\n"), 6, 1, "nodes[0].address", "is required"),
        ("bad node name", format!("{hw}{}", node("web_1", "web", "")), 7, 8, "nodes[0].name", "not a valid name"),
        ("duplicate node name", format!("{hw}{}{}", node("a", "web", ""), node("a", "web", "")), 11, 8, "nodes[1].name", "duplicate node name \"a\" (first defined on line 7)"),
        ("unknown pool", format!("{hw}{}", node("a", "db", "")), 8, 8, "nodes[0].pool", "unknown pool \"db\"; defined pools: web"),
        ("no pools at all", format!("{HEAD}{}", node("a", "web", "")), 6, 8, "nodes[0].pool", "no pools are defined"),
        ("bad address", format!("{hw}[[nodes]]\nname = \"a\"\npool = \"web\"\naddress = \"10.0.0.999\"\n"), 9, 11, "nodes[0].address", "neither an IP address nor a DNS hostname"),
        ("address with port", format!("{hw}[[nodes]]\nname = \"a\"\npool = \"web\"\naddress = \"10.0.0.1:22\"\n"), 9, 11, "nodes[0].address", "includes a port"),
        ("port 0", format!("{hw}{}", node("a", "web", "port = 0\n")), 10, 8, "nodes[0].port", "between 1 and 65535, got 0"),
        ("port too large", format!("{hw}{}", node("a", "web", "port = 70000\n")), 10, 8, "nodes[0].port", "got 70000"),
        ("relative root", format!("{hw}{}", node("a", "web", "root = \"srv\"\n")), 10, 8, "nodes[0].root", "absolute path"),
        ("root with ..", format!("{hw}{}", node("a", "web", "root = \"/srv/../etc\"\n")), 10, 8, "nodes[0].root", "'..'"),
        ("root with a shell metacharacter", format!("{hw}{}", node("a", "web", "root = \"/srv/$(x)\"\n")), 10, 8, "nodes[0].root", "'$'"),
        ("root with whitespace", format!("{hw}{}", node("a", "web", "root = \"/srv/a b\"\n")), 10, 8, "nodes[0].root", "' '"),
    ]
}

#[test]
fn every_kind_of_error_is_located() {
    for (case, text, line, column, field, fragment) in rows() {
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{case}: expected one error, got {errs:#?}");
        let e = &errs[0];
        assert_eq!(e.file, FILE, "{case}");
        assert_eq!((e.line, e.column), (line, column), "{case}: {e}");
        assert_eq!(e.field, field, "{case}: {e}");
        assert!(
            e.message.contains(fragment),
            "{case}: {e:?} lacks {fragment:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{FILE}:{line}:{column}: {field}: ")),
            "{case}: {e}"
        );
    }
}

#[test]
fn all_semantic_errors_are_collected_in_file_order() {
    let text = format!(
        "name = \"BAD\"\n[ssh]\nprivate_key = \"/k\"\n{WEB}{}{}",
        node("a", "nope", "port = 0\n"),
        node("a", "web", "root = \"x\"\n"),
    );
    let got: Vec<(usize, String)> = errors(&text)
        .into_iter()
        .map(|e| (e.line, e.field))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "name".to_owned()),
            (8, "nodes[0].pool".to_owned()),
            (10, "nodes[0].port".to_owned()),
            (12, "nodes[1].name".to_owned()),
            (15, "nodes[1].root".to_owned()),
        ]
    );
}

const EXAMPLE: &str = r#"name = "vmst"                 # cluster name
probe_interval = "5s"
call_timeout = "3s"

[ssh]
private_key = "/etc/vmctl/id_ed25519"

[pools.web]
role = "web"

[pools.sidekiq]
role = "sidekiq"
queues = ["default", "ingress", "push", "pull", "mailers"]

[pools.exec]
role = "exec"
queues = ["scheduler"]

[[nodes]]
name = "web-1"
pool = "web"
address = "10.0.0.5"
port = 2222
root = "/srv/web-1"

[[nodes]]
name = "sidekiq-1"
pool = "sidekiq"
address = "sidekiq-1.internal"

[[nodes]]
name = "exec-1"
pool = "exec"
address = "fd00::7"
"#;

#[test]
fn a_good_file_becomes_a_document_with_defaults_in_file_order() {
    let doc = parse_cluster(FILE, EXAMPLE).unwrap();
    assert_eq!(doc.name, "vmst");
    assert_eq!(doc.cluster.ssh.user, "root");
    assert_eq!(doc.cluster.ssh.private_key, "/etc/vmctl/id_ed25519");
    assert_eq!(doc.cluster.probe_interval, Duration::from_secs(5));
    assert_eq!(doc.cluster.call_timeout, Duration::from_secs(3));
    assert_eq!(
        doc.cluster.connect_timeout,
        vmctl_protocol::cluster::DEFAULT_CONNECT_TIMEOUT
    );
    let pools: Vec<(&str, PoolRole)> = doc
        .pools
        .iter()
        .map(|p| (p.name.as_str(), p.spec.role))
        .collect();
    assert_eq!(
        pools,
        vec![
            ("web", PoolRole::Web),
            ("sidekiq", PoolRole::Sidekiq),
            ("exec", PoolRole::Exec)
        ]
    );
    assert_eq!(doc.pools[1].spec.queues.len(), 5);
    assert_eq!(doc.nodes.len(), 3);
    assert_eq!(doc.nodes[0].spec.port, 2222);
    assert_eq!(doc.nodes[0].spec.root, "/srv/web-1");
    assert_eq!(doc.nodes[1].spec.port, 22);
    assert_eq!(doc.nodes[1].spec.root, "/");
    assert_eq!(doc.nodes[2].spec.address, "fd00::7");
}

#[test]
fn dotted_and_inline_tables_are_accepted() {
    let text = "name = \"vmst\"\nssh.private_key = \"/k\"\npools = { web = { role = \"web\" } }\nnodes = [{ name = \"a\", pool = \"web\", address = \"::1\" }]\n";
    let doc = parse_cluster(FILE, text).unwrap();
    assert_eq!(doc.pools[0].name, "web");
    assert_eq!(doc.nodes[0].spec.address, "::1");
    let bad = text.replace("\"::1\"", "\"::1\", port = 0");
    let e = &errors(&bad)[0];
    assert_eq!(
        (e.line, e.column, e.field.as_str()),
        (4, 62, "nodes[0].port")
    );
}

#[test]
fn an_unreadable_file_is_a_read_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let err = load_cluster_file(&path).unwrap_err();
    assert!(matches!(err, ConfigErrors::Read { .. }));
    assert!(err.to_string().contains("missing.toml"), "{err}");

    std::fs::write(&path, EXAMPLE).unwrap();
    assert_eq!(load_cluster_file(&path).unwrap().nodes.len(), 3);
}

#[test]
fn a_managed_pool_parses_with_defaults() {
    let text = format!(
        "{HEAD}[healing]\nmax_replacements_per_hour = 2\n[pools.web]\nrole = \"web\"\n[pools.web.droplets]\ncount = 3\nregion = \"nyc3\"\nsize = \"s-2vcpu-4gb\"\nimage = \"vmst-web-base\"\nload_balancer = \"lb-1\"\nroot = \"/srv/{{name}}/root\"\n"
    );
    let doc = parse_cluster(FILE, &text).expect("valid");
    let t = doc.pools[0].spec.droplets.as_ref().expect("managed");
    assert_eq!(
        (t.count, t.region.as_str(), t.image.as_str()),
        (3, "nyc3", "vmst-web-base")
    );
    assert_eq!(t.load_balancer.as_deref(), Some("lb-1"));
    assert_eq!(t.failure_grace, Duration::from_secs(60));
    assert_eq!(t.snapshot.keep, 3);
    assert_eq!(t.root_for("web-a"), "/srv/web-a/root");
    assert_eq!(doc.cluster.healing.max_replacements_per_hour, 2);
    assert_eq!(doc.cluster.healing.max_unhealthy_pool_percent, 50);
}

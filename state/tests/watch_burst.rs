//! Regression: a burst of writes from several threads must reach a watcher, every name at least
//! once (the controller's triggers depend on it).

use std::{collections::BTreeSet, time::Duration};

use futures::StreamExt;
use vmctl_protocol::node::NodeSpec;
use vmctl_state::{Precondition, Store};

fn spec(i: usize) -> NodeSpec {
    NodeSpec {
        pool: "web".into(),
        address: format!("127.0.0.{i}"),
        port: 22,
        root: "/".into(),
        droplet_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_created_object_reaches_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut watch = store.watch::<NodeSpec>();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let name = format!("n-{t}-{i}");
                    store.put_spec(&name, spec(i), Precondition::None).unwrap();
                    let mut st = store.get::<NodeSpec>(&name).unwrap().unwrap().status;
                    st.reachable = true;
                    store
                        .put_status::<NodeSpec>(&name, st, Precondition::None)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.len() < 100 {
        match tokio::time::timeout_at(deadline, watch.next()).await {
            Ok(Some(e)) => {
                seen.insert(e.name);
            }
            _ => break,
        }
    }
    assert_eq!(
        seen.len(),
        100,
        "missing: {:?}",
        (0..4)
            .flat_map(|t| (0..25).map(move |i| format!("n-{t}-{i}")))
            .filter(|n| !seen.contains(n))
            .take(5)
            .collect::<Vec<_>>()
    );
}

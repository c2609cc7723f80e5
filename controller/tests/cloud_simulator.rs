//! The DigitalOcean client end to end against the testbed's simulator
//! (`vmctl_testbed::cloud`): create → active with an IP → snapshot → find it by name →
//! delete, with real droplets (sshd on loopback) behind the API.

use std::net::SocketAddr;
use std::time::Duration;

use vmctl_controller::cloud::{
    CloudConfig, CloudToken, CreateDroplet, DoClient, DropletAction, DropletStatus, ImageRef,
};
use vmctl_controller::retry::{Backoff, Deadline};
use vmctl_testbed::cloud::{CloudConfig as SimConfig, Simulator};
use vmctl_testbed::generate_client_key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_drives_a_droplet_and_its_snapshot_through_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let (_private, public) =
        tokio::task::block_in_place(|| generate_client_key(&dir.path().join("client"))).unwrap();
    let mut sim_config = SimConfig::new(dir.path().join("cloud"), &public, "sim-token");
    sim_config.create_duration = Duration::from_millis(200);
    sim_config.action_duration = Duration::from_millis(200);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = Simulator::start(sim_config, listen).await.unwrap();

    let mut config = CloudConfig::new(CloudToken::new(sim.token(), "simulator").unwrap());
    config.base_url = sim.base_url();
    config.retry =
        Backoff::try_new(Duration::from_millis(20), Duration::from_millis(500), 0.2).unwrap();
    let client = DoClient::new(config).unwrap();

    let outcome = async move {
        client.account().await.unwrap();
        let request = CreateDroplet {
            name: "web-e2e-1".into(),
            region: "nyc3".into(),
            size: "s-1vcpu-1gb".into(),
            image: ImageRef::Slug("debian-12-x64".into()),
            vpc_uuid: None,
            tags: vec!["vmctl-e2e".into()],
            ssh_keys: vec![],
            user_data: None,
        };
        let created = client.create_droplet(&request).await.unwrap();
        // Creating again by the same name finds the first one.
        assert_eq!(
            client.create_droplet(&request).await.unwrap().id,
            created.id
        );

        let deadline = Deadline::after("droplet web-e2e-1 to turn active", Duration::from_secs(30));
        let active = loop {
            let d = client
                .get_droplet(created.id)
                .await
                .unwrap()
                .expect("droplet exists");
            if d.status == DropletStatus::Active && d.public_ipv4.is_some() {
                break d;
            }
            deadline.sleep(Duration::from_millis(100)).await.unwrap();
        };
        assert!(
            active.public_ipv4.as_deref().unwrap().starts_with("127."),
            "{active:?}"
        );
        let listed = client.list_droplets_by_tag("vmctl-e2e").await.unwrap();
        assert_eq!(
            listed.iter().map(|d| d.id).collect::<Vec<_>>(),
            [created.id]
        );

        let action = client
            .droplet_action(
                created.id,
                DropletAction::Snapshot {
                    name: "web-e2e-snap".into(),
                },
            )
            .await
            .unwrap();
        let deadline = Deadline::after("snapshot of web-e2e-1", Duration::from_secs(30));
        client
            .wait_action(action.id, &deadline, Duration::from_millis(50))
            .await
            .unwrap();
        let snap = client
            .find_snapshot_by_name("web-e2e-snap")
            .await
            .unwrap()
            .expect("snapshot exists");
        assert_eq!(snap.resource_id, Some(created.id.to_string()));

        client.delete_droplet(created.id).await.unwrap();
        assert_eq!(client.get_droplet(created.id).await.unwrap(), None);
        client.delete_snapshot(&snap.id).await.unwrap();
        assert_eq!(
            client.find_snapshot_by_name("web-e2e-snap").await.unwrap(),
            None
        );
    };
    // Tear the simulator (and its sshd processes) down even when an assertion fails.
    let result = tokio::spawn(outcome).await;
    sim.shutdown().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

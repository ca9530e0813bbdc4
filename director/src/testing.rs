//! Test support (feature `testing`): a director started through its library entry point on
//! 127.0.0.1:0 with the in-memory IPVS table and host, as the loopback tests of the director and
//! of the agent use it. Panics are the failure reports here.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::DirectorConfig;
use crate::daemon::{self, RunError, Startup};
use crate::host::{HostSetup, MemoryAddresses, SysctlTree};
use lb_ipvs::{DestinationEntry, IpvsBackend, MemoryIpvs, ServiceKey};
use lb_proto as pb;
use lb_shared::domain::Protocol;
use lb_shared::reload::{self, ReloadHandle, ReloadOutcome};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub const VIP: &str = "10.0.0.100";

/// A director config for loopback tests: one ssh service on [`VIP`], no health check (tests of
/// checks add a service of their own on 127.0.0.1).
pub fn config_text(state_dir: &Path, lease_ttl: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
state_dir = "{0}"
admin_socket = "{0}/admin.sock"
lease_ttl = "{lease_ttl}"
resync_interval = "200ms"

[timeouts]
tcp = 259200

[[service]]
name = "llc-ssh"
vip = "{VIP}"
port = 22
protocol = "tcp"
scheduler = "rr"
forward = "dr"
interface = "eth0"

# The realservers of these tests (10.0.0.x) are not on this host: nothing may probe them.
[service.check]
type = "none"
"#,
        state_dir.display(),
    )
}

pub fn ssh_key() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: VIP.parse().unwrap(),
        port: 22,
    }
}

pub struct TestDirector {
    pub addr: SocketAddr,
    /// Where `GET /metrics` answers (on 127.0.0.1, whatever the config's `metrics_listen`);
    /// None when the config says "".
    pub metrics_addr: Option<SocketAddr>,
    pub ipvs: Arc<MemoryIpvs>,
    /// The interfaces (eth0) and the VIPs the director put on them.
    pub addresses: Arc<MemoryAddresses>,
    pub state_dir: PathBuf,
    /// The config file the director reads on reload: write it, then [`TestDirector::reload`].
    pub config_path: PathBuf,
    reloads: ReloadHandle,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
}

impl TestDirector {
    /// Starts a director over `ipvs` (a table that may already hold entries, as after a
    /// director restart) with its state in `state_dir`.
    pub async fn start(ipvs: Arc<MemoryIpvs>, state_dir: &Path, lease_ttl: &str) -> TestDirector {
        Self::start_with(ipvs, state_dir, &config_text(state_dir, lease_ttl)).await
    }

    /// Starts a director from config text (its `listen` is ignored: 127.0.0.1:0 is used).
    pub async fn start_with(ipvs: Arc<MemoryIpvs>, state_dir: &Path, text: &str) -> TestDirector {
        Self::start_on(ipvs, state_dir, text, 0).await
    }

    /// Like [`TestDirector::start_with`] on a given loopback port (a restart on the same port).
    pub async fn start_on(
        ipvs: Arc<MemoryIpvs>,
        state_dir: &Path,
        text: &str,
        port: u16,
    ) -> TestDirector {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Self::start_listening(ipvs, state_dir, text, listener).await
    }

    /// Like [`TestDirector::start_with`] on a listener bound already (directors that name
    /// each other as peers need both ports before either starts).
    pub async fn start_listening(
        ipvs: Arc<MemoryIpvs>,
        state_dir: &Path,
        text: &str,
        listener: tokio::net::TcpListener,
    ) -> TestDirector {
        let config_path = state_dir.join("director.toml");
        std::fs::create_dir_all(state_dir).unwrap();
        std::fs::write(&config_path, text).unwrap();
        let config = DirectorConfig::load(&config_path).unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = match config.metrics_listen {
            Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        let metrics_addr = metrics.as_ref().map(|l| l.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let sysctl_root = fake_proc_sys(state_dir);
        let addresses = Arc::new(MemoryAddresses::with_interfaces(&["eth0"]));
        let host = HostSetup::new(addresses.clone(), SysctlTree::new(sysctl_root));
        let (reloads, reload_requests) = reload::channel();
        let startup = Startup {
            config: Arc::new(config),
            config_path: config_path.clone(),
            listener,
            metrics,
        };
        let task = tokio::spawn(daemon::run(
            startup,
            ipvs.clone(),
            host,
            shutdown.clone(),
            reload_requests,
        ));
        TestDirector {
            addr,
            metrics_addr,
            ipvs,
            addresses,
            state_dir: state_dir.to_owned(),
            config_path,
            reloads,
            shutdown,
            task,
        }
    }

    /// Writes `text` as the director's config file and reloads it, as `systemctl reload` does.
    pub async fn reload_with(&self, text: &str) -> ReloadOutcome {
        std::fs::write(&self.config_path, text).unwrap();
        self.reloads.reload().await
    }

    /// One scrape of `GET /metrics`, parsed.
    pub async fn scrape(&self) -> lb_shared::metrics::Samples {
        let addr = self.metrics_addr.expect("this director serves no metrics");
        let (status, body) = lb_shared::metrics::scrape(addr, "GET", "/metrics")
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        lb_shared::metrics::Samples::parse(&body).unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        for _ in 0..100 {
            if let Ok(channel) = Channel::from_shared(self.url()).unwrap().connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("director at {} never answered", self.url());
    }

    pub async fn registry(&self) -> pb::registry_client::RegistryClient<Channel> {
        pb::registry_client::RegistryClient::new(self.channel().await)
    }

    pub async fn admin(&self) -> pb::admin_client::AdminClient<Channel> {
        pb::admin_client::AdminClient::new(self.channel().await)
    }

    /// The director's status; it answers only once its servers are up (after the first pass).
    pub async fn status(&self) -> pb::StatusResponse {
        self.admin()
            .await
            .status(pb::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// Stops the director gracefully and returns how it ended.
    pub async fn stop(self) -> Result<(), RunError> {
        self.shutdown.cancel();
        self.task.await.unwrap()
    }

    /// The destinations of the SSH service as the kernel (here: the fake) holds them.
    pub async fn table(&self) -> Vec<DestinationEntry> {
        self.ipvs.destinations(&ssh_key()).await.unwrap()
    }

    /// Weight of the destination at `addr`, None when absent.
    pub async fn weight(&self, addr: &str) -> Option<u32> {
        let addr: std::net::IpAddr = addr.parse().unwrap();
        self.table()
            .await
            .into_iter()
            .find(|d| d.destination.addr == addr)
            .map(|d| d.destination.weight)
    }

    /// Sets ActiveConn and InActConn of the destination at `addr`, as traffic would.
    pub fn connections(&self, addr: &str, active: u32, inactive: u32) {
        let key = lb_ipvs::DestinationKey {
            addr: addr.parse().unwrap(),
            port: 22,
        };
        self.ipvs
            .set_connections(&ssh_key(), &key, active, inactive)
            .unwrap();
    }

    /// Polls until `check` holds on the table, for up to 5 s.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&[DestinationEntry]) -> bool) {
        for _ in 0..250 {
            if check(&self.table().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting for: {what}; table is {:#?}",
            self.table().await
        );
    }
}

/// A /proc/sys with the values a fresh host has before the seed's script ran.
pub fn fake_proc_sys(dir: &Path) -> PathBuf {
    let root = dir.join("proc-sys");
    let ipv4 = root.join("net/ipv4");
    for (file, value) in [
        ("ip_forward", "1"),
        ("conf/all/send_redirects", "0"),
        ("conf/default/send_redirects", "0"),
        ("conf/eth0/send_redirects", "0"),
        ("conf/lo/send_redirects", "0"),
        ("vs/sloppy_tcp", "0"),
    ] {
        let path = ipv4.join(file);
        if !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{value}\n")).unwrap();
        }
    }
    root
}

pub fn register_request(name: &str, address: &str, weight: u32) -> pb::RegisterRequest {
    pb::RegisterRequest {
        name: name.into(),
        address: address.into(),
        services: vec![pb::ServiceWeight {
            service: "llc-ssh".into(),
            weight,
        }],
    }
}

/// Registers and confirms like an agent whose rule is in place; returns the lease id.
pub async fn join(
    registry: &mut pb::registry_client::RegistryClient<Channel>,
    name: &str,
    address: &str,
    weight: u32,
) -> String {
    join_with(registry, register_request(name, address, weight)).await
}

/// Registers `request` and confirms the lease; returns its id.
pub async fn join_with(
    registry: &mut pb::registry_client::RegistryClient<Channel>,
    request: pb::RegisterRequest,
) -> String {
    let lease = registry.register(request).await.unwrap().into_inner();
    registry
        .confirm(pb::ConfirmRequest {
            lease_id: lease.lease_id.clone(),
        })
        .await
        .unwrap();
    lease.lease_id
}

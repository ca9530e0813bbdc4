//! The VIP on the director's interface: the seed's `ifconfig eth0:1 $VIP1 netmask
//! 255.255.255.255`, done through rtnetlink.
//!
//! A VIP here is always a host address (/32, or /128 for IPv6). The same IP with another prefix
//! (an operator's /24, say) is a different kernel address: it is neither counted nor touched.

use std::future::Future;
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressHeaderFlags, AddressMessage};

use super::validate_interface;

/// The host prefix length of an address: 32 for IPv4, 128 for IPv6.
pub fn host_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel has no interface of that name (ENODEV).
    #[error(
        "interface {interface:?} does not exist: create it, or set the service's `interface` \
         to one that `ip link` lists"
    )]
    NoSuchInterface { interface: String },
    #[error("interface name {interface:?} is not valid: {reason}")]
    InvalidInterface { interface: String, reason: String },
    /// The kernel refused a request; `op` is the `ip` command it matches.
    #[error("{op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// The director's VIPs on its interfaces. Implemented over rtnetlink for the daemon
/// ([`RtnetlinkAddresses`]) and in memory for tests (`MemoryAddresses`, feature `testing`).
pub trait AddressBackend: Send + Sync + 'static {
    /// `ip addr replace VIP/32 dev IFACE` (`/128` for IPv6): true when the VIP was not there.
    fn ensure_vip(
        &self,
        interface: &str,
        vip: IpAddr,
    ) -> impl Future<Output = Result<bool, AddressError>> + Send;

    /// `ip addr del VIP/32 dev IFACE`: true when the VIP was there and is now gone.
    fn remove_vip(
        &self,
        interface: &str,
        vip: IpAddr,
    ) -> impl Future<Output = Result<bool, AddressError>> + Send;

    /// `ip -o addr show dev IFACE to VIP/32`: whether the VIP is on the interface.
    fn has_vip(
        &self,
        interface: &str,
        vip: IpAddr,
    ) -> impl Future<Output = Result<bool, AddressError>> + Send;
}

/// [`AddressBackend`] over a route netlink socket.
///
/// The socket belongs to the network namespace of the thread that called
/// [`connect`](Self::connect), whatever thread later uses it.
#[derive(Clone)]
pub struct RtnetlinkAddresses {
    handle: rtnetlink::Handle,
}

impl RtnetlinkAddresses {
    /// Opens the socket and spawns its connection task on the current tokio runtime (panics
    /// outside one, like `tokio::spawn`).
    pub fn connect() -> Result<Self, AddressError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(AddressError::Socket)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    async fn interface_index(&self, interface: &str) -> Result<u32, AddressError> {
        check_interface(interface)?;
        let found = self
            .handle
            .link()
            .get()
            .match_name(interface)
            .execute()
            .try_next()
            .await;
        match found {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(no_such_interface(interface)),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => {
                Err(no_such_interface(interface))
            }
            Err(source) => Err(AddressError::Netlink {
                op: format!("ip link show dev {interface}"),
                source,
            }),
        }
    }

    /// The kernel's host-prefix address `vip` on interface `index`, if present.
    async fn find(
        &self,
        interface: &str,
        index: u32,
        vip: IpAddr,
    ) -> Result<Option<AddressMessage>, AddressError> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(vip)
            .set_prefix_length_filter(host_prefix(vip))
            .execute()
            .try_next()
            .await
            .map_err(|source| AddressError::Netlink {
                op: format!("ip addr show dev {interface} to {vip}/{}", host_prefix(vip)),
                source,
            })
    }
}

/// Shared backends (a test keeps a handle to look at the addresses the director set).
impl<A: AddressBackend> AddressBackend for std::sync::Arc<A> {
    async fn ensure_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        self.as_ref().ensure_vip(interface, vip).await
    }

    async fn remove_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        self.as_ref().remove_vip(interface, vip).await
    }

    async fn has_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        self.as_ref().has_vip(interface, vip).await
    }
}

impl AddressBackend for RtnetlinkAddresses {
    async fn ensure_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        let index = self.interface_index(interface).await?;
        if self.find(interface, index, vip).await?.is_some() {
            return Ok(false);
        }
        let prefix = host_prefix(vip);
        let mut request = self.handle.address().add(index, vip, prefix).replace();
        if vip.is_ipv6() {
            // A VIP must answer at once and may legitimately live on a standby director too:
            // duplicate address detection would hold it "tentative" or mark it failed.
            request.message_mut().header.flags = AddressHeaderFlags::Nodad;
        }
        // `replace` keeps this idempotent if someone adds the VIP between the lookup and here.
        request
            .execute()
            .await
            .map_err(|source| AddressError::Netlink {
                op: format!("ip addr replace {vip}/{prefix} dev {interface}"),
                source,
            })?;
        Ok(true)
    }

    async fn remove_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        let index = self.interface_index(interface).await?;
        let Some(address) = self.find(interface, index, vip).await? else {
            return Ok(false);
        };
        match self.handle.address().del(address).execute().await {
            Ok(()) => Ok(true),
            // Someone removed it between the lookup and here: the outcome we wanted.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EADDRNOTAVAIL => {
                Ok(false)
            }
            Err(source) => Err(AddressError::Netlink {
                op: format!("ip addr del {vip}/{} dev {interface}", host_prefix(vip)),
                source,
            }),
        }
    }

    async fn has_vip(&self, interface: &str, vip: IpAddr) -> Result<bool, AddressError> {
        let index = self.interface_index(interface).await?;
        Ok(self.find(interface, index, vip).await?.is_some())
    }
}

/// Refuses a name the kernel could never have, before asking it.
pub(super) fn check_interface(interface: &str) -> Result<(), AddressError> {
    validate_interface(interface).map_err(|reason| AddressError::InvalidInterface {
        interface: interface.to_owned(),
        reason,
    })
}

pub(super) fn no_such_interface(interface: &str) -> AddressError {
    AddressError::NoSuchInterface {
        interface: interface.to_owned(),
    }
}

//! A receive buffer overrun against a real kernel socket: no IPVS needed, the generic netlink
//! controller answers every request for a command it lacks with an error ack, and a tiny
//! receive buffer makes it drop most of them.

use netlink_packet_generic::constants::GENL_ID_CTRL;
use netlink_packet_generic::GenlHeader;

use super::*;
use crate::netlink::exchange::{read_acks, Outcome};
use crate::netlink::message::IpvsCmd;
use crate::netlink::transport::Transport;

const UNKNOWN_CMD: u8 = 200;

/// Queues `count` requests the controller refuses with EOPNOTSUPP; returns the first sequence
/// number.
fn queue_refused(transport: &mut Transport, count: usize) -> u32 {
    let mut first = None;
    for _ in 0..count {
        let header = GenlHeader {
            cmd: UNKNOWN_CMD,
            version: 1,
        };
        let message = IpvsMessage::new(IpvsCmd::Other(UNKNOWN_CMD), Vec::new());
        let seq = transport.queue(ACKED, GenlMessage::new(header, message, GENL_ID_CTRL));
        first.get_or_insert(seq);
    }
    first.unwrap()
}

#[tokio::test]
async fn an_overrun_loses_some_acks_and_the_socket_goes_on() {
    let mut transport = Transport::open_with_receive_buffer(0).unwrap();
    let window = transport.max_in_flight();
    let first = queue_refused(&mut transport, 300);
    transport.flush().await.unwrap();
    let mut outcomes = vec![Outcome::Pending; 300];
    read_acks(&mut transport, first, &mut outcomes)
        .await
        .unwrap();

    let refused = outcomes
        .iter()
        .filter(|o| **o == Outcome::Refused(libc::EOPNOTSUPP))
        .count();
    let lost = outcomes.iter().filter(|o| **o == Outcome::Lost).count();
    assert_eq!(refused + lost, 300, "every op has an outcome: {outcomes:?}");
    assert!(refused > 0, "the acks that fit were read");
    assert!(lost > 0, "a tiny buffer cannot hold 300 acks");
    assert!(
        transport.max_in_flight() < window,
        "the window shrinks after an overrun"
    );

    // The next batch is read correctly: nothing of the overrun is left to confuse it.
    let first = queue_refused(&mut transport, 2);
    transport.flush().await.unwrap();
    let mut outcomes = vec![Outcome::Pending; 2];
    read_acks(&mut transport, first, &mut outcomes)
        .await
        .unwrap();
    assert_eq!(outcomes, [Outcome::Refused(libc::EOPNOTSUPP); 2]);
}

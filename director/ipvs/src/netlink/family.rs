//! Resolving the "IPVS" generic netlink family to its message type number.

use netlink_packet_core::{
    parse_u16, DecodeError, NetlinkDeserializable, NetlinkHeader, NlasIterator,
};
use netlink_packet_generic::{
    constants::{CTRL_ATTR_FAMILY_ID, GENL_HDRLEN},
    ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd},
    GenlMessage,
};

use super::message::IPVS_GENL_NAME;

/// CTRL_CMD_GETFAMILY for "IPVS".
pub fn request() -> GenlMessage<GenlCtrl> {
    GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_owned())],
    })
}

/// The controller's answer reduced to the family id. Read by hand rather than with
/// [`GenlCtrl`], whose parser rejects attributes newer than itself.
#[derive(Debug)]
pub struct FamilyId(pub Option<u16>);

impl NetlinkDeserializable for FamilyId {
    type Error = DecodeError;

    fn deserialize(_header: &NetlinkHeader, payload: &[u8]) -> Result<FamilyId, DecodeError> {
        let attrs = payload
            .get(GENL_HDRLEN..)
            .ok_or_else(|| DecodeError::buffer_too_small(payload.len(), GENL_HDRLEN))?;
        for nla in NlasIterator::new(attrs) {
            let nla = nla?;
            if nla.kind() == CTRL_ATTR_FAMILY_ID {
                return Ok(FamilyId(Some(parse_u16(nla.value())?)));
            }
        }
        Ok(FamilyId(None))
    }
}

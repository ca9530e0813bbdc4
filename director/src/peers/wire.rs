//! Admin records on the wire: to the proto, and back with every field checked (a peer is
//! trusted to drain, not to send malformed data).

use lb_proto as pb;
use lb_shared::domain;

use crate::state::{AdminRecord, Revision, Stamped};

pub fn to_proto(record: &AdminRecord) -> pb::AdminRecord {
    let revision = |r: &Revision| pb::AdminRevision {
        at_ms: r.at,
        writer: r.by.clone(),
    };
    pb::AdminRecord {
        realserver: record.realserver.clone(),
        drained: record.drain.as_ref().map(|d| d.value),
        drain_revision: record.drain.as_ref().map(|d| revision(&d.revision)),
        weight_written: record.weight.is_some(),
        weight: record.weight.as_ref().and_then(|w| w.value),
        weight_revision: record.weight.as_ref().map(|w| revision(&w.revision)),
    }
}

/// A record a peer sent; `field` names it in the error ("records[3]").
pub fn from_proto(record: &pb::AdminRecord, field: &str) -> Result<AdminRecord, String> {
    domain::validate_name(&record.realserver)
        .map_err(|p| format!("{field}.realserver: {:?} {p}", record.realserver))?;
    let revision = |r: Option<&pb::AdminRevision>, which: &str| -> Result<Revision, String> {
        let r = r.ok_or_else(|| format!("{field}.{which}: is required with the value"))?;
        // A legacy revision (from a state file older than revisions) has no writer.
        if !r.writer.is_empty() {
            domain::validate_name(&r.writer)
                .map_err(|p| format!("{field}.{which}.writer: {:?} {p}", r.writer))?;
        }
        Ok(Revision {
            at: r.at_ms,
            by: r.writer.clone(),
        })
    };
    let drain = match record.drained {
        Some(value) => Some(Stamped {
            value,
            revision: revision(record.drain_revision.as_ref(), "drain_revision")?,
        }),
        None => None,
    };
    let weight = if record.weight_written {
        let value = match record.weight {
            Some(w) => {
                Some(domain::validate_weight(w).map_err(|p| format!("{field}.weight: {p}"))?)
            }
            None => None,
        };
        Some(Stamped {
            value,
            revision: revision(record.weight_revision.as_ref(), "weight_revision")?,
        })
    } else {
        None
    };
    Ok(AdminRecord {
        realserver: record.realserver.clone(),
        drain,
        weight,
    })
}

/// Every record of a message, or the first problem.
pub fn records_from_proto(records: &[pb::AdminRecord]) -> Result<Vec<AdminRecord>, String> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| from_proto(r, &format!("records[{i}]")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AdminRecord {
        AdminRecord {
            realserver: "llc5".into(),
            drain: Some(Stamped {
                value: true,
                revision: Revision {
                    at: 7,
                    by: "llclb1".into(),
                },
            }),
            weight: Some(Stamped {
                value: None,
                revision: Revision {
                    at: 9,
                    by: "llclb2".into(),
                },
            }),
        }
    }

    #[test]
    fn records_round_trip_and_bad_fields_are_named() {
        let r = record();
        assert_eq!(from_proto(&to_proto(&r), "r").unwrap(), r);
        let only_weight = AdminRecord {
            drain: None,
            ..record()
        };
        assert_eq!(
            from_proto(&to_proto(&only_weight), "r").unwrap(),
            only_weight
        );
        let mut bad = to_proto(&r);
        bad.realserver = "a b".into();
        assert!(from_proto(&bad, "records[2]")
            .unwrap_err()
            .starts_with("records[2].realserver"));
        let mut bad = to_proto(&r);
        bad.drain_revision = None;
        assert_eq!(
            from_proto(&bad, "r").unwrap_err(),
            "r.drain_revision: is required with the value"
        );
        let mut bad = to_proto(&r);
        bad.weight = Some(70_000);
        assert!(from_proto(&bad, "r").unwrap_err().starts_with("r.weight:"));
        let mut bad = to_proto(&r);
        bad.weight_revision.as_mut().unwrap().writer = "x/y".into();
        assert!(from_proto(&bad, "r")
            .unwrap_err()
            .starts_with("r.weight_revision.writer"));
    }
}

//! `lbctl status` over several directors (`--director A --director B`, or
//! `LBCTL_DIRECTOR=A,B`): each director's view under a header with its name and role, which
//! one is active, and where their admin state or tables differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use lb_proto as pb;

use super::render::{render_json, render_table};

/// What one director answered, or why it did not.
pub struct View {
    /// The URL or socket it was asked at.
    pub target: String,
    pub answer: Result<pb::StatusResponse, String>,
}

impl View {
    /// How the header and the differences name it: its own name, else where it was asked.
    fn name(&self) -> String {
        match &self.answer {
            Ok(status) if !status.director.is_empty() => status.director.clone(),
            _ => self.target.clone(),
        }
    }
}

pub fn role_word(role: i32) -> &'static str {
    match pb::DirectorRole::try_from(role) {
        Ok(pb::DirectorRole::Single) => "single",
        Ok(pb::DirectorRole::Active) => "active",
        Ok(pb::DirectorRole::Standby) => "standby",
        Ok(pb::DirectorRole::Ecmp) => "ecmp",
        _ => "unknown",
    }
}

/// "Active: llclb1", from the roles the directors report.
fn active_line(views: &[View]) -> String {
    let answered: Vec<(&View, i32)> = views
        .iter()
        .filter_map(|v| v.answer.as_ref().ok().map(|s| (v, s.role)))
        .collect();
    let active: Vec<String> = answered
        .iter()
        .filter(|(_, role)| *role == pb::DirectorRole::Active as i32)
        .map(|(v, _)| v.name())
        .collect();
    let single = answered
        .iter()
        .all(|(_, role)| *role == pb::DirectorRole::Single as i32);
    let ecmp: Vec<String> = answered
        .iter()
        .filter(|(_, role)| *role == pb::DirectorRole::Ecmp as i32)
        .map(|(v, _)| v.name())
        .collect();
    match active.as_slice() {
        _ if answered.is_empty() => "Active: unknown (no director answered)".to_owned(),
        [] if !ecmp.is_empty() => format!("Active: {} (ECMP, all at once)", ecmp.join(", ")),
        [] if single => "Active: every director owns its VIPs itself (no [ha])".to_owned(),
        [] => "Active: none (no director holds the VIPs)".to_owned(),
        [one] => format!("Active: {one}"),
        many => format!("Active: {} (more than one holds the VIPs)", many.join(", ")),
    }
}

/// One realserver in one service as a director sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    drained: bool,
    weight_override: Option<u32>,
    weight: Option<u32>,
}

/// Where the directors that answered disagree: admin state (drained, weight override) per
/// realserver, and the kernel weight and presence per service and realserver.
pub fn differences(views: &[View]) -> Vec<String> {
    let answered: Vec<(String, &pb::StatusResponse)> = views
        .iter()
        .filter_map(|v| v.answer.as_ref().ok().map(|s| (v.name(), s)))
        .collect();
    if answered.len() < 2 {
        return Vec::new();
    }
    // (service, realserver) -> director -> what it sees
    let mut rows: BTreeMap<(String, String), BTreeMap<&str, Seen>> = BTreeMap::new();
    for (name, status) in &answered {
        for service in &status.services {
            for rs in &service.realservers {
                rows.entry((service.name.clone(), rs.name.clone()))
                    .or_default()
                    .insert(
                        name.as_str(),
                        Seen {
                            drained: rs.drained,
                            weight_override: rs.weight_override,
                            weight: rs.weight,
                        },
                    );
            }
        }
    }
    let mut admin: BTreeMap<String, String> = BTreeMap::new();
    let mut table = Vec::new();
    for ((service, rs), seen) in &rows {
        let missing: Vec<&str> = answered
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !seen.contains_key(n))
            .collect();
        if !missing.is_empty() {
            table.push(format!(
                "{service}/{rs}: not listed by {}",
                missing.join(", ")
            ));
        }
        let by = |f: &dyn Fn(&Seen) -> String| -> Option<String> {
            let words: Vec<(String, &str)> = seen.iter().map(|(d, s)| (f(s), *d)).collect();
            let first = &words.first()?.0;
            if words.iter().all(|(w, _)| w == first) {
                return None;
            }
            Some(
                words
                    .iter()
                    .map(|(w, d)| format!("{w} on {d}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        if let Some(text) = by(&|s| if s.drained { "drained" } else { "not drained" }.to_owned()) {
            admin.entry(format!("{rs}: {text}")).or_default();
        }
        if let Some(text) = by(&|s| match s.weight_override {
            Some(w) => format!("weight override {w}"),
            None => "no weight override".to_owned(),
        }) {
            admin.entry(format!("{rs}: {text}")).or_default();
        }
        if let Some(text) = by(&|s| match s.weight {
            Some(w) => format!("weight {w}"),
            None => "not in the table".to_owned(),
        }) {
            table.push(format!("{service}/{rs}: {text}"));
        }
    }
    admin.into_keys().chain(table).collect()
}

/// The outcome for the exit status: how many did not answer, how many differences.
pub struct Summary {
    pub unreachable: usize,
    pub answered: usize,
    pub differences: usize,
}

pub fn summary(views: &[View]) -> Summary {
    let answered = views.iter().filter(|v| v.answer.is_ok()).count();
    Summary {
        unreachable: views.len() - answered,
        answered,
        differences: differences(views).len(),
    }
}

pub fn render_several_table(views: &[View]) -> String {
    let mut out = String::new();
    for view in views {
        match &view.answer {
            Ok(status) => {
                let _ = writeln!(
                    out,
                    "== {} ({}): {} ==",
                    view.name(),
                    view.target,
                    role_word(status.role).to_uppercase()
                );
                out.push_str(&render_table(status));
            }
            Err(why) => {
                let _ = writeln!(out, "== {}: UNREACHABLE ==\n{why}", view.target);
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", active_line(views));
    let differences = differences(views);
    if differences.is_empty() {
        if views.iter().filter(|v| v.answer.is_ok()).count() > 1 {
            out.push_str("Views agree: drains, weights and tables are the same on every director that answered\n");
        }
    } else {
        out.push_str("Differences:\n");
        for line in differences {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[derive(Serialize)]
struct JsonDirector {
    target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonSeveral {
    directors: Vec<JsonDirector>,
    active: Vec<String>,
    differences: Vec<String>,
}

pub fn render_several_json(views: &[View]) -> String {
    let directors = views
        .iter()
        .map(|view| match &view.answer {
            Ok(status) => JsonDirector {
                target: view.target.clone(),
                name: Some(view.name()),
                role: Some(role_word(status.role)),
                status: serde_json::from_str(&render_json(status)).ok(),
                error: None,
            },
            Err(why) => JsonDirector {
                target: view.target.clone(),
                name: None,
                role: None,
                status: None,
                error: Some(why.clone()),
            },
        })
        .collect();
    let active = views
        .iter()
        .filter(|v| {
            v.answer
                .as_ref()
                .is_ok_and(|s| s.role == pb::DirectorRole::Active as i32)
        })
        .map(View::name)
        .collect();
    let doc = JsonSeveral {
        directors,
        active,
        differences: differences(views),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        name: &str,
        role: pb::DirectorRole,
        drained: bool,
        weight: u32,
    ) -> pb::StatusResponse {
        pb::StatusResponse {
            director: name.into(),
            role: role as i32,
            services: vec![pb::ServiceStatus {
                name: "llc-ssh".into(),
                vip: "10.0.0.100".into(),
                port: 22,
                realservers: vec![pb::RealServerStatus {
                    name: "llc5".into(),
                    address: "10.0.0.11".into(),
                    drained,
                    weight: Some(weight),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn view(status: pb::StatusResponse) -> View {
        View {
            target: format!("http://{}:7700", status.director),
            answer: Ok(status),
        }
    }

    #[test]
    fn a_drain_on_one_director_only_is_a_difference() {
        let views = [
            view(status("llclb1", pb::DirectorRole::Active, true, 0)),
            view(status("llclb2", pb::DirectorRole::Standby, false, 1)),
        ];
        assert_eq!(
            differences(&views),
            [
                "llc5: drained on llclb1, not drained on llclb2",
                "llc-ssh/llc5: weight 0 on llclb1, weight 1 on llclb2"
            ]
        );
        let text = render_several_table(&views);
        assert!(
            text.starts_with("== llclb1 (http://llclb1:7700): ACTIVE ==\n"),
            "{text}"
        );
        assert!(text.contains("== llclb2 (http://llclb2:7700): STANDBY ==\n"));
        assert!(text.contains("Active: llclb1\nDifferences:\n  llc5: drained on llclb1"));
        let json: serde_json::Value = serde_json::from_str(&render_several_json(&views)).unwrap();
        assert_eq!(json["active"][0], "llclb1");
        assert_eq!(json["directors"][1]["role"], "standby");
        assert_eq!(json["differences"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn agreeing_views_and_an_unreachable_director() {
        let views = [
            view(status("a", pb::DirectorRole::Single, true, 0)),
            View {
                target: "http://10.0.0.3:7700".into(),
                answer: Err("cannot reach the director".into()),
            },
            view(status("b", pb::DirectorRole::Single, true, 0)),
        ];
        assert!(differences(&views).is_empty());
        let text = render_several_table(&views);
        assert!(
            text.contains("== http://10.0.0.3:7700: UNREACHABLE ==\ncannot reach the director\n")
        );
        assert!(text.contains("Active: every director owns its VIPs itself (no [ha])\nViews agree"));
        let s = summary(&views);
        assert_eq!((s.unreachable, s.answered, s.differences), (1, 2, 0));
    }
}

use std::path::Path;
use std::time::Duration;

use super::*;

const BASE: &str =
    "director = \"http://10.0.0.2:7700\"\nname = \"llc5\"\naddress = \"10.0.0.11\"\n";

fn config(extra: &str) -> AgentConfig {
    AgentConfig::parse(Path::new("agent.toml"), &format!("{BASE}{extra}")).expect("a good config")
}

#[test]
fn an_unchanged_config_changes_nothing() {
    let old = config("[[service]]\nname = \"llc-ssh\"\n");
    assert_eq!(changes(&old, &old.clone()), Ok(vec![]));
}

#[test]
fn each_change_is_named() {
    let old = config("[[service]]\nname = \"llc-ssh\"\n[[service]]\nname = \"dns\"\n");
    let mut new = config(
        "rule_check_interval = \"1s\"\n[[service]]\nname = \"llc-ssh\"\nweight = 2\n\
         [[service]]\nname = \"web\"\n",
    );
    new.directors = vec![crate::config::DirectorUrl::parse("http://10.0.0.3:7700").expect("a URL")];
    assert_eq!(
        changes(&old, &new),
        Ok(vec![
            "service llc-ssh weight 1 -> 2".to_owned(),
            "service web added".to_owned(),
            "service dns removed".to_owned(),
            "director http://10.0.0.2:7700/ -> http://10.0.0.3:7700/".to_owned(),
            "rule_check_interval 5s -> 1s".to_owned(),
        ])
    );
}

#[test]
fn name_and_address_need_a_restart() {
    let old = config("[[service]]\nname = \"llc-ssh\"\n");
    let mut new = old.clone();
    new.name = "llc7".into();
    new.address = "10.0.0.17".parse().expect("an address");
    new.rule_check_interval = Duration::from_secs(1);
    assert_eq!(
        changes(&old, &new),
        Err(vec![
            "name = \"llc7\": cannot change by reload (it is \"llc5\" now): restart lb-agent to change it"
                .to_owned(),
            "address = \"10.0.0.17\": cannot change by reload (it is \"10.0.0.11\" now): restart lb-agent to change it"
                .to_owned(),
        ])
    );
}

#[test]
fn metrics_listen_needs_a_restart() {
    let old = config("[[service]]\nname = \"llc-ssh\"\n");
    let mut new = old.clone();
    new.metrics_listen = None;
    assert_eq!(
        changes(&old, &new),
        Err(vec![
            "metrics_listen = \"\": cannot change by reload (it is \"127.0.0.1:9771\" now): restart lb-agent to change it".to_owned()
        ])
    );
}

fn urls(list: &[&str]) -> Vec<crate::config::DirectorUrl> {
    list.iter()
        .map(|u| crate::config::DirectorUrl::parse(u).expect("a URL"))
        .collect()
}

#[test]
fn directors_added_and_removed_are_named() {
    let old = config("[[service]]\nname = \"llc-ssh\"\n");
    let mut new = old.clone();
    new.directors = urls(&["http://10.0.0.2:7700", "http://10.0.0.3:7700"]);
    assert_eq!(
        changes(&old, &new),
        Ok(vec!["director http://10.0.0.3:7700/ added".to_owned()])
    );
    assert_eq!(
        changes(&new, &old),
        Ok(vec!["director http://10.0.0.3:7700/ removed".to_owned()])
    );
    let mut reordered = new.clone();
    reordered.directors.reverse();
    assert_eq!(
        changes(&new, &reordered),
        Ok(vec![]),
        "the order is no change"
    );
}

#[test]
fn sessions_follow_their_url_and_one_director_edited_stays_its_session() {
    let ab = urls(&["http://a:1", "http://b:1"]);
    let bc = urls(&["http://b:1", "http://c:1"]);
    assert_eq!(sessions_for(&ab, &bc), vec![Some(1), None]);
    assert_eq!(sessions_for(&ab, &ab[..1]), vec![Some(0)]);
    assert_eq!(
        sessions_for(&ab[..1], &bc[1..]),
        vec![Some(0)],
        "a single director edited"
    );
}

//! The integration test binary: one module per area, all driving the real `mailshift` binary
//! or the library's public API.

mod common;
mod support;

mod apply_cmd;
mod connection_budget;
mod cutover;
mod cutover_ovh;
mod deploy;
mod dns;
mod dovecot_smoke;
mod ews;
mod examples;
mod faultproxy_smoke;
mod gmail;
mod graph;
mod groupware;
mod hostile_names;
mod hostile_network;
mod loader;
mod m365;
mod mail_files;
mod notify;
mod oauth;
mod ovh_conformance;
mod ovh_e2e;
mod ovh_sim;
mod ovh_sim_client;
mod ovh_zone;
mod plan_cmd;
mod pop3;
mod pst;
mod quota;
mod reshard;
mod rollback;
mod rollback_dav;
mod rules;
mod shard_status;
mod shards;
mod sieve;
mod sizing;
mod state_cmd;
mod validate_cmd;
mod verify_cmd;
mod watch_cmd;
mod watch_pause;

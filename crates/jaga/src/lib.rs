//! jaga's command-line front end as a library, so integration tests reach the
//! same code the binary runs. The agent itself is `jaga-agent`.

pub mod agent_client;
pub mod audit;
pub mod cli;
pub mod config_cmd;
pub mod events {
    //! `jaga events`: Docker events live, with the alerts their rules raise.
    pub mod view;
}
pub mod logs {
    //! `jaga logtest` and `jaga rules`.
    pub mod cli;
}
pub mod health;
pub mod heap;
pub mod hub;
pub mod outputs;
pub mod serve;
pub mod shell;
pub mod stats;
pub mod token;
pub mod top;

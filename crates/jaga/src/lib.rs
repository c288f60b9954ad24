//! jaga's command-line front end as a library, so integration tests reach the
//! same code the binary runs.

pub mod audit;
pub mod cli;
pub mod clock;
pub mod events;
pub mod heap;
pub mod logs;
pub mod sampler;
pub mod serve;
pub mod stats;
pub mod token;

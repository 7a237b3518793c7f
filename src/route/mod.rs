//! From a path to the jobs it triggers: the matcher (one RegexSet pass over every rule) and
//! the planner (all variable binding, templates expanded into argv), and the cut a shot's
//! frames are routed by.

pub mod cut;
pub mod matcher;
pub mod plan;

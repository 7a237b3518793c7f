//! From a path to the jobs it triggers: the matcher (one RegexSet pass over every rule) and
//! the planner (all variable binding, templates expanded into argv).

pub mod matcher;
pub mod plan;

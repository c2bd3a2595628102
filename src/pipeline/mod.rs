//! Pipelines (`strata run PIPELINE.yaml`): reading their YAML with positions
//! ([`yaml`]) and their `${{ … }}` expressions ([`expr`]).

pub mod expr;
pub mod yaml;

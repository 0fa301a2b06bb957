//! Support code for the workspace tests (the pipelines compiled by build.rs live here).

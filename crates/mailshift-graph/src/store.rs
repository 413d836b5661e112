//! stub
pub struct GraphStore;

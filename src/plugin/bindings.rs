//! The host side of `wit/plugin.wit`, one module per world.

/// The `layer-transform` world.
pub mod layer {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "layer-transform",
    });
}

/// The `config-transform` world.
pub mod config {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "config-transform",
    });
}

/// The `tag-filter` world.
pub mod tags {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tag-filter",
    });
}

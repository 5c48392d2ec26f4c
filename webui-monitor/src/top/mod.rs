//! `webui-monitor top`: see [`view`].
mod view;

pub use view::*;

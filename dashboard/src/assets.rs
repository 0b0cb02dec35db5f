//! The page, compiled into the binary: no file is read at run time and
//! nothing is fetched from another server.

/// The page.
pub(crate) const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script: state from server-sent events, the prompt, the picker.
pub(crate) const APP_JS: &str = include_str!("assets/app.js");
/// Its style.
pub(crate) const STYLE_CSS: &str = include_str!("assets/style.css");

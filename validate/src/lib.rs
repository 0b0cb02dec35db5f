//! Translation validation for lagic.
pub mod isa;
pub mod object;
pub mod vm;

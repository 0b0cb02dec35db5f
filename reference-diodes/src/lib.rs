//! reference diodes

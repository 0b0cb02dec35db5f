//! lagic-loader

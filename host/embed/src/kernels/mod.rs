//! The numeric kernels of the BERT forward pass: the dense layer, attention and the
//! element-wise operations.

pub mod attention;
pub mod linear;
pub mod ops;

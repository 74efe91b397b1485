//! Tests of the IVR module.

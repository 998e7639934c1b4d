//! Tests of `mmrun exec` and the external-worker protocol.

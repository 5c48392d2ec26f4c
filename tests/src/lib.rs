//! Helpers for the privileged end-to-end tests: frame builders for `BPF_PROG_TEST_RUN`, and
//! guards that undo what a test set up (network namespaces, veth pairs, processes) even when
//! it fails.
pub mod frame;
pub mod net;
pub mod stack;

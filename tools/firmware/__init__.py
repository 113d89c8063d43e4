"""Tools for the joint firmware in C: the Cortex-M cross-build size check and the libFuzzer runner."""

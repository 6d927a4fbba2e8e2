#ifndef USM_FUZZ_DRIVER_H
#define USM_FUZZ_DRIVER_H

/// Runs libFuzzer (LLVMFuzzerRunDriver) on the executable's LLVMFuzzerTestOneInput with the command
/// line's arguments and returns its exit status. Called from each fuzz target's main.swift.
int usm_fuzz_main(int argc, char **argv);

#endif

// The `main` of every fuzz target.
//
// SwiftPM links a Linux executable with `--defsym main=<Target>_main` and names the entry point of the
// target's main.swift that way, so libFuzzer's own `main` is never the program's: main.swift calls
// this function, which hands over to libFuzzer through its documented LLVMFuzzerRunDriver.
#include "CFuzzDriver.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int usm_fuzz_main(int argc, char **argv) {
    // On a crash the Swift runtime starts its backtracer (swift-backtrace), which can outlive the
    // process and keep libFuzzer's output pipe open for a long time; libFuzzer prints the stack
    // itself. The runtime reads SWIFT_BACKTRACE at start, so start again with it set.
    if (getenv("SWIFT_BACKTRACE") == NULL) {
        setenv("SWIFT_BACKTRACE", "enable=no", 1);
        execv("/proc/self/exe", argv);
        // exec failed: go on with the backtracer enabled.
    }
    return LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput);
}

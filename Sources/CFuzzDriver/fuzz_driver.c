#include "fuzz_driver.h"

// libFuzzer's entry point for programs with a main of their own; weak, so that an ordinary
// build (without -sanitize=fuzzer) links and says so at run time.
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *, size_t))
    __attribute__((weak));

int dist_fuzz_run(int *argc, char ***argv, dist_fuzz_callback callback) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(argc, argv, callback);
}

#ifndef DIST_FUZZ_DRIVER_H
#define DIST_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*dist_fuzz_callback)(const uint8_t *data, size_t size);

/// Runs libFuzzer's driver on `callback` with the given arguments (libFuzzer's own options and
/// corpus directories). Returns -1 when the program was built without `-sanitize=fuzzer`.
int dist_fuzz_run(int *argc, char ***argv, dist_fuzz_callback callback);

#endif

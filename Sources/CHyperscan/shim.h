/* Hyperscan (Debian's libhyperscan-dev): many regular expressions matched in one scan. */
#ifndef DIST_CHYPERSCAN_SHIM_H
#define DIST_CHYPERSCAN_SHIM_H
#include <hs/hs.h>
#endif

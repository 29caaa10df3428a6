/* Zstandard (Debian's libzstd-dev): the channel compresses frames of states with it. */
#ifndef DIST_CZSTD_SHIM_H
#define DIST_CZSTD_SHIM_H
#include <zstd.h>
#endif

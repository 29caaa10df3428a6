/* PCRE2 (Debian's libpcre2-dev) with 8-bit code units: Swift calls the *_8 functions. */
#ifndef DIST_CPCRE2_SHIM_H
#define DIST_CPCRE2_SHIM_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

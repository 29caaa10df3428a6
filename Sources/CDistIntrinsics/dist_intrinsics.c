/* Everything in CDistIntrinsics is static inline in include/dist_intrinsics.h. */
#include "dist_intrinsics.h"

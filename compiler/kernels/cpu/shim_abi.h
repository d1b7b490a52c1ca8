// How the shims IREE compiles around flashlift's CPU kernels pass a binding
// (compiler/kernels/cpu_build.py: shim_source): a 1-D memref lowered to LLVM's
// (base, aligned, offset, size, stride); the aligned pointer plus the offset (in elements)
// is the tensor.
#ifndef FLASHLIFT_SHIM_ABI_H
#define FLASHLIFT_SHIM_ABI_H

#include <stddef.h>

#define FL_MEMREF(T, NAME) \
  T* NAME##_base, T* NAME, size_t NAME##_off, size_t NAME##_size, size_t NAME##_stride

#endif

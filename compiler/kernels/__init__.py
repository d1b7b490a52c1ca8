"""flashlift's own kernels (build side). NVIDIA (needs triton): triton_fa (the FlashAttention
forward kernel, AOT-compiled to PTX/cubin), triton_gemm, and iree_dispatch (the MLIR that hands
such a binary to IREE); flashlift.compiler.kernel_dispatch puts them into compiled models.
CPU (needs a C compiler): cpu_fa (cpu/fa_avx2.c built to an object that IREE links into the
module's executable); flashlift.compiler.cpu_dispatch puts it into compiled models."""

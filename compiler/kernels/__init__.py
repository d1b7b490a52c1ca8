"""flashlift's own GPU kernels (build side; needs triton): triton_fa (the FlashAttention
forward kernel, AOT-compiled to PTX/cubin) and iree_dispatch (the MLIR that hands such a
binary to IREE). flashlift.compiler.kernel_dispatch puts them into compiled models."""

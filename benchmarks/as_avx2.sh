#!/bin/sh
# Run a command as on an AVX2-only CPU: medfuse's AVX2 path and every reference library limited to AVX2 too
# (OpenCV's own dispatch and its IPP, PyTorch's ATen kernels and oneDNN, MKL, OpenBLAS, NumPy's dispatch).
# On an AVX-512 machine this is the fair comparison for the AVX2 tables of BENCHMARKS.md; conftest.py records
# the limits in the JSON (machine_info["isa_limits"]) and report.py prints them.
#
#     sh benchmarks/as_avx2.sh python -m pytest benchmarks/bench_enhance.py --benchmark-only --benchmark-json=avx2.json
export MEDFUSE_SIMD=avx2
export OPENCV_IPP=avx2
export OPENCV_CPU_DISABLE=AVX512F,AVX512-SKX,AVX512-CLX,AVX512BW,AVX512VL,AVX512DQ,AVX512CD
export ATEN_CPU_CAPABILITY=avx2
export ONEDNN_MAX_CPU_ISA=AVX2
export MKL_ENABLE_INSTRUCTIONS=AVX2
export OPENBLAS_CORETYPE=Haswell
export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
exec "$@"

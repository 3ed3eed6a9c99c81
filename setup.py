"""Builds the C extension pyreg._core from csrc/ (plain C11) and pyreg/_core.c.

Portable flags only: the SIMD kernels are selected at run time, so the package
never needs -march=native. Set PYREG_NO_OPENMP=1 to build without OpenMP and
PYREG_SANITIZE=1 to build with AddressSanitizer and UBSan (see tools/asan.sh).
"""
import glob
import os
import sys

import numpy
from setuptools import Extension, setup

sources = ["pyreg/_core.c"] + sorted(glob.glob("csrc/*.c"))
compile_args = ["-std=c11", "-O3", "-fno-math-errno", "-fno-strict-aliasing", "-Wall"]
link_args = []
if sys.platform == "win32":
    compile_args = ["/O2", "/openmp"]
elif not os.environ.get("PYREG_NO_OPENMP"):
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
if os.environ.get("PYREG_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    compile_args += san
    link_args += ["-fsanitize=address,undefined"]

setup(
    ext_modules=[
        Extension(
            "pyreg._core",
            sources=sources,
            include_dirs=[numpy.get_include(), "csrc"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            depends=glob.glob("csrc/*.h"),
        )
    ]
)

# lit configuration for weft's FileCheck tests (tests/lit/<area>/).
import os
import lit.formats

config.name = "weft"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = config.weft_test_exec_root

config.environment["PATH"] = os.pathsep.join(
    [config.weft_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", "")])
# Tests of CUDA plans need the toolkit's NVRTC, not a GPU; "cuda-driver"
# marks a machine with an NVIDIA driver.
if config.weft_enable_cuda.upper() in ("ON", "1", "TRUE", "YES"):
    config.available_features.add("cuda")
try:
    import ctypes
    ctypes.CDLL("libcuda.so.1")
    config.available_features.add("cuda-driver")
except OSError:
    pass
config.substitutions.append(("%weft_src", config.weft_source_dir))
config.substitutions.append(("%{onnxdata}", "/usr/include/onnx/backend/test/data"))

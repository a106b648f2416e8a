"""PyInstaller hook for torchvision (replaces the contrib hook, which predates 0.29).

Why: torchvision's C++ operators (``nms``, ``roi_align``...) live in ``_C_stable.so``
(``_C.so``/``_C.pyd`` before 0.29) and ``image_stable.so``, which ``torchvision.extension``
loads with ``torch.ops.load_library`` from the package folder, found by file name. No
import statement names them, so PyInstaller does not collect them, and the frozen app
fails at ``import torchvision`` with ``operator torchvision::nms does not exist``. They
are collected here as binaries into ``torchvision/``, where that lookup expects them.
"""

from PyInstaller.utils.hooks import collect_dynamic_libs, collect_submodules

# the default patterns only match lib*.so on Linux; torchvision's are _C_stable.so etc.
binaries = collect_dynamic_libs("torchvision", search_patterns=["*.so", "*.pyd", "*.dll", "*.dylib"])
hiddenimports = collect_submodules("torchvision", filter=lambda name: ".tests" not in name)
# TorchScript and torch.library read the sources of some functions
module_collection_mode = "pyz+py"

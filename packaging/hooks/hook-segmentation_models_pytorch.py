"""PyInstaller hook for segmentation-models-pytorch.

Why: smp builds architectures and encoders from registries filled by importing its
subpackages, partly through ``importlib``; collecting all submodules keeps every model
the app offers available in the frozen app. Sources are kept next to the bytecode
(``pyz+py``) because TorchScript and ``inspect`` read them.
"""

from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("segmentation_models_pytorch", filter=lambda name: ".tests" not in name)
module_collection_mode = "pyz+py"

"""PyInstaller hook for pyogrio (vector IO; its wheel bundles its own GDAL and PROJ).

Why: like rasterio, pyogrio's extension modules import Python modules PyInstaller cannot
see, and its GDAL needs ``pyogrio/gdal_data`` and ``pyogrio/proj_data``, which
``pyogrio._env`` finds next to the package at import time.
"""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

hiddenimports = collect_submodules("pyogrio", filter=lambda name: ".tests" not in name)
datas = collect_data_files("pyogrio", includes=["gdal_data/**", "proj_data/**"])

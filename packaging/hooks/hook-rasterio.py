"""PyInstaller hook for rasterio (wheels bundle GDAL and PROJ).

Why: rasterio imports several modules from its Cython extensions (``rasterio.serde``,
``rasterio._features``...), which PyInstaller's bytecode scan cannot see: without them the
frozen app fails with ``No module named 'rasterio.serde'``. GDAL and PROJ also need their
support files: the wheel ships them as ``rasterio/gdal_data`` and ``rasterio/proj_data``,
and rasterio points GDAL_DATA/PROJ_DATA there when it finds them next to its package,
which stays true in the one-folder app.
"""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules


def _wanted(name: str) -> bool:
    # rasterio.rio is the `rio` command line (click plug-ins); the app never imports it.
    return not (name.startswith("rasterio.rio") or ".tests" in name)


hiddenimports = collect_submodules("rasterio", filter=_wanted)
datas = collect_data_files("rasterio", includes=["gdal_data/**", "proj_data/**"])

"""PyInstaller hook for casdesk itself.

Why: the CLI loads its command modules, the main window its panels and the registries
their entries through ``importlib`` by name, which PyInstaller cannot follow.
"""

from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("casdesk")

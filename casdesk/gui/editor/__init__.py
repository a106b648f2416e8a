"""The polygon label editor (LabelMe-like) on tiles and whole georeferenced scenes.

Split by responsibility: ``document`` (shapes + autosave), ``commands`` (undo diffs),
``items`` (how a shape is drawn), ``tools`` (what the mouse does in each mode), ``canvas``
(the view, keys, zoom/pan), ``imagery`` (streamed pixels), ``panel`` (the tab).
"""

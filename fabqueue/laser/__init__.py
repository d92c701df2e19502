"""PURE laser planning: SVG to toolpaths, ordering, GRBL G-code, the material library."""

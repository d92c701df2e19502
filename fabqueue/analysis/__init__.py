"""Reading and checking uploads: meshes, drawings, their guards and thumbnails."""

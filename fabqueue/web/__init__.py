"""The web edge: API (one module per resource), pages, templates, static files, catalogs."""

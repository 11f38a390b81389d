"""Pages: each module registers itself with dash.register_page and builds its layout per request."""

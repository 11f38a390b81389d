"""Dash UI: pages, components, auth, i18n."""

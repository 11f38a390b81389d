"""The report centre: a registry of reports (reports.registry), the one reader of their parameters (reports.spec),
their files (reports.render) and the reports API (reports.api)."""

"""The serving process, assembled in one place: database, field I/O, collector, dispatcher, scheduler jobs, billing
services, the web app and its API blueprints (serve.runtime.Runtime)."""

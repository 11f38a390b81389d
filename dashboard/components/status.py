"""System status (/status, 系统状态): the figures /healthz reports, as cards, with times in the site's zone."""
from __future__ import annotations

import datetime as dt

import dash_bootstrap_components as dbc
from dash import html

from core.clock import show_time
from dashboard.i18n import t


def _stored(iso: str | None) -> dt.datetime | None:
    """/healthz's ISO UTC ("2026-03-01T08:00:00Z") as the naive UTC the clock helpers take."""
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).replace(tzinfo=None)
    except ValueError:
        return None


def status_page(h: dict, lang: str, zone: dt.tzinfo) -> html.Div:
    last = h.get("last_poll") or {}
    finished = _stored(last.get("finished_at"))

    def card(label, value, ident):
        return dbc.Col(dbc.Card(dbc.CardBody([
            html.Div(label, className="text-muted small"),
            html.Div(str(value), className="fs-4 fw-semibold", id=f"status-{ident}")])), xs=6, md=3)

    return dbc.Container([
        html.H1(t("status.heading", lang), className="h4"),
        html.P(t("app.tagline", lang), className="text-muted"),
        dbc.Row([
            card(t("status.meters", lang), h.get("meters", 0), "meters"),
            card(t("status.online", lang), h.get("meters_online", 0), "online"),
            card(t("status.lost", lang), h.get("meters_lost", 0), "lost"),
            card(t("status.buses_lost", lang), h.get("buses_lost", 0), "buses-lost"),
        ], className="g-2 mb-3"),
        html.P([f"{t('status.last_poll', lang)}: ",
                html.Span(show_time(finished, zone) if finished else t("status.never", lang), id="status-last-poll"),
                f" · {t('status.duration', lang)}: {last['duration_s']:.2f} s" if last.get("duration_s") is not None else "",
                f" · {t('status.scheduler', lang)}: ",
                t("status.running" if h.get("scheduler_running") else "status.stopped", lang)]),
    ], fluid=True, id="status-page")

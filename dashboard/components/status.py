"""System status (/status, 系统状态): the figures /healthz reports, as cards, with times in the site's zone; every
scheduled job (interval, last run, duration, last error, next run) as a card of its own, so a phone never scrolls
sideways."""
from __future__ import annotations

import datetime as dt

import dash_bootstrap_components as dbc
from dash import html

from core.clock import show_time
from core.text import catalog
from dashboard.i18n import t
from dashboard.ids import Status as ID


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
            html.Div(str(value), className="fs-4 fw-semibold", id=ID.figure(ident))])), xs=6, md=3)

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
                html.Span(show_time(finished, zone) if finished else t("status.never", lang), id=ID.LAST_POLL),
                f" · {t('status.duration', lang)}: {last['duration_s']:.2f} s" if last.get("duration_s") is not None else "",
                f" · {t('status.scheduler', lang)}: ",
                t("status.running" if h.get("scheduler_running") else "status.stopped", lang)]),
        html.H2(t("status.jobs.heading", lang), className="h5 mt-4"),
        html.P(t("status.jobs.intro", lang), className="text-muted small"),
        job_cards(h.get("jobs") or [], lang, zone),
    ], fluid=True, id=ID.PAGE)


def job_label(name: str, lang: str) -> str:
    """A job's name as people read it (the catalog's status.jobs.name.<name>), else its code."""
    return catalog(lang).get(f"status.jobs.name.{name}", name)


def interval_text(seconds: float | None, lang: str) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return t(f"status.jobs.{unit}", lang, n=int(seconds // size))
    return t("status.jobs.seconds", lang, n=f"{seconds:g}")


def job_cards(jobs: list[dict], lang: str, zone: dt.tzinfo) -> html.Div:
    """One card per job (as /healthz's "jobs" lists them): label and interval, then its last run and result,
    duration, next run and last error with its time."""
    if not jobs:
        return html.P(t("status.jobs.none", lang), className="text-muted", id=ID.JOBS)

    def when(iso: str | None) -> str:
        stored = _stored(iso)
        return show_time(stored, zone) if stored else t("status.jobs.never", lang)

    def line(label: str, value, ident: str, name: str, **kw):
        return html.Div([html.Span(f"{label}: ", className="text-muted"),
                         html.Span(value, id=ID.job_field(name, ident), **{k: v for k, v in kw.items() if v})],
                        className="small text-break")

    cards = []
    for j in jobs:
        name = j["name"]
        if j.get("running"):
            result, tone = t("status.jobs.running", lang), "text-primary"
        elif j.get("ok") is None:
            result, tone = t("status.jobs.never", lang), "text-muted"
        else:
            result, tone = (t("status.jobs.ok", lang), "text-success") if j["ok"] else \
                (t("status.jobs.failed", lang), "text-danger fw-semibold")
        error = j.get("last_error")
        error_line = (f"{when(j.get('last_error_at'))} · {error}" if error else t("status.jobs.no_error", lang))
        duration = j.get("duration_s")
        cards.append(dbc.Col(dbc.Card(dbc.CardBody([
            html.Div([html.Span(job_label(name, lang), className="fw-semibold me-2"),
                      html.Span(f"{t('status.jobs.interval', lang)} {interval_text(j.get('interval_s'), lang)}",
                                className="text-muted small")], className="mb-1"),
            line(t("status.jobs.last_run", lang), when(j.get("last_run")), "last-run", name),
            line(t("status.jobs.result", lang), result, "result", name, className=tone),
            line(t("status.jobs.duration", lang), "—" if duration is None else f"{duration:.2f} s", "duration", name),
            line(t("status.jobs.next_run", lang), when(j.get("next_run")), "next-run", name),
            line(t("status.jobs.runs", lang), str(j.get("runs", 0)), "runs", name),
            line(t("status.jobs.last_error", lang), error_line, "error", name,
                 className="text-danger" if error and j.get("ok") is False else None),
        ]), className="h-100"), xs=12, md=6, xl=4))
    return dbc.Row(cards, className="g-2", id=ID.JOBS)

"""The managers' dashboard (/dashboard): today's load against yesterday and the same day last week, energy and
sales of the last 30 days, alarms opened per day, the top consumers and each building's share
(energy.manager.manager_figures). A click on a chart opens the energy analysis of that day, building or room."""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from dashboard import access
from dashboard.auth import forbidden_page
from dashboard.components.analysis import (PALETTE, compare_curves_figure, daily_bars_figure, share_figure,
                                           top_figure)
from dashboard.components.analysis_layout import energy_link, follow_link_clicks, place_text
from dashboard.i18n import request_lang, t
from dashboard.ids import ManagerDashboard as ID
from dashboard.services import billing
from energy.manager import manager_figures

dash.register_page(__name__, path=access.DASHBOARD.path, title="Wattline", name="dashboard")


def _graph(graph_id: str, figure) -> dbc.Col:
    return dbc.Col(dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False, "responsive": True}),
                   xs=12, lg=6, className="mb-2")


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.DASHBOARD, lang)
    if denied is not None:
        return denied
    ctx = billing()
    today = ctx.local(ctx.now()).date()
    f = manager_figures(ctx, today)
    labels = {"today": t("analysis.dash.today", lang), "yesterday": t("analysis.dash.yesterday", lang),
              "last_week": t("analysis.dash.last_week", lang)}
    load = compare_curves_figure({labels[k]: v for k, v in f.curves.items()}, lang)
    load.update_layout(title=dict(text=t("analysis.dash.load_curve", lang), font=dict(size=13)),
                       margin=dict(l=48, r=12, t=64, b=36))
    day_links = dict(zip(labels, (today, today - pd.Timedelta(days=1), today - pd.Timedelta(days=7))))
    for trace, key in zip(load.data, f.curves):
        day = pd.Timestamp(day_links[key]).date().isoformat()
        trace.customdata = [energy_link(**{"from": day, "to": day, "by": "hour"})] * len(trace.x)
    energy = f.energy.assign(link=[energy_link(**{"from": d.date().isoformat(), "to": d.date().isoformat(),
                                                  "by": "hour"}) for d in f.energy["day"]])
    top = f.top.assign(label=[place_text(r, lang) for r in f.top.to_dict("records")],
                       key=[energy_link(building=r["building"], floor=None if pd.isna(r["floor"]) else int(r["floor"]),
                                        room=r["room"]) for r in f.top.to_dict("records")])
    share = f.share.assign(label=f.share["building"].fillna("—"),
                           key=[energy_link(building=b) for b in f.share["building"]])
    return html.Div([
        html.H1(t("analysis.dash.heading", lang), className="h4"),
        dbc.Row([
            _graph(ID.LOAD, load),
            _graph(ID.ENERGY, daily_bars_figure(energy, "energy_kwh", lang, title_key="analysis.dash.energy_30",
                                                key="link")),
            _graph(ID.SALES, daily_bars_figure(f.sales, "net", lang, title_key="analysis.dash.sales_30",
                                               color=PALETTE[1])),
            _graph(ID.ALARMS, daily_bars_figure(f.alarms, "count", lang, title_key="analysis.dash.alarms_by_day",
                                                color=PALETTE[4])),
            _graph(ID.TOP, top_figure(top, lang, title_key="analysis.dash.top")),
            _graph(ID.SHARE, share_figure(share, lang, title_key="analysis.dash.share")),
        ], className="g-2"),
        _workorder_card(today, lang),
        _line_loss_card(today, lang),
        dcc.Location(id=ID.GO, refresh=True),
    ], className="container-fluid", id=ID.PAGE)


def _workorder_card(today, lang: str):
    """Work orders of the last 30 days (workorders.kpis), for managers who see them; else nothing."""
    from dashboard.auth import allowed
    from dashboard.components.workorders_office import dash_card
    from dashboard.services import actor, workorders
    from workorders.office import Office
    if not access.WORKORDER_KPIS.open_to(allowed):
        return None
    report = Office(workorders()).kpis(actor(), today - pd.Timedelta(days=29).to_pytimedelta(), today)
    return dash_card(report.kpis, lang)


def _line_loss_card(today, lang: str):
    """Yesterday's line loss per transformer area (grid.line_loss), linking to /grid/line-loss; none without areas."""
    from dashboard.components.line_loss import dash_card
    from dashboard.services import runtime, site_zone
    from grid.line_loss import DEFAULT_LIMIT, LineLossSettings, line_loss
    cfg = getattr(runtime(), "cfg", None)
    limit = cfg.analytics.line_loss_limit if cfg is not None else DEFAULT_LIMIT
    day = today - pd.Timedelta(days=1).to_pytimedelta()
    rows = line_loss(runtime().engine, site_zone(), day, day, settings=LineLossSettings(limit=limit))
    return dash_card(rows, day, lang, access.GRID_LINE_LOSS.path) if len(rows) else None


follow_link_clicks(ID.GO, ID.LOAD, ID.ENERGY, ID.TOP, ID.SHARE)

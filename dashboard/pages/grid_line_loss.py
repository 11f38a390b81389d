"""Line loss per transformer area (/grid/line-loss, 台区线损): per day or month the supply (master meter x CT
ratio), the sales (its room meters), the loss and its rate as a trend and a table, the meters that made a period
not computable, and the meters whose use moved least with the loss (grid.line_loss)."""
from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core import permissions as P
from dashboard import access
from dashboard.auth import forbidden_page, guarded_callback
from dashboard.components.analysis_layout import BadQuery, default_days, read_range
from dashboard.components.cashier import field
from dashboard.components.line_loss import hints_table, loss_rate_figure, missing_list, rows_table
from dashboard.components.reports import empty_figure
from dashboard.i18n import request_lang, t
from dashboard.ids import GridLineLoss as ID
from dashboard.services import billing, runtime, site_zone
from grid.line_loss import BY, DEFAULT_LIMIT, LineLossSettings, area_choices, least_correlated_meters, line_loss

dash.register_page(__name__, path=access.GRID_LINE_LOSS.path, title="Wattline", name="grid_line_loss")

MAX_DAYS = 366
HINT_DAYS = 92      # the least-correlated meters of one area: at most this many days


def _limit() -> float:
    cfg = getattr(runtime(), "cfg", None)
    return cfg.analytics.line_loss_limit if cfg is not None else DEFAULT_LIMIT


def layout(**_query):
    lang = request_lang()
    denied = forbidden_page(access.GRID_LINE_LOSS, lang)
    if denied is not None:
        return denied
    ctx = billing()
    days = default_days(ctx.local(ctx.now()).date(), days=30)
    areas = [{"label": t("line_loss.all_areas", lang), "value": "all"},
             *({"label": name, "value": str(area_id)} for area_id, name in area_choices(runtime().engine))]
    return html.Div([
        html.H1(t("line_loss.heading", lang), className="h4"),
        html.P(t("line_loss.help", lang, limit=f"{_limit() * 100:g}"), className="small text-muted"),
        dbc.Row([
            field(t("line_loss.area", lang), dcc.Dropdown(id=ID.AREA, options=areas, value="all", clearable=False),
                  ID.AREA, xs=12, md=3),
            field(t("analysis.from", lang), dbc.Input(id=ID.FROM, type="date", value=days["from"]), ID.FROM,
                  xs=6, md=2),
            field(t("analysis.to", lang), dbc.Input(id=ID.TO, type="date", value=days["to"]), ID.TO, xs=6, md=2),
            field(t("report.param.by", lang), dbc.Select(id=ID.BY, value="day", options=[
                {"label": t(f"report.by.{b}", lang), "value": b} for b in BY]), ID.BY, xs=6, md=2),
            dbc.Col(dbc.Button(t("analysis.query", lang), id=ID.QUERY, color="primary"), xs=6, md=3,
                    className="d-flex align-items-end"),
        ], className="g-2 mb-2"),
        html.Div(id=ID.RESULT, role="status", className="small"),
        dcc.Graph(id=ID.CHART, figure=empty_figure(), config={"displayModeBar": False}),
        html.Div(id=ID.TABLE),
        html.Div(id=ID.MISSING),
        html.Div(id=ID.HINTS),
    ], className="container-fluid", id=ID.PAGE)


@guarded_callback("grid.line_loss.query", P.REPORT_VIEW, Output(ID.CHART, "figure"), Output(ID.TABLE, "children"),
                  Output(ID.MISSING, "children"), Output(ID.HINTS, "children"), Output(ID.RESULT, "children"),
                  Input(ID.QUERY, "n_clicks"), State(ID.AREA, "value"), State(ID.FROM, "value"),
                  State(ID.TO, "value"), State(ID.BY, "value"), changes_state=False, prevent_initial_call=True)
def query(n_clicks, area, first, last, by):
    if not n_clicks:
        raise PreventUpdate
    lang = request_lang()
    try:
        first_day, last_day = read_range(first, last, MAX_DAYS, lang)
    except BadQuery as exc:
        return no_update, no_update, no_update, no_update, html.Span(str(exc), className="text-danger")
    by = by if by in BY else "day"
    engine, zone, limit = runtime().engine, site_zone(), _limit()
    known = {str(a): a for a, _ in area_choices(engine)}
    chosen = known.get(area) if isinstance(area, str) else None
    settings = LineLossSettings(limit=limit)
    rows = line_loss(engine, zone, first_day, last_day, by=by, settings=settings,
                     area_ids=None if chosen is None else [chosen])
    if rows.empty:
        return empty_figure(), None, None, None, t("line_loss.none", lang)
    hints = None
    if chosen is not None:
        start = max(first_day, last_day - dt.timedelta(days=HINT_DAYS - 1))
        found = least_correlated_meters(engine, zone, chosen, start, last_day, settings=settings)
        hints = hints_table(found.assign(area=rows["area"].iloc[0]), lang)
    counts = rows["class"].value_counts()
    summary = " · ".join(f"{t(f'line_loss.class.{c}', lang)} {int(counts.get(c, 0))}"
                         for c in ("qualified", "high", "negative", "not_computable"))
    return loss_rate_figure(rows, limit, lang), rows_table(rows, lang), missing_list(rows, lang), hints, summary

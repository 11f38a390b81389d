"""Tariffs (/tariffs, 电价): tariffs with their versions, the version form (flat, time of use with up to 14
day segments, monthly tiers), assigning and pushing a tariff to meters and the batch's command states.
Pure builders and the parsing of the form's fields; component ids come from dashboard.ids.Tariffs."""
from __future__ import annotations

import re
from decimal import Decimal

import dash_bootstrap_components as dbc
from dash import dcc, html

from billing.tariffs import MAX_SEGMENTS, MAX_TIERS, PRICE_NAMES
from dashboard.components.cashier import STATE_COLORS, field, state_badge, when
from dashboard.i18n import t
from dashboard.ids import Tariffs as ID

NEW = "new"

SEGMENT_WORDS = {"sharp": "sharp", "peak": "peak", "flat": "flat", "valley": "valley",
                 "尖": "sharp", "峰": "peak", "平": "flat", "谷": "valley"}
SEGMENT_EXAMPLE = "00:00 valley\n08:00 peak\n11:00 flat\n18:00 peak\n19:00 sharp\n21:00 peak\n23:00 valley"


# ---------------------------------------------------------------------------------------------
# parsing the form (shaping only: billing.tariffs.validate_prices decides what is valid)
def parse_segments(text: str | None, lang: str) -> list[tuple]:
    """One segment per line, "HH:MM price" (price: sharp/peak/flat/valley, 尖/峰/平/谷, or its name in `lang`);
    what does not parse is passed on as typed, so billing names it in its message."""
    words = dict(SEGMENT_WORDS)
    words.update({t(f"tariffs.price_{n}", lang).lower(): n for n in PRICE_NAMES})
    out = []
    for line in (text or "").splitlines():
        parts = line.replace("，", " ").replace(",", " ").split()
        if not parts:
            continue
        start = parts[0].replace("：", ":")
        name = " ".join(parts[1:]).lower()
        out.append((start, words.get(name, name)))
    return out


def parse_tiers(bounds: list, prices: list) -> list[tuple]:
    """Tier rows with a price; the last one has no upper bound."""
    rows = [(b, p) for b, p in zip(bounds, prices) if str(p or "").strip()]
    out = []
    for i, (bound, price) in enumerate(rows):
        text = str(bound or "").strip()
        if i == len(rows) - 1:
            out.append((None, str(price).strip()))
        else:
            out.append((int(text) if re.fullmatch(r"[0-9]{1,9}", text) else text, str(price).strip()))
    return out


# ---------------------------------------------------------------------------------------------
def _price(d: Decimal) -> str:
    return f"{Decimal(d):.4f}"


def version_summary(mode: str, body, lang: str) -> html.Div:
    """A version's prices as the operator reads them."""
    if mode == "flat":
        return html.Div(t("tariffs.per_kwh", lang, price=_price(body.prices[2])))
    if mode == "tou":
        prices = " · ".join(f"{t(f'tariffs.price_{n}', lang)} {_price(p)}" for n, p in zip(PRICE_NAMES, body.prices))
        segs = ", ".join(f"{s // 60:02d}:{s % 60:02d} {t(f'tariffs.price_{PRICE_NAMES[i]}', lang)}"
                         for s, i in body.segments)
        return html.Div([html.Div(prices), html.Div(segs, className="text-muted")])
    tiers = []
    low = 0
    for bound, price in body.tiers:
        tiers.append(t("tariffs.tier_upto", lang, low=low, high=bound, price=_price(price)) if bound is not None
                     else t("tariffs.tier_above", lang, low=low, price=_price(price)))
        low = bound or low
    return html.Div(" · ".join(tiers))


def scheduled_badge(valid_from_local, lang: str) -> dbc.Badge:
    """A version from a later date: billing.tariffs.push_due_versions sends it to the meters when it takes effect."""
    return dbc.Badge(t("tariffs.scheduled", lang, date=f"{valid_from_local:%Y-%m-%d}"), color=STATE_COLORS["future"],
                     className="me-1 tariff-scheduled")


def in_use(tariffs: list[dict]) -> list[dict]:
    """The tariffs that may still be chosen (retired ones stay listed, for the history, but are offered no more)."""
    return [x for x in tariffs if x.get("retired_at") is None]


def zero_prices_text(names: list[str], lang: str) -> str:
    """billing.tariffs.zero_prices ("flat", "tier 2" ...) as the form names them."""
    words = [t("tariffs.tier_n", lang, n=n.split()[1]) if n.startswith("tier ") else t(f"tariffs.price_{n}", lang)
             for n in names]
    return ("、" if lang == "zh" else ", ").join(words)


def target_options(tariffs: list[dict], lang: str) -> list[dict]:
    return [{"label": t("tariffs.new_tariff", lang), "value": NEW}] + [
        {"label": t("tariffs.new_version_of", lang, name=x["name"]), "value": str(x["id"])} for x in in_use(tariffs)]


def tariff_options(tariffs: list[dict]) -> list[dict]:
    return [{"label": x["name"], "value": str(x["id"])} for x in in_use(tariffs)]


def tariff_cards(tariffs: list[dict], lang: str) -> list:
    """billing.desk.tariffs_overview as one card per tariff with its versions, newest first; retired ones last."""
    if not tariffs:
        return [html.P(t("tariffs.none", lang), className="text-muted")]
    cards = []
    for x in sorted(tariffs, key=lambda x: x.get("retired_at") is not None):
        retired = x.get("retired_at") is not None
        rows = []
        for v in sorted(x["versions"], key=lambda v: v["version_no"], reverse=True):
            mark = (state_badge("in_force", lang) if v["in_force"]
                    else scheduled_badge(v["valid_from_local"], lang) if v["future"] else "")
            rows.append(html.Tr([html.Td(f"v{v['version_no']}"), html.Td([when(v["valid_from_local"]), " ", mark]),
                                 html.Td(version_summary(x["mode"], v["body"], lang)),
                                 html.Td(v["created_by"], className="text-muted")]))
        cards.append(dbc.Card([
            dbc.CardHeader([html.Span(x["name"], className="fw-semibold me-2"),
                            dbc.Badge(t(f"tariffs.mode.{x['mode']}", lang), color="primary", className="me-2"),
                            dbc.Badge(t("tariffs.retired_badge", lang), color="dark", className="me-2 tariff-retired")
                            if retired else None,
                            html.Span(t("tariffs.meters", lang, n=x["meters"]), className="small text-muted")]),
            dbc.Table([html.Thead(html.Tr([html.Th(t("tariffs.col_version", lang)),
                                           html.Th(t("tariffs.col_valid_from", lang)),
                                           html.Th(t("tariffs.col_prices", lang)),
                                           html.Th(t("tariffs.col_by", lang))])),
                       html.Tbody(rows)], size="sm", responsive=True, className="small mb-0"),
        ], className="mb-2" + (" opacity-75 tariff-retired-card" if retired else ""), id=ID.card(x['id'])))
    return cards


def version_form(tariffs: list[dict], lang: str) -> dbc.Card:
    targets = target_options(tariffs, lang)
    modes = [{"label": t(f"tariffs.mode.{m}", lang), "value": m} for m in ("flat", "tou", "tiered")]
    price_inputs = [field(t(f"tariffs.price_{n}", lang), dbc.Input(id=ID.price(n), inputMode="decimal",
                                                                  autoComplete="off"), ID.price(n), xs=6, md=3)
                    for n in PRICE_NAMES]
    tiers = [dbc.Row([
        field(t("tariffs.tier_bound", lang, n=i + 1), dbc.Input(id=ID.tier_bound(i), inputMode="numeric",
                                                              autoComplete="off",
                                                              placeholder=t("tariffs.no_bound", lang)
                                                              if i == MAX_TIERS - 1 else ""), ID.tier_bound(i), xs=6),
        field(t("tariffs.tier_price", lang, n=i + 1), dbc.Input(id=ID.tier_price(i), inputMode="decimal",
                                                              autoComplete="off"), ID.tier_price(i), xs=6),
    ], className="g-2 mb-1") for i in range(MAX_TIERS)]
    return dbc.Card(dbc.CardBody([
        html.H2(t("tariffs.edit_heading", lang), className="h6"),
        dbc.Row([
            field(t("tariffs.target", lang), dbc.Select(id=ID.TARGET, options=targets, value=NEW), ID.TARGET,
                  xs=12, md=6),
            field(t("tariffs.valid_from", lang), dbc.Input(id=ID.VALID_FROM, type="datetime-local"), ID.VALID_FROM,
                  xs=12, md=6),
        ], className="g-2 mb-2"),
        html.Div(dbc.Row([
            field(t("tariffs.name", lang), dbc.Input(id=ID.NAME, autoComplete="off", maxLength=100), ID.NAME,
                  xs=12, md=6),
            field(t("tariffs.mode_label", lang), dbc.RadioItems(id=ID.MODE, options=modes, value="flat", inline=True),
                  ID.MODE, xs=12, md=6),
        ], className="g-2 mb-2"), id=ID.NEW_ONLY),
        html.Div(dbc.Row(field(t("tariffs.price_flat_only", lang), dbc.Input(id=ID.FLAT_PRICE, inputMode="decimal",
                                                                            autoComplete="off"),
                               ID.FLAT_PRICE, xs=12, md=4), className="g-2 mb-2"), id=ID.FLAT_BOX),
        html.Div([dbc.Row(price_inputs, className="g-2 mb-2"),
                  field(t("tariffs.segments", lang, most=MAX_SEGMENTS),
                        dbc.Textarea(id=ID.SEGMENTS, rows=6, placeholder=SEGMENT_EXAMPLE, className="font-monospace"),
                        ID.SEGMENTS),
                  html.P(t("tariffs.segments_help", lang), className="form-text")],
                 id=ID.TOU_BOX, style={"display": "none"}),
        html.Div([*tiers, html.P(t("tariffs.tiers_help", lang), className="form-text")], id=ID.TIER_BOX,
                 style={"display": "none"}),
        html.P(t("tariffs.versions_help", lang), className="form-text"),
        html.P(t("tariffs.scheduled_help", lang), className="form-text"),
        dbc.Button(t("tariffs.save", lang), id=ID.SAVE, color="primary"),
        dcc.ConfirmDialog(id=ID.ZERO_CONFIRM),
        html.Div(id=ID.SAVE_RESULT, role="status", className="mt-2"),
    ]), className="mb-3")


def manage_form(tariffs: list[dict], lang: str) -> dbc.Card:
    """Rename a tariff, or retire one no meter bills by (tariff.edit)."""
    return dbc.Card(dbc.CardBody([
        html.H2(t("tariffs.manage_heading", lang), className="h6"),
        dbc.Row([
            field(t("tariffs.manage_tariff", lang), dbc.Select(id=ID.MANAGE_TARIFF, options=tariff_options(tariffs)),
                  ID.MANAGE_TARIFF, xs=12, md=6),
            field(t("tariffs.new_name", lang), dbc.InputGroup([
                dbc.Input(id=ID.NEW_NAME, autoComplete="off", maxLength=100),
                dbc.Button(t("tariffs.rename", lang), id=ID.RENAME, color="secondary")]), ID.NEW_NAME, xs=12, md=6),
        ], className="g-2 mb-2"),
        html.P(t("tariffs.retire_help", lang), className="form-text"),
        dcc.ConfirmDialogProvider(dbc.Button(t("tariffs.retire", lang), id=ID.RETIRE, color="danger", outline=True),
                                  id=ID.RETIRE_CONFIRM, message=t("tariffs.retire_confirm", lang)),
        html.Div(id=ID.MANAGE_RESULT, role="status", className="mt-2"),
    ]), className="mb-3")


def push_form(tariffs: list[dict], buildings: list[str], lang: str) -> dbc.Card:
    options = tariff_options(tariffs)
    return dbc.Card(dbc.CardBody([
        html.H2(t("tariffs.push_heading", lang), className="h6"),
        dbc.Row([
            field(t("tariffs.tariff", lang), dbc.Select(id=ID.PUSH_TARIFF, options=options,
                                                       value=options[0]["value"] if options else None),
                  ID.PUSH_TARIFF, xs=12, md=6),
            field(t("tariffs.scope", lang), dbc.RadioItems(id=ID.SCOPE, value="tariff", options=[
                {"label": t("tariffs.scope_tariff", lang), "value": "tariff"},
                {"label": t("tariffs.scope_building", lang), "value": "building"},
                {"label": t("tariffs.scope_list", lang), "value": "list"}]), ID.SCOPE, xs=12, md=6),
        ], className="g-2 mb-2"),
        dbc.Row([
            field(t("tariffs.building", lang), dcc.Dropdown(id=ID.PUSH_BUILDING, options=buildings,
                                                           placeholder=t("accounts.choose", lang)),
                  ID.PUSH_BUILDING, xs=12, md=6),
            field(t("tariffs.meter_list", lang), dbc.Textarea(id=ID.PUSH_METERS, rows=2),
                  ID.PUSH_METERS, xs=12, md=6),
        ], className="g-2 mb-2"),
        dbc.Checkbox(id=ID.ASSIGN, value=False, label=t("tariffs.assign", lang), className="mb-2"),
        dbc.Button(t("tariffs.push", lang), id=ID.PUSH, color="warning"),
        html.Div(id=ID.PUSH_RESULT, role="status", className="mt-2"),
        html.Div(id=ID.BATCH_VIEW),
        dcc.Store(id=ID.BATCH),
        dcc.Interval(id=ID.TICK, interval=1500, disabled=True),
    ]), className="mb-3")


def batch_view(status: dict, lang: str) -> html.Div:
    """billing.desk.batch_status: count per state, then each command (the first 50)."""
    counts = status["counts"]
    order = ("queued", "sent", "acked", "failed", "expired")
    rows = status["commands"][:50]
    return html.Div([
        html.Div([html.Span(t("tariffs.batch", lang, batch=status["batch_id"]), className="small me-2")]
                 + [html.Span([state_badge(s, lang), html.Span(str(counts[s]), className=f"me-2 batch-{s}")])
                    for s in order if counts.get(s)],
                 className="d-flex flex-wrap align-items-center mb-1", id=ID.BATCH_COUNTS,
                 **{"data-done": "1" if status["done"] else "0"}),
        html.Details([
            html.Summary(t("tariffs.commands", lang, n=len(status["commands"])), className="small"),
            dbc.Table(html.Tbody([html.Tr([html.Td(r["meter_address"], className="font-monospace"),
                                           html.Td(state_badge(r["state"], lang)), html.Td(r["result"] or "")])
                                  for r in rows]), size="sm", className="small mb-0"),
        ]) if rows else None,
    ], className="mt-2")


def tariffs_page(tariffs: list[dict], buildings: list[str], lang: str, *, may_edit: bool,
                 may_push: bool) -> dbc.Container:
    # Both forms are always in the page, hidden from an operator who may not use them: saving, renaming and
    # retiring refresh the tariff choices of both, and Dash needs every output to exist.
    right = [html.Div([version_form(tariffs, lang), manage_form(tariffs, lang)], id=ID.EDIT_BOX,
                      style=None if may_edit else {"display": "none"}),
             html.Div(push_form(tariffs, buildings, lang), id=ID.PUSH_BOX,
                      style=None if may_push else {"display": "none"})]
    return dbc.Container([
        html.H1(t("tariffs.heading", lang), className="h4"),
        dbc.Row([dbc.Col(html.Div(tariff_cards(tariffs, lang), id=ID.LIST), xs=12, lg=6),
                 dbc.Col(right, xs=12, lg=6)]),
        dcc.Store(id=ID.MODES, data={str(x["id"]): x["mode"] for x in tariffs}),
    ], fluid=True, id=ID.PAGE)

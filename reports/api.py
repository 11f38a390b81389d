"""The reports API: GET /api/v1/reports/<name> (token scope `reports`, read only), registered on the JSON API's
blueprint (billing.api.payment_api(ctx, extensions=...)) so it shares its authentication, operation log and
errors in the client's language; and its part of the OpenAPI description."""
from __future__ import annotations

from flask import Blueprint, request

from reports.registry import REPORTS, ReportEnv
from reports.render import json_rows, run_report
from reports.spec import PARAMETERS

API_SCOPE = "reports"


class ReportsApi:
    """The reports API's routes and their OpenAPI paths, for billing.api.payment_api(ctx, extensions=...)."""

    def __init__(self, env: ReportEnv):
        self.env = env

    def routes(self, bp: Blueprint, helpers) -> None:
        env = self.env

        @bp.get("/reports/<name>")
        def report(name: str):  # noqa: ANN202
            helpers.require_scope(API_SCOPE)
            lang = helpers.lang()
            raw = {k: v for k, v in request.args.items() if k != "lang"}
            result = run_report(env, name, raw, lang)
            return helpers.json(200, {"rows": json_rows(result, env.ctx.tz, api=True)})

    def openapi_paths(self, lang_parameter: dict, error: dict) -> dict:
        params = [{"name": p, "in": "query", "required": False, "schema": {"type": "string"}}
                  for p in PARAMETERS if p not in ("place",)]
        for p in params:
            if p["name"] in ("from", "to"):
                p["schema"] = {"type": "string", "format": "date", "example": "2026-11-01"}
                p["description"] = "a local day of the site, both ends inclusive"
        described = "; ".join(
            f"{s.name}: {', '.join(sorted(s.takes | ({'building', 'floor', 'room'} if 'place' in s.takes else set()) - {'place'}))}"
            + (f" (by: {', '.join(s.by)})" if s.by else "") + (f" (group: {', '.join(s.groups)})" if s.groups else "")
            for s in REPORTS.values())
        return {"/reports/{name}": {"get": {
            "operationId": "getReport", "summary": "A report's rows (scope reports; read only)",
            "description": "Reports and what each reads: " + described + ". Days are the site's local days "
                           "(2026-11-01), both ends inclusive. Money is a string with two decimals, kWh a number "
                           "with two decimals, times the site's local time with its offset. Examples: "
                           "GET /reports/energy?from=2026-11-01&to=2026-11-07&by=day&group=floor&building=Building%201"
                           " answers {\"rows\": [{\"period\": \"2026-11-01\", \"building\": \"Building 1\", "
                           "\"floor\": 1, \"energy_kwh\": 123.45, \"estimated\": false}]}; "
                           "GET /reports/sales?from=2026-11-01&to=2026-11-30&by=day answers rows of period, sales, "
                           "refunds, reversals, net (strings) and count. "
                           "GET /reports/line-loss?from=2026-11-01&to=2026-11-30&by=day (or by=month) answers per "
                           "transformer area and period {\"period\": \"2026-11-01\", \"area\": \"Area B1\", "
                           "\"supply_kwh\": 812.4, \"sales_kwh\": 781.9, \"loss_kwh\": 30.5, \"loss_rate\": 0.0375, "
                           "\"class\": \"qualified\", \"interpolated\": false, \"missing_meters\": \"\"}: supply is the "
                           "master meter's energy times its CT ratio, sales its customer meters', both on the registers "
                           "at local midnight (interpolated between the readings around it when there is none, and "
                           "marked); loss_rate is a fraction of the supply; class is qualified, high (above the site's "
                           "limit, 10 % unless configured), negative or not_computable (missing_meters names the meters "
                           "without a register). A payment or control client answers 403 "
                           "scope_missing; an unreadable parameter 400 with the reason.",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string", "enum": list(REPORTS)}}, *params, lang_parameter],
            "responses": {"200": {"description": "the rows", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"rows": {"type": "array", "items": {"type": "object"}}}}}}},
                "400": error, "401": error, "403": error, "404": error}}}}

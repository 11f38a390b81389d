/* Money and energy in AG Grid cells, in the same text core/formatting.py writes on the server: format_money's
   "¥1,234.50" / "−¥1,234.50" (a true minus, U+2212) and format_energy(unit=False)'s "1,234.56"; "—" when nothing
   is known. Registered as dash-ag-grid functions, so a column says
   {"valueFormatter": {"function": "wlMoney(params.value)"}} (Dash serves every file under assets/: no inline
   script, CSP). Money comes as integer fen (the wire's money), so no float ever touches the yuan and cents. */
(function () {
  "use strict";
  var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});
  var NOTHING = "\u2014";
  var CURRENCY = "\u00a5";
  var MINUS = "\u2212";

  function known(value) {
    if (value === null || value === undefined || value === "" || typeof value === "boolean") { return null; }
    var n = typeof value === "number" ? value : Number(value);
    return isFinite(n) ? n : null;
  }

  function grouped(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /* Integer fen -> "¥1,234.50", "−¥1,234.50", "¥0.00"; a fraction of a fen rounds half away from zero. */
  function wlMoney(fen) {
    var n = known(fen);
    if (n === null) { return NOTHING; }
    var whole = Math.round(Math.abs(n));      // the fen, as a whole number (NUMERIC(14,2) fits 2^53 easily)
    var digits = String(whole);
    while (digits.length < 3) { digits = "0" + digits; }
    var text = CURRENCY + grouped(digits.slice(0, -2)) + "." + digits.slice(-2);
    return n < 0 && whole !== 0 ? MINUS + text : text;
  }

  /* kWh -> "1,234.56" (2 decimals unless told): rounded as Python's round() does, half to even on an exact tie. */
  function wlEnergy(kwh, decimals) {
    var n = known(kwh);
    if (n === null) { return NOTHING; }
    var places = decimals === undefined ? 2 : decimals;
    var size = Math.abs(n);
    var text = size.toFixed(places);            // the exact binary value, correctly rounded; ties go up
    var doubled = size * Math.pow(2, places + 1);
    if (doubled % 2 === 1 && Math.abs(size * Math.pow(10, places) % 1 - 0.5) < 1e-9) {
      // an exact tie (size is odd / 2^(places + 1)): Python keeps the even last digit, toFixed went up
      var last = Number(text.charAt(text.length - 1));
      if (last % 2 === 1) { text = (size - Math.pow(10, -places) / 2).toFixed(places); }
    }
    var parts = text.split(".");
    var out = grouped(parts[0]) + (parts.length > 1 ? "." + parts[1] : "");
    return n < 0 && /[1-9]/.test(text) ? MINUS + out : out;
  }

  dagfuncs.wlMoney = wlMoney;
  dagfuncs.wlEnergy = wlEnergy;
}());

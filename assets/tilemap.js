/* TileMap (dashboard/components/tilemap.py): the overview's meter map as one Dash component.
   Tiles are plain React buttons, so 10,000 of them render in one pass; a Dash Patch of
   `buildings` keeps every untouched floor object, and React.memo skips those floors. */
(function () {
  "use strict";
  var React = window.React;
  if (!React) { return; }
  var h = React.createElement;
  var STATE = {"N": "normal", "1": "alarm1", "2": "alarm2", "A": "arrears", "O": "not_opened", "L": "lost"};

  function ariaLabel(template, tile, label) {
    var values = {room: tile[1], address: tile[2], state: label || ""};
    return template.replace(/\{(room|address|state)\}/g, function (_, key) { return values[key]; });
  }

  var Floor = React.memo(function Floor(p) {
    var tiles = p.floor.tiles.map(function (tile) {
      var code = tile[3];
      return h("button", {
        key: tile[0], type: "button", className: "ov-tile st-" + (STATE[code] || "lost"),
        "data-meter": tile[0], "aria-label": ariaLabel(p.template, tile, p.labels[code]), onClick: p.onPick,
        tabIndex: -1
      }, tile[1]);
    });
    return h("div", {className: "ov-floor"},
      h("div", {className: "ov-floor-label"}, p.floor.label),
      h("div", {className: "ov-tiles"}, tiles));
  });

  var Building = React.memo(function Building(p) {
    return h("section", {className: "ov-building"},
      h("h2", {className: "ov-building-name"}, p.building.name),
      h("div", {className: "ov-floors"}, p.building.floors.map(function (floor, i) {
        return h(Floor, {key: i, floor: floor, labels: p.labels, template: p.template, onPick: p.onPick});
      })));
  });

  /* Keyboard: one tile of the map is in the tab order (roving tabindex), so Tab passes 10,000 tiles
     in one step; arrows move between tiles (left/right within the order, up/down to the floor above or
     below at the same position), Home/End to the first/last tile of a floor, Enter/Space pick. */
  function tilesOf(el) { return el ? el.querySelectorAll("button.ov-tile") : []; }

  function rove(map, tile) {
    var current = map.querySelector('button.ov-tile[tabindex="0"]');
    if (current && current !== tile) { current.setAttribute("tabindex", "-1"); }
    tile.setAttribute("tabindex", "0");
  }

  function neighbour(tile, key) {
    var row = tile.parentNode;
    var inRow = Array.prototype.indexOf.call(row.children, tile);
    if (key === "Home") { return row.firstElementChild; }
    if (key === "End") { return row.lastElementChild; }
    if (key === "ArrowLeft" || key === "ArrowRight") {
      var all = tilesOf(tile.closest(".ov-map") || document);
      var at = Array.prototype.indexOf.call(all, tile) + (key === "ArrowRight" ? 1 : -1);
      return all[at] || null;
    }
    var rows = Array.prototype.slice.call((tile.closest(".ov-map") || document).querySelectorAll(".ov-tiles"));
    var other = rows[rows.indexOf(row) + (key === "ArrowDown" ? 1 : -1)];
    if (!other || !other.children.length) { return null; }
    return other.children[Math.min(inRow, other.children.length - 1)];
  }

  function TileMap(props) {
    var setProps = props.setProps;
    var ref = React.useRef(null);
    React.useEffect(function () {   // after every render: exactly one tile can be reached with Tab
      var map = ref.current;
      if (map && !map.querySelector('button.ov-tile[tabindex="0"]')) {
        var first = tilesOf(map)[0];
        if (first) { first.setAttribute("tabindex", "0"); }
      }
    });
    var onKeyDown = React.useCallback(function (event) {
      var tile = event.target;
      if (!tile.classList || !tile.classList.contains("ov-tile")) { return; }
      var keys = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"];
      if (keys.indexOf(event.key) < 0) { return; }
      var next = neighbour(tile, event.key);
      event.preventDefault();
      if (next) { rove(ref.current, next); next.focus(); }
    }, []);
    var onFocus = React.useCallback(function (event) {
      var tile = event.target;
      if (tile.classList && tile.classList.contains("ov-tile")) { rove(ref.current, tile); }
    }, []);
    var onPick = React.useCallback(function (event) {
      var meter = Number(event.currentTarget.getAttribute("data-meter"));
      if (setProps) { setProps({selected: {meter: meter, at: Date.now()}}); }
    }, [setProps]);
    var buildings = props.buildings || [];
    var labels = props.labels || {};
    var template = props.template || "{room} {address}: {state}";
    var body = buildings.length ? buildings.map(function (building, i) {
      return h(Building, {key: building.name + ":" + i, building: building, labels: labels, template: template, onPick: onPick});
    }) : h("p", {className: "text-muted my-3"}, props.emptyText || "");
    return h("div", {id: props.id, className: props.className || "ov-map", role: "region", ref: ref,
                     "aria-label": props.ariaLabel, onKeyDown: onKeyDown, onFocus: onFocus}, body);
  }

  window.wattline_components = Object.assign(window.wattline_components || {}, {TileMap: TileMap});
})();

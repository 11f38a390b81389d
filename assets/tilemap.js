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
        "data-meter": tile[0], "aria-label": ariaLabel(p.template, tile, p.labels[code]), onClick: p.onPick
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

  function TileMap(props) {
    var setProps = props.setProps;
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
    return h("div", {id: props.id, className: props.className || "ov-map", role: "region",
                     "aria-label": props.ariaLabel}, body);
  }

  window.wattline_components = Object.assign(window.wattline_components || {}, {TileMap: TileMap});
})();

// The Space page's map: side-by-side scatter panels (one per run) drawn with plotly.js, with
// a hover card showing the item's thumbnail or text (what st.plotly_chart cannot show), a click
// that makes a point the anchor and a box/lasso that selects items. It speaks Streamlit's
// component protocol by hand (no npm build): componentReady, render, setComponentValue,
// setFrameHeight, all through window.parent.postMessage.
(function () {
  "use strict";

  const mapDiv = document.getElementById("map");
  const tip = document.getElementById("tip");
  const tipCanvas = document.getElementById("tip-thumb");
  const TIP_SIZE = 96; // px: the longer side of the hover thumbnail

  let args = null; // the last render's arguments
  let drawn = null; // the revision drawn, so an unchanged rerun redraws nothing
  let atlases = []; // per panel: an <img> of its thumbnail atlas, or null
  let handlersBound = false;

  function send(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data), "*");
  }

  function setValue(value) {
    // A fresh token per gesture: the same point clicked twice is two events, and a value that
    // Streamlit hands back on a rerun is recognised as already handled.
    value.event = Date.now() + "-" + Math.random().toString(36).slice(2, 8);
    send("streamlit:setComponentValue", { value: value, dataType: "json" });
  }

  function setHeight() {
    send("streamlit:setFrameHeight", { height: document.documentElement.scrollHeight });
  }

  function hasWebGL() {
    try {
      const canvas = document.createElement("canvas");
      return !!(canvas.getContext("webgl") || canvas.getContext("experimental-webgl"));
    } catch (e) {
      return false;
    }
  }
  const WEBGL = hasWebGL();

  function axisName(p, letter) {
    return letter + "axis" + (p === 0 ? "" : p + 1);
  }

  function buildFigure(a) {
    const panels = a.panels;
    const cols = Math.min(3, panels.length);
    const rows = Math.ceil(panels.length / cols);
    const gap = 0.01;
    const vgap = rows > 1 ? 0.04 : 0;
    const layout = {
      height: a.height * rows + 50,
      margin: { l: 10, r: 10, t: 40, b: 10 },
      plot_bgcolor: "#fafafa",
      showlegend: true,
      legend: { orientation: "h", y: -0.01, yanchor: "top", x: 0 },
      dragmode: "lasso",
      hovermode: "closest",
      // The user's zoom and tool survive a redraw (a new anchor recolours the points) as long as
      // the same runs and space are shown.
      uirevision: a.view,
      annotations: [],
    };
    const traces = [];
    const seen = new Set();
    panels.forEach(function (panel, p) {
      const r = Math.floor(p / cols);
      const c = p % cols;
      const xa = axisName(p, "x");
      const ya = axisName(p, "y");
      const xd = [c / cols + gap, (c + 1) / cols - gap];
      const yd = [1 - (r + 1) / rows + vgap, 1 - r / rows - vgap];
      layout[xa] = {
        domain: xd, anchor: "y" + (p === 0 ? "" : p + 1),
        showticklabels: false, showgrid: false, zeroline: false,
      };
      layout[ya] = {
        domain: yd, anchor: "x" + (p === 0 ? "" : p + 1),
        showticklabels: false, showgrid: false, zeroline: false,
      };
      if (p > 0) {
        // shared axes: the maps are aligned, so one zoom applies to every panel
        layout[xa].matches = "x";
        layout[ya].matches = "y";
      }
      layout.annotations.push({
        text: panel.title, showarrow: false, xref: "paper", yref: "paper",
        x: (xd[0] + xd[1]) / 2, y: yd[1], xanchor: "center", yanchor: "bottom",
        font: { size: 14 },
      });
      const xref = "x" + (p === 0 ? "" : p + 1);
      const yref = "y" + (p === 0 ? "" : p + 1);
      const kind = panel.x.length > a.gl_above && WEBGL ? "scattergl" : "scatter";
      if (panel.faint && panel.faint.x.length) {
        traces.push({
          type: kind, mode: "markers", x: panel.faint.x, y: panel.faint.y, xaxis: xref, yaxis: yref,
          marker: { color: "#e4e4e4", size: 5 }, name: "filtered out", legendgroup: "filtered",
          showlegend: !seen.has("filtered"), hoverinfo: "skip",
        });
        seen.add("filtered");
      }
      const selected = new Set(panel.selected || []);
      a.categories.forEach(function (cat, ci) {
        const ks = [];
        for (let k = 0; k < panel.cat.length; k++) if (panel.cat[k] === ci) ks.push(k);
        if (!ks.length) return;
        const trace = {
          type: kind, mode: "markers", xaxis: xref, yaxis: yref,
          x: ks.map(function (k) { return panel.x[k]; }),
          y: ks.map(function (k) { return panel.y[k]; }),
          customdata: ks, meta: p, name: cat.name, legendgroup: "c" + ci,
          showlegend: !seen.has(ci), hoverinfo: "none",
          marker: { color: cat.colour, size: 8, opacity: 0.85, line: { width: 0 } },
          selected: { marker: { opacity: 1 } },
          unselected: { marker: { opacity: 0.2 } },
        };
        if (panel.selected) {
          trace.selectedpoints = [];
          ks.forEach(function (k, i) { if (selected.has(k)) trace.selectedpoints.push(i); });
        }
        traces.push(trace);
        seen.add(ci);
      });
      if (panel.anchor) {
        // An open star on top, a little larger than a point: it marks the anchor without hiding
        // the R2 neighbours that sit on it.
        traces.push({
          type: "scatter", mode: "markers", x: [panel.anchor[0]], y: [panel.anchor[1]],
          xaxis: xref, yaxis: yref, name: "anchor", legendgroup: "anchor",
          showlegend: !seen.has("anchor"), hoverinfo: "skip",
          marker: { symbol: "star-open", size: 14, color: "black", line: { color: "black", width: 2 } },
        });
        seen.add("anchor");
      }
    });
    return { data: traces, layout: layout };
  }

  const images = {}; // atlas file -> <img>: each file is fetched once per page

  function loadAtlases(a) {
    atlases = a.panels.map(function (panel) {
      if (!panel.atlas) return null;
      const src = panel.atlas.src;
      if (!images[src]) {
        images[src] = new Image();
        images[src].src = src; // beside index.html in the component's folder
      }
      return images[src];
    });
  }

  function showTip(p, k, event) {
    const panel = args.panels[p];
    const atlas = panel.atlas;
    tip.querySelector(".labels").textContent = "{" + panel.labels[k] + "}";
    tip.querySelector(".text").textContent = panel.texts ? panel.texts[k] : "";
    tip.querySelector(".item").textContent = "item " + panel.rows[k] + " · id " + panel.ids[k];
    const img = atlases[p];
    if (atlas && img && img.complete) {
      const scale = TIP_SIZE / Math.max(atlas.w, atlas.h);
      tipCanvas.width = Math.round(atlas.w * scale);
      tipCanvas.height = Math.round(atlas.h * scale);
      const ctx = tipCanvas.getContext("2d");
      ctx.imageSmoothingEnabled = false; // small thumbnails stay crisp pixels
      const sx = (k % atlas.cols) * atlas.w;
      const sy = Math.floor(k / atlas.cols) * atlas.h;
      ctx.clearRect(0, 0, tipCanvas.width, tipCanvas.height);
      ctx.drawImage(img, sx, sy, atlas.w, atlas.h, 0, 0, tipCanvas.width, tipCanvas.height);
      tipCanvas.style.display = "block";
    } else {
      tipCanvas.style.display = "none";
    }
    tip.style.display = "block";
    const x = event ? event.clientX : 0;
    const y = event ? event.clientY : 0;
    const w = tip.offsetWidth;
    const h = tip.offsetHeight;
    // beside the cursor, flipped to the other side near the frame's right or bottom edge
    tip.style.left = (x + 16 + w > window.innerWidth ? Math.max(0, x - 16 - w) : x + 16) + "px";
    tip.style.top = (y + 16 + h > window.innerHeight ? Math.max(0, y - 16 - h) : y + 16) + "px";
    tip.dataset.item = String(panel.rows[k]);
    tip.dataset.run = panel.run;
  }

  function bindHandlers() {
    if (handlersBound) return;
    handlersBound = true;
    mapDiv.on("plotly_hover", function (ev) {
      const pt = ev.points && ev.points[0];
      if (!pt || typeof pt.data.meta !== "number") return;
      showTip(pt.data.meta, pt.customdata, ev.event);
    });
    mapDiv.on("plotly_unhover", function () {
      tip.style.display = "none";
    });
    mapDiv.on("plotly_click", function (ev) {
      const pt = ev.points && ev.points[0];
      if (!pt || typeof pt.data.meta !== "number") return;
      const panel = args.panels[pt.data.meta];
      setValue({ anchor: panel.rows[pt.customdata], run: panel.run });
    });
    mapDiv.on("plotly_selected", function (ev) {
      // plotly sends an empty or missing event when a click clears the selection: only a drawn
      // box or lasso with points in it is a selection.
      if (!ev || !ev.points || !ev.points.length) return;
      const items = ev.points.filter(function (pt) { return typeof pt.data.meta === "number"; });
      if (!items.length) return;
      const p = items[0].data.meta;
      const panel = args.panels[p];
      const rows = items
        .filter(function (pt) { return pt.data.meta === p; })
        .map(function (pt) { return panel.rows[pt.customdata]; });
      setValue({ selected: rows.sort(function (a, b) { return a - b; }), run: panel.run });
    });
  }

  // Where a point is drawn, in the frame's client pixels (for browser tests and benchmarks,
  // which cannot find WebGL points in the DOM).
  window.spaceMapPanelSize = function (p) {
    return args.panels[p].x.length;
  };
  window.spaceMapPoint = function (p, k) {
    const full = mapDiv._fullLayout;
    const xa = full[axisName(p, "x")];
    const ya = full[axisName(p, "y")];
    const panel = args.panels[p];
    const box = mapDiv.getBoundingClientRect();
    return {
      x: box.left + xa._offset + xa.l2p(panel.x[k]),
      y: box.top + ya._offset + ya.l2p(panel.y[k]),
      row: panel.rows[k],
    };
  };

  function render(a) {
    args = a;
    if (!window.Plotly || drawn === a.revision) return;
    loadAtlases(a);
    const loading = document.getElementById("loading");
    if (loading) loading.remove();
    const fig = buildFigure(a);
    const config = { responsive: true, scrollZoom: true, displaylogo: false };
    Plotly.react(mapDiv, fig.data, fig.layout, config).then(function () {
      drawn = a.revision;
      document.body.dataset.revision = a.revision;
      document.body.dataset.panels = String(a.panels.length);
      bindHandlers();
      setHeight();
    });
  }

  window.addEventListener("message", function (event) {
    const data = event.data;
    if (data && data.type === "streamlit:render") render(data.args);
  });
  window.addEventListener("resize", setHeight);
  // Ready at once, plotly.js (4.8 MB, copied next to this file from the installed plotly package:
  // no network) loaded after: on a busy machine parsing it takes seconds, and Streamlit warns
  // about a component that is not ready within 15 s. A render that arrives first is drawn when
  // plotly.js is there.
  send("streamlit:componentReady", { apiVersion: 1 });
  send("streamlit:setFrameHeight", { height: 440 });
  const plotlyScript = document.createElement("script");
  plotlyScript.src = "plotly.min.js";
  plotlyScript.onload = function () {
    if (args) render(args);
  };
  document.head.appendChild(plotlyScript);
})();

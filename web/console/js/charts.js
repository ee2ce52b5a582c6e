// Charts in plain SVG: vertical bars (a series over days or categories), a line with points (a score over
// days, gaps where a day has none) and horizontal bars. Each chart is an <svg role="img"> named by its title,
// with a data table beside it for screen readers; every mark carries data-key and data-value.

import { h, svg } from "./dom.js";

const WIDTH = 360;
const HEIGHT = 180;
const PAD = { top: 12, right: 12, bottom: 34, left: 36 };

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function frame(id, title) {
  return svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${id}-title`, id, class: "chart" },
    svg("title", { id: `${id}-title` }, title));
}

function axis(chart, max, ticks = 4, format = (v) => String(v)) {
  const inner = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= ticks; i += 1) {
    const value = (max / ticks) * i;
    const y = PAD.top + inner - (inner * i) / ticks;
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, format(Number(value.toFixed(2)))));
  }
}

function dataTable(caption, rows, header) {
  return h("table", { class: "visually-hidden" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, header[0]), h("th", { scope: "col" }, header[1]))),
    h("tbody", {}, ...rows.map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, value ?? "none")))));
}

/** Vertical bars: items [{key, label, value}]. */
export function barChart(id, title, items, { valueName = "count" } = {}) {
  const chart = frame(id, title);
  const max = niceMax(Math.max(0, ...items.map((i) => i.value)));
  axis(chart, max, max <= 5 ? max : 5, (v) => (Number.isInteger(v) ? String(v) : ""));
  const inner = { w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  const slot = inner.w / Math.max(1, items.length);
  items.forEach((item, index) => {
    const height = (inner.h * item.value) / max;
    const x = PAD.left + slot * index + slot * 0.15;
    const y = PAD.top + inner.h - height;
    chart.append(svg("rect", { x, y, width: slot * 0.7, height, class: `bar bar-${index % 6}`,
      "data-key": item.key, "data-value": item.value }, svg("title", {}, `${item.label}: ${item.value}`)));
    chart.append(svg("text", { x: x + slot * 0.35, y: HEIGHT - PAD.bottom + 14, "text-anchor": "middle", class: "tick" }, item.label));
    if (item.value > 0) chart.append(svg("text", { x: x + slot * 0.35, y: y - 3, "text-anchor": "middle", class: "value" }, item.value));
  });
  return h("figure", { class: "chart-figure" }, chart, h("figcaption", {}, title),
    dataTable(title, items.map((i) => [i.label, i.value]), ["", valueName]));
}

/** A line over days with points; null values leave a gap. items [{key, label, value|null}], scale 0..max. */
export function lineChart(id, title, items, { max = 5, valueName = "score" } = {}) {
  const chart = frame(id, title);
  axis(chart, max, 5);
  const inner = { w: WIDTH - PAD.left - PAD.right, h: HEIGHT - PAD.top - PAD.bottom };
  const slot = inner.w / Math.max(1, items.length);
  let path = "";
  let drawing = false;
  items.forEach((item, index) => {
    const x = PAD.left + slot * index + slot / 2;
    chart.append(svg("text", { x, y: HEIGHT - PAD.bottom + 14, "text-anchor": "middle", class: "tick" }, item.label));
    if (item.value === null || item.value === undefined) { drawing = false; return; }
    const y = PAD.top + inner.h - (inner.h * item.value) / max;
    path += `${drawing ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
    drawing = true;
    chart.append(svg("circle", { cx: x, cy: y, r: 4, class: "point", "data-key": item.key, "data-value": item.value },
      svg("title", {}, `${item.label}: ${item.value}`)));
  });
  if (path) chart.insertBefore(svg("path", { d: path.trim(), class: "line" }), chart.querySelector("circle"));
  return h("figure", { class: "chart-figure" }, chart, h("figcaption", {}, title),
    dataTable(title, items.map((i) => [i.label, i.value]), ["day", valueName]));
}

/** Horizontal bars for a breakdown: items [{key, label, value}]. */
export function breakdownChart(id, title, items) {
  const rowHeight = 24;
  const height = PAD.top + rowHeight * items.length + 8;
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-labelledby": `${id}-title`, id, class: "chart" },
    svg("title", { id: `${id}-title` }, title));
  const max = Math.max(1, ...items.map((i) => i.value));
  const left = 120;
  const room = WIDTH - left - 40;
  items.forEach((item, index) => {
    const y = PAD.top + rowHeight * index;
    const width = (room * item.value) / max;
    chart.append(svg("text", { x: left - 8, y: y + 15, "text-anchor": "end", class: "tick" }, item.label),
      svg("rect", { x: left, y: y + 3, width, height: rowHeight - 8, class: `bar bar-${index % 6}`,
        "data-key": item.key, "data-value": item.value }, svg("title", {}, `${item.label}: ${item.value}`)),
      svg("text", { x: left + width + 6, y: y + 15, class: "value" }, item.value));
  });
  return h("figure", { class: "chart-figure" }, chart, h("figcaption", {}, title),
    dataTable(title, items.map((i) => [i.label, i.value]), ["", "count"]));
}

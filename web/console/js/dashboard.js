// The dashboard: every figure of GET /api/support/dashboard (docs/api.md, "Dashboard and analytics"), and charts of
// the last week's ticket volume and satisfaction, tickets by status, priority and category, and agent availability.

import { barChart, breakdownChart, lineChart } from "./charts.js";
import { dateTime, duration, h, label, notify } from "./dom.js";

const COUNTS = [
  ["totalTickets", "Tickets"],
  ["openTickets", "Open tickets"],
  ["resolvedTickets", "Resolved tickets"],
  ["ticketsCreatedToday", "Tickets created today (UTC)"],
  ["totalChats", "Chats"],
  ["activeChats", "Active chats"],
  ["chatsStartedToday", "Chats started today (UTC)"],
  ["totalAgents", "Agents"],
  ["availableAgents", "Available agents"],
];
const DURATIONS = [
  ["averageResolutionTime", "Average resolution time"],
  ["averageFirstResponseTime", "Average first response time"],
  ["averageChatDuration", "Average chat duration"],
];

function figure(key, name, value, shown) {
  return h("div", { class: "figure", "data-figure": key, "data-value": value === null ? "null" : String(value) },
    h("dt", {}, name), h("dd", {}, shown));
}

function weekday(isoDate) {
  return new Date(`${isoDate}T00:00:00Z`).toLocaleDateString([], { weekday: "short", timeZone: "UTC" });
}

export async function renderDashboard(main, app) {
  const heading = h("h1", { tabindex: "-1" }, "Dashboard");
  const body = h("div", { class: "dashboard", "aria-busy": "true" }, h("p", {}, "Loading the figures…"));
  const refresh = h("button", { type: "button", class: "secondary", onclick: () => renderDashboard(main.replaceChildren() || main, app) }, "Refresh");
  main.append(h("div", { class: "view-header" }, heading, refresh), body);
  let data;
  try {
    data = await app.api.get("/dashboard");
  } catch (error) {
    body.replaceChildren(h("p", {}, `Could not load the dashboard: ${error.message}`));
    notify(`Could not load the dashboard: ${error.message}`);
    return;
  }
  const figures = h("dl", { class: "figures", id: "dashboard-figures" },
    ...COUNTS.map(([key, name]) => figure(key, name, data[key], String(data[key]))),
    ...DURATIONS.map(([key, name]) => figure(key, name, data[key], data[key] === null ? "no data" : duration(data[key]))),
    figure("customerSatisfactionScore", "Customer satisfaction (1-5)", data.customerSatisfactionScore,
      data.customerSatisfactionScore === null ? "no data" : data.customerSatisfactionScore.toFixed(2)));

  const volume = data.ticketVolumeTrendLastWeek.map((d) => ({ key: d.date, label: weekday(d.date), value: d.count }));
  const satisfaction = data.satisfactionTrendLastWeek.map((d) => ({ key: d.date, label: weekday(d.date), value: d.score }));
  const breakdown = (counts) => Object.entries(counts).map(([key, value]) => ({ key, label: label(key), value }));
  const charts = h("div", { class: "charts" },
    barChart("chart-volume", "Tickets created, last 7 days (UTC days)", volume),
    lineChart("chart-satisfaction", "Satisfaction (mean rating), last 7 days (UTC days)", satisfaction),
    breakdownChart("chart-status", "Tickets by status", breakdown(data.ticketsByStatus)),
    breakdownChart("chart-priority", "Tickets by priority", breakdown(data.ticketsByPriority)),
    breakdownChart("chart-category", "Tickets by category", breakdown(data.ticketsByCategory)),
    barChart("chart-availability", "Agents by availability", breakdown(data.agentAvailability), { valueName: "agents" }));

  const recent = h("section", { class: "card", "aria-labelledby": "recent-heading" }, h("h2", { id: "recent-heading" }, "Recent tickets"),
    h("ul", { class: "plain", id: "recent-tickets" }, ...data.recentTickets.map((t) => h("li", { "data-ticket": t.id },
      h("a", { href: `#/tickets/${t.id}` }, t.subject), h("span", { class: "muted" }, ` · ${t.customerName} · ${label(t.status)} · ${dateTime(t.createdAt)}`)))));
  const top = h("section", { class: "card", "aria-labelledby": "top-heading" }, h("h2", { id: "top-heading" }, "Top agents"),
    h("table", { id: "top-agents" }, h("thead", {}, h("tr", {}, ...["Agent", "Resolved", "Average rating", "Status"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...data.topAgents.map((a) => h("tr", { "data-agent": a.id },
        h("td", {}, a.agentName), h("td", {}, a.totalTicketsResolved), h("td", {}, a.averageRating ?? "–"), h("td", {}, a.status))))));
  body.replaceChildren(h("h2", { class: "visually-hidden" }, "Figures"), figures,
    h("h2", {}, "Charts"), charts, h("div", { class: "dashboard-lists" }, recent, top));
  body.setAttribute("aria-busy", "false");
}

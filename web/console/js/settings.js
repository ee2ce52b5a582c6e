// Settings: the SLA policy (GET/PUT /api/support/settings/sla, docs/sla.md): first-response and resolution targets
// per priority, business hours per weekday in a time zone, holidays, and the statuses that pause the clock. Every
// member of the desk reads it; only an admin saves it (the form is read-only for an agent). The whole policy is sent
// at once; a 422 names the fields the API refused.

import { clear, h, label, notify } from "./dom.js";

const PRIORITIES = ["urgent", "high", "medium", "low"];
const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const PAUSABLE = ["open", "in_progress", "waiting_customer"];

/** "09:00-12:00, 13:00-17:00" <-> [{start, end}, ...]; an empty field is a closed day. */
function hoursText(intervals) {
  return intervals.map((i) => `${i.start}-${i.end}`).join(", ");
}

function parseHours(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
    const [start, end] = part.split("-").map((s) => s.trim());
    return { start: start || "", end: end || "" };
  });
}

function minutes(value) {
  const text = String(value).trim();
  return text === "" ? null : Number(text);
}

export async function renderSettings(main, app) {
  const admin = app.me.role === "admin";
  const heading = h("h1", { tabindex: "-1" }, "SLA policy");
  const body = h("div", { class: "settings", "aria-busy": "true" }, h("p", {}, "Loading the policy…"));
  main.append(h("div", { class: "view-header" }, heading), body);
  let policy;
  try {
    policy = await app.api.get("/settings/sla");
  } catch (error) {
    body.replaceChildren(h("p", {}, `Could not load the SLA policy: ${error.message}`));
    notify(`Could not load the SLA policy: ${error.message}`);
    return;
  }
  body.removeAttribute("aria-busy");
  const disabled = !admin;
  const errors = h("ul", { class: "form-errors", id: "sla-errors", role: "alert" });

  const targetRows = PRIORITIES.map((priority) => h("tr", {},
    h("th", { scope: "row" }, label(priority)),
    ...["firstResponseMinutes", "resolutionMinutes"].map((key) => h("td", {},
      h("input", {
        id: `sla-${priority}-${key}`, name: `${priority}.${key}`, type: "number", min: "1", step: "1", disabled,
        value: policy.targets[priority][key] ?? "", "aria-label": `${label(priority)}: ${key === "firstResponseMinutes" ? "first response" : "resolution"} target in minutes`,
      })))));
  const targets = h("table", { class: "sla-targets" },
    h("caption", {}, "Targets in minutes of business time (empty: no target)"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Priority"), h("th", { scope: "col" }, "First response"), h("th", { scope: "col" }, "Resolution"))),
    h("tbody", {}, ...targetRows));

  const hours = h("fieldset", {}, h("legend", {}, "Business hours (local time, for example 09:00-12:00, 13:00-17:00; empty: closed)"),
    ...WEEKDAYS.map((day) => h("p", { class: "field" },
      h("label", { for: `sla-hours-${day}` }, label(day)),
      h("input", { id: `sla-hours-${day}`, name: `hours.${day}`, type: "text", disabled, value: hoursText(policy.businessHours[day]) }))));
  const zone = h("p", { class: "field" }, h("label", { for: "sla-time-zone" }, "Time zone (IANA, for example Europe/Berlin)"),
    h("input", { id: "sla-time-zone", name: "timeZone", type: "text", disabled, value: policy.timeZone }));
  const holidays = h("p", { class: "field" }, h("label", { for: "sla-holidays" }, "Holidays (one date per line, YYYY-MM-DD)"),
    h("textarea", { id: "sla-holidays", name: "holidays", rows: "4", disabled }, policy.holidays.join("\n")));
  const pauses = h("fieldset", {}, h("legend", {}, "Statuses that pause the clock (resolved and closed stop it anyway)"),
    ...PAUSABLE.map((status) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "pause", value: status, disabled, checked: policy.pauseStatuses.includes(status) }), ` ${label(status)}`)));

  const form = h("form", { id: "sla-form", "aria-label": "SLA policy" }, targets, zone, hours, holidays, pauses, errors,
    admin ? h("button", { type: "submit" }, "Save the SLA policy") : h("p", { class: "muted" }, "Only an admin changes the SLA policy."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(errors);
    const data = new FormData(form);
    const next = {
      targets: Object.fromEntries(PRIORITIES.map((p) => [p, {
        firstResponseMinutes: minutes(data.get(`${p}.firstResponseMinutes`)),
        resolutionMinutes: minutes(data.get(`${p}.resolutionMinutes`)),
      }])),
      timeZone: String(data.get("timeZone") || "").trim(),
      businessHours: Object.fromEntries(WEEKDAYS.map((day) => [day, parseHours(String(data.get(`hours.${day}`) || ""))])),
      holidays: String(data.get("holidays") || "").split(/\s+/).filter(Boolean),
      pauseStatuses: data.getAll("pause").map(String),
    };
    try {
      await app.api.put("/settings/sla", next);
      notify("The SLA policy is saved.", "info");
    } catch (error) {
      const details = error.details || [];
      errors.append(...(details.length ? details : [{ field: "", message: error.message }])
        .map((d) => h("li", {}, d.field ? `${d.field}: ${d.message}` : d.message)));
      notify(`The SLA policy was not saved: ${error.message}`);
    }
  });
  body.replaceChildren(form);
}

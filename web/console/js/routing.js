// Routing settings (admin): who gets new and unassigned tickets and chats (GET/PUT /settings/routing: docs/api.md,
// "Routing"). The whole settings are sent on save, as the API takes them; a refusal (422) names the fields, shown
// beside the form. Admins alone read and save them: the nav entry is an admin's (data-admin), and an agent who
// opens #/routing is told so without asking the API (which answers an agent 403).

import { announce, clear, h, notify } from "./dom.js";

const CHANNELS = ["api", "email", "web_form", "chat", "phone", "social"];
const MATCHES = [["category", "Category"], ["channel", "Channel"], ["customField", "Custom field"]];

let rows = 0;

export async function renderRouting(main, app) {
  const heading = h("h1", { id: "routing-title" }, "Routing");
  const status = h("p", { class: "muted", "aria-live": "polite" }, "Loading the routing settings…");
  clear(main).append(heading, status);
  if (app.me.role !== "admin") {
    status.textContent = "Only an admin of the desk sees and edits the routing settings.";
    return;
  }
  let settings;
  try {
    settings = await app.api.get("/settings/routing");
  } catch (error) {
    status.textContent = `Could not load the routing settings: ${error.message}`;
    return;
  }
  status.remove();
  main.append(routingForm(app, settings));
}

function checkbox(id, text, checked) {
  return h("div", { class: "field check" },
    h("input", { type: "checkbox", id, checked: checked || null }), h("label", { for: id }, text));
}

function number(id, text, value, { min, max, hint }) {
  return h("div", { class: "field" }, h("label", { for: id }, text),
    h("input", { type: "number", id, min, max, step: 1, value: value ?? "", inputmode: "numeric",
      "aria-describedby": hint ? `${id}-hint` : null }),
    hint ? h("p", { class: "muted", id: `${id}-hint` }, hint) : null);
}

function ruleRow(rule, remove) {
  const n = ++rows;
  const kind = rule.customField ? "customField" : rule.channel ? "channel" : "category";
  const select = h("select", { id: `rule-${n}-kind`, "data-field": "kind" },
    ...MATCHES.map(([value, text]) => h("option", { value, selected: value === kind || null }, text)));
  const category = h("input", { id: `rule-${n}-category`, "data-field": "category", value: rule.category || "",
    maxlength: 100 });
  const channel = h("select", { id: `rule-${n}-channel`, "data-field": "channel" },
    ...CHANNELS.map((c) => h("option", { value: c, selected: c === rule.channel || null }, c.replace("_", " "))));
  const field = h("input", { id: `rule-${n}-field`, "data-field": "customField", value: rule.customField || "",
    maxlength: 100 });
  const value = h("input", { id: `rule-${n}-value`, "data-field": "value", value: rule.value || "", maxlength: 500 });
  const skills = h("input", { id: `rule-${n}-skills`, "data-field": "requiredSkills",
    value: (rule.requiredSkills || []).join(", "), "aria-describedby": `rule-${n}-skills-hint` });
  const parts = {
    category: h("div", { class: "field" }, h("label", { for: category.id }, "Category"), category),
    channel: h("div", { class: "field" }, h("label", { for: channel.id }, "Channel"), channel),
    customField: h("div", { class: "field" }, h("label", { for: field.id }, "Custom field"), field,
      h("label", { for: value.id }, "equals"), value),
  };
  const show = () => { for (const [name, part] of Object.entries(parts)) part.hidden = select.value !== name; };
  select.addEventListener("change", show);
  const row = h("li", { class: "rule card", "data-rule": "" },
    h("div", { class: "field" }, h("label", { for: select.id }, "Match by"), select),
    ...Object.values(parts),
    h("div", { class: "field" }, h("label", { for: skills.id }, "Required skills"), skills,
      h("p", { class: "muted", id: `${skills.id}-hint` }, "Comma-separated; an agent needs all of them.")),
    h("button", { type: "button", class: "secondary", onclick: () => remove(row) }, "Remove rule"));
  row.read = () => {
    const out = { requiredSkills: skills.value.split(",").map((s) => s.trim()).filter(Boolean) };
    if (select.value === "category") out.category = category.value.trim();
    else if (select.value === "channel") out.channel = channel.value;
    else { out.customField = field.value.trim(); out.value = value.value; }
    return out;
  };
  show();
  return row;
}

function routingForm(app, settings) {
  const errors = h("ul", { class: "errors", id: "routing-errors", role: "alert" });
  const list = h("ol", { class: "plain rules", id: "routing-rules" });
  const remove = (row) => { row.remove(); announce("Rule removed"); };
  for (const rule of settings.rules) list.append(ruleRow(rule, remove));
  const wait = settings.chatWaitLimitSeconds;
  const form = h("form", { class: "routing-form", "aria-labelledby": "routing-title", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Automatic assignment"),
      checkbox("auto-tickets", "Assign new and unassigned tickets automatically", settings.autoAssignTickets),
      checkbox("auto-chats", "Assign waiting chats automatically", settings.autoAssignChats),
      number("ticket-limit", "Open tickets per agent at most", settings.ticketLimitPerAgent,
        { min: 1, max: 1000 }),
      checkbox("reassign-away", "Give an agent's open tickets back when they go away or offline",
        settings.reassignTicketsWhenAway)),
    h("fieldset", {}, h("legend", {}, "Chats that wait"),
      checkbox("wait-limit-on", "Make a chat a ticket when it waits too long", wait !== null),
      number("wait-limit", "Longest wait, in seconds", wait ?? 600,
        { min: 60, max: 86400, hint: "From 60 s to a day. The visitor is offered to leave their email." })),
    h("fieldset", {}, h("legend", {}, "Rules: the skills an item requires"), list,
      h("button", { type: "button", class: "secondary", id: "add-rule",
        onclick: () => { const row = ruleRow({}, remove); list.append(row); row.querySelector("select").focus(); } },
      "Add a rule")),
    errors,
    h("button", { type: "submit", id: "save-routing" }, "Save routing"));
  const waitOn = form.querySelector("#wait-limit-on");
  const waitInput = form.querySelector("#wait-limit");
  const sync = () => { waitInput.disabled = !waitOn.checked; };
  waitOn.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(errors);
    const body = {
      autoAssignTickets: form.querySelector("#auto-tickets").checked,
      autoAssignChats: form.querySelector("#auto-chats").checked,
      ticketLimitPerAgent: Number(form.querySelector("#ticket-limit").value),
      reassignTicketsWhenAway: form.querySelector("#reassign-away").checked,
      chatWaitLimitSeconds: waitOn.checked ? Number(waitInput.value) : null,
      rules: [...list.querySelectorAll("[data-rule]")].map((row) => row.read()),
    };
    try {
      await app.api.put("/settings/routing", body);
      notify("Routing saved.", "info");
      announce("Routing saved");
    } catch (error) {
      const details = error.details?.length ? error.details : [{ field: "", message: error.message }];
      for (const detail of details) {
        errors.append(h("li", {}, detail.field ? `${detail.field.replace(/^body\./, "")}: ${detail.message}`
          : detail.message));
      }
      errors.focus?.();
      announce("Routing was not saved");
    }
  });
  return form;
}

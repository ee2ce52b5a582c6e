// Automation rules (admins): the tenant's rules in the order they run, each enabled or not, edited, deleted, and a
// form for a new one (GET/POST/PATCH/DELETE /automations: docs/automations.md). The API validates a rule strictly;
// its message (which field, which operator, which action) is shown beside the form as it came.

import { announce, clear, h, label, notify } from "./dom.js";

const EVENTS = [
  "ticket_created", "ticket_updated", "ticket_status_changed", "customer_replied", "agent_replied",
  "sla_at_risk", "sla_breached", "ticket_in_status", "chat_started", "chat_ended", "chat_waiting_too_long", "chat_idle",
];
const PARAMETERS = { ticket_in_status: ["status", "hours"], chat_idle: ["minutes"], chat_waiting_too_long: ["minutes"] };
const OPERATORS = ["equals", "not_equals", "contains", "in", "greater_than", "less_than"];
const ACTIONS = [
  "set_priority", "set_status", "set_category", "assign_to_agent", "route_by_skills", "add_internal_note",
  "send_canned_response", "notify_staff", "notify_email", "end_chat",
];
const FIELDS = [
  "status", "priority", "category", "channel", "subject", "description", "customerName", "customerEmail",
  "assignedAgentId", "message", "previousStatus", "businessHours", "visitorName", "visitorEmail", "customFields.",
];
const STATUSES = ["open", "in_progress", "waiting_customer", "resolved", "closed"];

function summary(rule) {
  const given = rule.parameters || {};
  const params = (PARAMETERS[rule.event] || []).filter((k) => k in given).map((k) => `${k} ${given[k]}`).join(", ");
  return params ? `${label(rule.event)} (${params})` : label(rule.event);
}

function conditionsText(rule) {
  const how = rule.conditions.any ? "any" : "all";
  const items = rule.conditions.any || rule.conditions.all || [];
  if (!items.length) return how === "any" ? "never" : "always";
  const each = items.map((c) => `${c.field} ${label(c.operator)} ${Array.isArray(c.value) ? c.value.join(", ") : c.value}`);
  return `${how === "any" ? "any of" : "all of"}: ${each.join("; ")}`;
}

function actionsText(rule) {
  return rule.actions.map((a) => (a.value === null || a.value === undefined ? label(a.type) : `${label(a.type)}: ${a.value}`))
    .join("; ");
}

/** A condition's value as typed: a list for `in` (comma-separated), a number where one is meant, else text. */
function parsedValue(operator, text) {
  const trimmed = text.trim();
  if (operator === "in") return trimmed.split(",").map((v) => v.trim()).filter(Boolean);
  if (trimmed === "") return null;
  if ((operator === "greater_than" || operator === "less_than") && /^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  return trimmed;
}

function select(id, options, selected, extra = {}) {
  return h("select", { id, ...extra }, options.map((o) => h("option", { value: o, selected: o === selected }, label(o))));
}

export class RulesView {
  constructor(app) {
    this.app = app;
    this.editing = null;
  }

  async render(main) {
    this.main = main;
    this.list = h("div", { id: "rule-list", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading the rules…"));
    this.editor = h("section", { id: "rule-editor", class: "card", "aria-labelledby": "rule-editor-heading", hidden: true });
    main.append(
      h("h1", {}, "Automation rules"),
      h("p", { class: "muted" },
        "Rules act on the desk's events after each change, in this order. The auto-close rules are yours to edit."),
      h("p", {}, h("button", { type: "button", id: "new-rule", onclick: () => this.edit(null) }, "New rule")),
      this.editor,
      this.list,
    );
    if (this.app.me.role !== "admin") {
      clear(this.list).append(h("p", {}, "Only an admin of the desk sees and edits the automation rules."));
      main.querySelector("#new-rule").disabled = true;
      return;
    }
    await this.load();
  }

  async load() {
    try {
      this.rules = await this.app.api.get("/automations");
    } catch (error) {
      clear(this.list).append(h("p", {}, `Could not load the rules: ${error.message}`));
      return;
    }
    const body = h("tbody");
    for (const rule of this.rules) body.append(this.row(rule));
    clear(this.list).append(
      this.rules.length
        ? h("table", { id: "rules" },
          h("caption", { class: "visually-hidden" }, "Automation rules, in the order they run"),
          h("thead", {}, h("tr", {},
            ["#", "Name", "Event", "Conditions", "Actions", "Enabled", "Change"].map((t) => h("th", { scope: "col" }, t)))),
          body)
        : h("p", { class: "muted" }, "No rules yet."),
    );
  }

  row(rule) {
    const enabled = h("input", {
      type: "checkbox", checked: rule.enabled, "aria-label": `Enabled: ${rule.name}`, "data-field": "enabled",
      onchange: (event) => this.save(rule.id, { enabled: event.target.checked }, `${rule.name} ${event.target.checked ? "enabled" : "disabled"}`),
    });
    const remove = h("button", { type: "button", class: "secondary", "data-action": "delete" }, "Delete");
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) return this.remove(rule);
      remove.dataset.armed = "yes";
      remove.textContent = "Confirm delete";
      return null;
    });
    return h("tr", { "data-rule": rule.id },
      h("td", {}, String(rule.position)),
      h("td", { "data-field": "name" }, rule.name),
      h("td", { "data-field": "event" }, summary(rule)),
      h("td", { "data-field": "conditions" }, conditionsText(rule)),
      h("td", { "data-field": "actions" }, actionsText(rule)),
      h("td", {}, enabled),
      h("td", {}, h("button", { type: "button", "data-action": "edit", onclick: () => this.edit(rule) }, "Edit"), " ", remove));
  }

  async save(id, changes, done) {
    try {
      await this.app.api.patch(`/automations/${id}`, changes);
    } catch (error) {
      notify(`The rule was not changed: ${error.message}`);
      await this.load();
      return;
    }
    await this.load();
    announce(done);
    notify(done, "info");
  }

  async remove(rule) {
    try {
      await this.app.api.request("DELETE", `/automations/${rule.id}`);
    } catch (error) {
      notify(`The rule was not deleted: ${error.message}`);
      await this.load();
      return;
    }
    await this.load();
    notify(`Deleted ${rule.name}`, "info");
    announce(`Deleted ${rule.name}`);
  }

  edit(rule) {
    this.editing = rule;
    const how = rule?.conditions?.any ? "any" : "all";
    const items = rule ? rule.conditions.any || rule.conditions.all || [] : [];
    this.conditions = h("ol", { class: "plain", id: "rule-conditions" });
    for (const c of items) this.conditions.append(this.conditionRow(c));
    this.actions = h("ol", { class: "plain", id: "rule-actions" });
    for (const a of rule ? rule.actions : [{ type: "add_internal_note", value: "" }]) this.actions.append(this.actionRow(a));
    const params = rule?.parameters || {};
    this.params = {
      status: h("p", { "data-param": "status" }, h("label", { for: "rule-param-status" }, "Status "),
        select("rule-param-status", STATUSES, params.status || "resolved")),
      hours: h("p", { "data-param": "hours" }, h("label", { for: "rule-param-hours" }, "Hours "),
        h("input", { id: "rule-param-hours", type: "number", min: "0.1", step: "any", value: params.hours ?? 72 })),
      minutes: h("p", { "data-param": "minutes" }, h("label", { for: "rule-param-minutes" }, "Minutes "),
        h("input", { id: "rule-param-minutes", type: "number", min: "1", step: "1", value: params.minutes ?? 30 })),
    };
    const event = select("rule-event", EVENTS, rule?.event || "ticket_created", { onchange: () => this.showParams() });
    this.error = h("p", { id: "rule-error", class: "error", role: "alert" });
    const form = h("form", { id: "rule-form", novalidate: true },
      h("p", {}, h("label", { for: "rule-name" }, "Name "),
        h("input", { id: "rule-name", required: true, maxlength: "200", value: rule?.name || "" })),
      h("p", {}, h("label", { for: "rule-event" }, "When "), event),
      Object.values(this.params),
      h("p", {}, h("label", { for: "rule-match" }, "Conditions: match "), select("rule-match", ["all", "any"], how)),
      h("datalist", { id: "rule-fields" }, FIELDS.map((f) => h("option", { value: f }))),
      this.conditions,
      h("p", {}, h("button", { type: "button", class: "secondary", id: "add-condition",
        onclick: () => this.conditions.append(this.conditionRow({ field: "category", operator: "equals", value: "" })) },
      "Add a condition")),
      h("h3", {}, "Actions, in order"),
      this.actions,
      h("p", {}, h("button", { type: "button", class: "secondary", id: "add-action",
        onclick: () => this.actions.append(this.actionRow({ type: "set_priority", value: "" })) }, "Add an action")),
      h("p", {}, h("label", {}, h("input", { type: "checkbox", id: "rule-enabled", checked: rule ? rule.enabled : true }),
        " Enabled")),
      this.error,
      h("p", {}, h("button", { type: "submit" }, rule ? "Save the rule" : "Create the rule"), " ",
        h("button", { type: "button", class: "secondary", onclick: () => { this.editor.hidden = true; } }, "Cancel")),
    );
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    clear(this.editor).append(h("h2", { id: "rule-editor-heading" }, rule ? `Edit: ${rule.name}` : "New rule"), form);
    this.editor.hidden = false;
    this.showParams();
    this.editor.querySelector("#rule-name").focus();
  }

  showParams() {
    const wanted = PARAMETERS[this.editor.querySelector("#rule-event").value] || [];
    for (const [name, element] of Object.entries(this.params)) element.hidden = !wanted.includes(name);
  }

  conditionRow(condition) {
    const value = Array.isArray(condition.value) ? condition.value.join(", ") : condition.value ?? "";
    const row = h("li", { class: "condition" },
      h("input", { "aria-label": "Field", "data-part": "field", list: "rule-fields", value: condition.field }),
      h("select", { "aria-label": "Operator", "data-part": "operator" },
        OPERATORS.map((o) => h("option", { value: o, selected: o === condition.operator }, label(o)))),
      h("input", { "aria-label": "Value", "data-part": "value", value: String(value) }),
      h("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove"));
    return row;
  }

  actionRow(action) {
    const row = h("li", { class: "action" },
      h("select", { "aria-label": "Action", "data-part": "type" },
        ACTIONS.map((a) => h("option", { value: a, selected: a === action.type }, label(a)))),
      h("input", { "aria-label": "Action's value", "data-part": "value", value: action.value ?? "" }),
      h("button", { type: "button", class: "secondary", onclick: () => row.remove() }, "Remove"));
    return row;
  }

  body() {
    const part = (row, name) => row.querySelector(`[data-part=${name}]`).value;
    const event = this.editor.querySelector("#rule-event").value;
    const parameters = {};
    for (const name of PARAMETERS[event] || []) {
      const raw = this.editor.querySelector(`#rule-param-${name}`).value;
      parameters[name] = name === "status" ? raw : Number(raw);
    }
    const conditions = [...this.conditions.children].map((row) => ({
      field: part(row, "field").trim(), operator: part(row, "operator"),
      value: parsedValue(part(row, "operator"), part(row, "value")),
    }));
    const actions = [...this.actions.children].map((row) => {
      const value = part(row, "value").trim();
      return { type: part(row, "type"), value: value === "" ? null : value };
    });
    return {
      name: this.editor.querySelector("#rule-name").value,
      event, parameters,
      conditions: { [this.editor.querySelector("#rule-match").value]: conditions },
      actions,
      enabled: this.editor.querySelector("#rule-enabled").checked,
    };
  }

  async submit() {
    const body = this.body();
    this.error.textContent = "";
    try {
      if (this.editing) await this.app.api.patch(`/automations/${this.editing.id}`, body);
      else await this.app.api.post("/automations", body);
    } catch (error) {
      this.error.textContent = error.message;
      return;
    }
    const done = this.editing ? `Saved ${body.name}` : `Created ${body.name}`;
    this.editor.hidden = true;
    await this.load();
    notify(done, "info");
    announce(done);
  }
}

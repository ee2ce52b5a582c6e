// A ticket's history for admins: its entries of the audit trail, newest first (GET /api/support/audit?entity=ticket
// &id=..., docs/api.md, "Audit trail"): who changed what and when. Texts and personal values are named as changed,
// never shown (the audit never holds them).

import { clear, dateTime, h, label } from "./dom.js";

const ACTIONS = { insert: "created", update: "changed", delete: "deleted" };
const PAGE = 20;

function who(actor, agentName) {
  if (actor.type === "agent") return `agent ${agentName(actor.id)}`;
  if (actor.type === "admin") return "an admin";
  if (actor.type === "job") return `the ${label(actor.id || "job")} job`;
  if (actor.type === "automation") return "an automation rule";
  if (actor.type === "public") return "the customer";
  return actor.type;
}

function change(column, value) {
  if (value.redacted) return `${label(column)} (text) changed`;
  if (value.personal) return `${label(column)} (personal) changed`;
  const shown = (v) => (v === undefined || v === null ? "none" : typeof v === "object" ? JSON.stringify(v) : String(v));
  if (!("old" in value)) return `${label(column)}: ${shown(value.new)}`;
  if (!("new" in value)) return `${label(column)} was ${shown(value.old)}`;
  return `${label(column)}: ${shown(value.old)} → ${shown(value.new)}`;
}

export class TicketHistory {
  /** api: the console's Api; agentName(id): an agent's name for the list. */
  constructor(api, ticketId, agentName) {
    this.api = api;
    this.ticketId = ticketId;
    this.agentName = agentName;
    this.cursor = null;
    this.list = h("ol", { class: "history-list", id: "ticket-history-list" });
    this.status = h("p", { class: "muted", role: "status" });
    this.more = h("button", { type: "button", hidden: true }, "Older changes");
    this.more.addEventListener("click", () => this.load(true));
    this.element = h("details", { class: "ticket-history", id: "ticket-history" },
      h("summary", {}, "History"), this.status, this.list, this.more);
    this.element.addEventListener("toggle", () => {
      if (this.element.open && !this.loaded) this.load(false);
    });
  }

  async load(more) {
    this.loaded = true;
    if (!more) { clear(this.list); this.cursor = null; }
    try {
      const page = await this.api.page("/audit", { entity: "ticket", id: this.ticketId, limit: PAGE, cursor: this.cursor });
      for (const entry of page.data) {
        const changes = Object.entries(entry.changes).map(([column, value]) => change(column, value));
        this.list.append(h("li", { "data-action": entry.action },
          h("span", { class: "history-when" }, dateTime(entry.occurredAt)), " ",
          h("strong", {}, `${ACTIONS[entry.action] || entry.action} by ${who(entry.actor, this.agentName)}`),
          entry.action === "update" ? h("ul", {}, ...changes.map((text) => h("li", {}, text))) : ""));
      }
      this.cursor = page.nextCursor;
      this.more.hidden = !this.cursor;
      this.status.textContent = this.list.children.length ? "" : "No recorded changes yet.";
    } catch (error) {
      this.status.textContent = `Could not load the history: ${error.message}`;
    }
  }
}

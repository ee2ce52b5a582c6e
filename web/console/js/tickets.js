// Tickets: the list with filters and search, and a ticket with its thread and internal notes: reply, add a
// note, assign, change status and priority (docs/api.md, "Tickets"); beside it the customer (contacts.js) and the
// suggested responses for the reply box (suggestions.js); and a new ticket made by hand: a phone call taken (with the
// call logged) or an email forwarded.

import { ContactPanel } from "./contacts.js";
import { announce, clear, dateTime, duration, fileLinks, h, label, notify } from "./dom.js";
import { TicketHistory } from "./history.js";
import { SuggestionsPanel } from "./suggestions.js";

const STATUSES = ["open", "in_progress", "waiting_customer", "resolved", "closed"];
const PRIORITIES = ["low", "medium", "high", "urgent"];
const CHANNELS = ["api", "email", "web_form", "chat", "phone", "social"];
const CHANNEL_NAMES = { api: "API", email: "email", web_form: "web form", chat: "chat", phone: "phone", social: "social" };
// What staff may choose for a ticket they make (the others belong to their own paths: docs/api.md, "Channel").
const NEW_TICKET_CHANNELS = [["phone", "Phone call"], ["email", "Email forwarded by hand"], ["api", "Other"]];

const SLA_STATES = ["ok", "at_risk", "breached", "met"];

/** A ticket's SLA state as a badge, with its due times in the title (GET /tickets: slaState, firstResponseDueAt,
 * resolutionDueAt; docs/sla.md). */
function slaBadge(ticket) {
  const due = [];
  if (ticket.firstResponseDueAt) due.push(`first response due ${dateTime(ticket.firstResponseDueAt)}`);
  if (ticket.resolutionDueAt) due.push(`resolution due ${dateTime(ticket.resolutionDueAt)}`);
  if (ticket.slaPausedAt) due.push(`paused since ${dateTime(ticket.slaPausedAt)}`);
  return h("span", { class: `badge sla-${ticket.slaState}`, "data-sla": ticket.slaState, title: due.join(" · ") || "no SLA target" },
    label(ticket.slaState));
}

/** What is due next on an open ticket: its first reply, else its resolution; "–" when nothing is. */
function nextDue(ticket) {
  if (ticket.resolvedAt || ticket.status === "resolved" || ticket.status === "closed") return "–";
  if (ticket.firstResponseTime === null && ticket.firstResponseDueAt) return `reply by ${dateTime(ticket.firstResponseDueAt)}`;
  return ticket.resolutionDueAt ? `resolve by ${dateTime(ticket.resolutionDueAt)}` : "–";
}

function dueText(iso) {
  return iso ? dateTime(iso) : "no target";
}

function options(values, chosen, empty) {
  return [
    ...(empty ? [h("option", { value: "" }, empty)] : []),
    ...values.map((value) => h("option", { value, selected: value === chosen }, label(value))),
  ];
}

export class TicketsView {
  constructor(app) {
    this.app = app;
    this.api = app.api;
    this.me = app.me;
    this.filters = { status: "", priority: "", assignedAgentId: "", category: "", channel: "", slaState: "", search: "" };
    this.agents = [];
    this.tickets = [];
    this.cursor = null;
  }

  leave() {}

  async render(main, [ticketId] = []) {
    this.main = main;
    const heading = h("div", { class: "view-header" }, h("h1", { tabindex: "-1" }, "Tickets"),
      h("button", { type: "button", id: "new-ticket", onclick: () => this.newTicket() }, "New ticket"));
    this.filterForm = this.buildFilters();
    this.listBody = h("tbody", {});
    this.more = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => this.load(true) }, "Load more tickets");
    this.count = h("p", { class: "muted", role: "status", id: "ticket-count" });
    const table = h("table", { class: "tickets", id: "ticket-list" },
      h("caption", { class: "visually-hidden" }, "Tickets, newest first"),
      h("thead", {}, h("tr", {}, ...["Ref.", "Subject", "Customer", "Channel", "Status", "Priority", "SLA", "Next due", "Assigned to", "Created"].map((t) => h("th", { scope: "col" }, t)))),
      this.listBody);
    this.detail = h("section", { class: "ticket-detail card", id: "ticket-detail", "aria-labelledby": "ticket-heading", hidden: true });
    main.append(heading, h("div", { class: "tickets-layout" },
      h("div", { class: "tickets-list" }, this.filterForm, this.count, h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Tickets" }, table), this.more),
      this.detail));
    try {
      this.agents = await this.api.all("/agents", {}, 500);
      this.fillAgentFilter();
    } catch (error) {
      notify(`Could not load the agents: ${error.message}`);
    }
    await this.load(false);
    if (ticketId) this.open(ticketId, { focus: true });
  }

  buildFilters() {
    const field = (id, text, control) => h("div", { class: "field" }, h("label", { for: id }, text), control);
    this.agentFilter = h("select", { id: "filter-agent", name: "assignedAgentId" }, h("option", { value: "" }, "Anyone"));
    const form = h("form", { class: "filters", role: "search", "aria-label": "Filter tickets" },
      field("filter-search", "Search", h("input", { id: "filter-search", name: "search", type: "search", value: this.filters.search })),
      field("filter-status", "Status", h("select", { id: "filter-status", name: "status" }, ...options(STATUSES, this.filters.status, "Any status"))),
      field("filter-priority", "Priority", h("select", { id: "filter-priority", name: "priority" }, ...options(PRIORITIES, this.filters.priority, "Any priority"))),
      field("filter-agent", "Assigned to", this.agentFilter),
      field("filter-sla", "SLA", h("select", { id: "filter-sla", name: "slaState" }, ...options(SLA_STATES, this.filters.slaState, "Any SLA state"))),
      field("filter-category", "Category", h("input", { id: "filter-category", name: "category", type: "text", value: this.filters.category })),
      field("filter-channel", "Channel", h("select", { id: "filter-channel", name: "channel" },
        h("option", { value: "" }, "Any channel"),
        ...CHANNELS.map((c) => h("option", { value: c, selected: c === this.filters.channel }, CHANNEL_NAMES[c])))),
      h("div", { class: "filter-actions" },
        h("button", { type: "submit" }, "Apply filters"),
        h("button", { type: "reset", class: "secondary" }, "Clear")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      for (const name of Object.keys(this.filters)) this.filters[name] = String(data.get(name) || "").trim();
      this.load(false);
    });
    form.addEventListener("reset", () => {
      setTimeout(() => {
        for (const name of Object.keys(this.filters)) this.filters[name] = "";
        this.load(false);
      });
    });
    return form;
  }

  fillAgentFilter() {
    clear(this.agentFilter).append(h("option", { value: "" }, "Anyone"),
      ...this.agents.map((a) => h("option", { value: a.id, selected: a.id === this.filters.assignedAgentId }, a.agentName)));
  }

  agentName(id) {
    if (!id) return "nobody";
    return this.agents.find((a) => a.id === id)?.agentName || "an agent";
  }

  async load(more) {
    try {
      const page = await this.api.page("/tickets", { ...this.filters, limit: 25, cursor: more ? this.cursor : null });
      this.tickets = more ? [...this.tickets, ...page.data] : page.data;
      this.cursor = page.nextCursor;
      this.renderList();
    } catch (error) {
      notify(`Could not load the tickets: ${error.message}`);
    }
  }

  renderList() {
    clear(this.listBody);
    for (const ticket of this.tickets) {
      this.listBody.append(h("tr", { "data-ticket": ticket.id, "data-status": ticket.status, "data-priority": ticket.priority,
        "data-channel": ticket.channel },
        h("td", { class: "reference" }, ticket.reference || "–"),
        h("td", {}, h("a", { href: `#/tickets/${ticket.id}`, class: "ticket-link" }, ticket.subject)),
        h("td", {}, ticket.customerName),
        h("td", { class: "channel" }, CHANNEL_NAMES[ticket.channel] || ticket.channel),
        h("td", {}, h("span", { class: `badge status-${ticket.status}` }, label(ticket.status))),
        h("td", {}, h("span", { class: `badge priority-${ticket.priority}` }, ticket.priority)),
        h("td", { class: "sla" }, slaBadge(ticket)),
        h("td", { class: "due" }, nextDue(ticket)),
        h("td", {}, this.agentName(ticket.assignedAgentId)),
        h("td", {}, dateTime(ticket.createdAt))));
    }
    const shown = this.tickets.length;
    this.count.textContent = shown ? `${shown} ticket${shown === 1 ? "" : "s"} shown${this.cursor ? " (more below)" : ""}` : "No ticket matches.";
    this.more.hidden = !this.cursor;
  }

  async open(ticketId, { focus = true } = {}) {
    try {
      const [ticket, thread] = await Promise.all([
        this.api.get(`/tickets/${ticketId}`),
        this.api.all(`/tickets/${ticketId}/conversations`, {}, 1000),
      ]);
      this.renderDetail(ticket, thread);
      if (focus) this.detail.querySelector("h2").focus();
    } catch (error) {
      notify(`Could not open the ticket: ${error.message}`);
    }
  }

  renderDetail(ticket, thread) {
    const d = this.detail;
    clear(d).hidden = false;
    d.dataset.ticket = ticket.id;
    const closed = ticket.status === "closed";
    d.append(
      h("h2", { id: "ticket-heading", tabindex: "-1" }, ticket.subject),
      h("p", { class: "muted" }, `${ticket.customerName} <${ticket.customerEmail}>`, ticket.customerPhone ? ` · ${ticket.customerPhone}` : "",
        ticket.category ? ` · ${ticket.category}` : "", ` · opened ${dateTime(ticket.createdAt)}`),
      h("dl", { class: "facts-list" },
        h("dt", {}, "Reference"), h("dd", { "data-field": "reference" }, ticket.reference || "not numbered yet"),
        h("dt", {}, "Channel"), h("dd", { "data-field": "channel" }, CHANNEL_NAMES[ticket.channel] || ticket.channel),
        h("dt", {}, "Status"), h("dd", { "data-field": "status" }, label(ticket.status)),
        h("dt", {}, "Priority"), h("dd", { "data-field": "priority" }, ticket.priority),
        h("dt", {}, "Assigned to"), h("dd", { "data-field": "assignedAgentId" }, this.agentName(ticket.assignedAgentId)),
        h("dt", {}, "First response"), h("dd", {}, duration(ticket.firstResponseTime)),
        h("dt", {}, "Resolution"), h("dd", {}, duration(ticket.resolutionTime)),
        h("dt", {}, "SLA"), h("dd", { "data-field": "slaState" }, slaBadge(ticket),
          ticket.slaPausedAt ? ` · paused since ${dateTime(ticket.slaPausedAt)}` : ""),
        h("dt", {}, "First response due"), h("dd", { "data-field": "firstResponseDueAt" }, dueText(ticket.firstResponseDueAt)),
        h("dt", {}, "Resolution due"), h("dd", { "data-field": "resolutionDueAt" }, dueText(ticket.resolutionDueAt))),
    );
    this.contact = new ContactPanel(this.api, ticket.id);
    d.append(this.contact.element);
    this.contact.show(ticket.contactId, ticket.id);
    if (ticket.description) d.append(h("p", { class: "description" }, ticket.description));
    if (!closed) d.append(this.changeForm(ticket), this.assignForm(ticket));
    else d.append(h("p", { class: "muted" }, "This ticket is closed: it can no longer be changed."));
    if (this.me.role === "admin") {  // the audit trail is the admins' (GET /api/support/audit)
      d.append(new TicketHistory(this.api, ticket.id, (id) => this.agentName(id)).element);
    }
    d.append(h("h3", {}, "Conversation"), this.threadList(thread));
    if (!closed) {
      const reply = this.replyForm(ticket);
      const suggestions = new SuggestionsPanel(this.api, `/tickets/${ticket.id}/suggested-responses`,
        reply.querySelector("textarea"), `ticket-${ticket.id}`);
      d.append(h("div", { class: "reply-area" }, reply, suggestions.element));
      suggestions.load();
    }
  }

  changeForm(ticket) {
    const status = h("select", { id: "ticket-status", name: "status" }, ...options(STATUSES, ticket.status));
    const priority = h("select", { id: "ticket-priority", name: "priority" }, ...options(PRIORITIES, ticket.priority));
    const form = h("form", { class: "inline-form", "aria-label": "Status and priority" },
      h("label", { for: "ticket-status" }, "Status"), status,
      h("label", { for: "ticket-priority" }, "Priority"), priority,
      h("button", { type: "submit" }, "Save status and priority"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const change = {};
      if (status.value !== ticket.status) change.status = status.value;
      if (priority.value !== ticket.priority) change.priority = priority.value;
      if (!Object.keys(change).length) return;
      try {
        if (change.status === "closed") {
          if (change.priority) await this.api.patch(`/tickets/${ticket.id}`, { priority: change.priority });
          await this.api.post(`/tickets/${ticket.id}/close`);
        } else {
          await this.api.patch(`/tickets/${ticket.id}`, change);
        }
        announce("The ticket was updated");
        await this.refresh(ticket.id);
      } catch (error) {
        notify(`Could not update the ticket: ${error.message}`);
      }
    });
    return form;
  }

  assignForm(ticket) {
    const select = h("select", { id: "ticket-assign", name: "agentId" },
      h("option", { value: "" }, "Nobody (unassign)"),
      ...this.agents.map((a) => h("option", { value: a.id, selected: a.id === ticket.assignedAgentId }, `${a.agentName} · ${a.status}`)));
    const form = h("form", { class: "inline-form", "aria-label": "Assignment" },
      h("label", { for: "ticket-assign" }, "Assign to"), select, h("button", { type: "submit", class: "secondary" }, "Assign"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        if (select.value) await this.api.post(`/tickets/${ticket.id}/assign`, { agentId: select.value });
        else await this.api.patch(`/tickets/${ticket.id}`, { assignedAgentId: null });
        announce(select.value ? `Assigned to ${this.agentName(select.value)}` : "Unassigned");
        await this.refresh(ticket.id);
      } catch (error) {
        notify(`Could not assign the ticket: ${error.message}`);
      }
    });
    return form;
  }

  threadList(thread) {
    const list = h("ol", { class: "thread", id: "ticket-thread" });
    if (!thread.length) list.append(h("li", { class: "muted" }, "No messages yet."));
    for (const entry of thread) {
      list.append(h("li", { class: `entry${entry.isInternal ? " internal" : ""}`, "data-sender": entry.senderType,
        "data-internal": String(entry.isInternal), "data-id": entry.id },
        h("p", { class: "meta" }, h("strong", {}, entry.senderName), ` · ${entry.senderType}`,
          entry.kind === "call" ? h("span", { class: "badge call" }, callSummary(entry.call))
            : entry.isInternal ? h("span", { class: "badge note" }, "Internal note") : null,
          ` · ${dateTime(entry.createdAt)}`),
        h("p", { class: "text" }, entry.message), fileLinks(this.api, entry.attachments)));
    }
    return list;
  }

  replyForm(ticket) {
    const text = h("textarea", { id: "ticket-reply", rows: "4", name: "message", required: true });
    const internal = h("input", { type: "checkbox", id: "ticket-internal", name: "isInternal" });
    const form = h("form", { class: "reply", "aria-label": "Reply or add a note" },
      h("label", { for: "ticket-reply" }, "Reply to the customer, or write an internal note"), text,
      h("div", { class: "choice" }, internal, h("label", { for: "ticket-internal" }, "Internal note (the customer does not see it)")),
      h("button", { type: "submit" }, "Send"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      try {
        await this.api.post(`/tickets/${ticket.id}/conversations`, {
          senderType: "agent", senderName: this.me.name, message: text.value, isInternal: internal.checked,
        });
        announce(internal.checked ? "Note added" : "Reply sent");
        await this.refresh(ticket.id);
      } catch (error) {
        notify(`Could not send: ${error.message}`);
      }
    });
    return form;
  }

  /** The form of a ticket made by hand: a phone call taken (the call logged with it) or an email forwarded. */
  newTicket() {
    const d = this.detail;
    clear(d).hidden = false;
    delete d.dataset.ticket;
    const field = (id, text, control, hint) => h("div", { class: "field" },
      h("label", { for: id }, text), control, hint ? h("p", { class: "muted help", id: `${id}-hint` }, hint) : null);
    const input = (id, name, attributes = {}) => h("input", { id, name, type: "text", ...attributes });
    const channel = h("select", { id: "new-channel", name: "channel" },
      ...NEW_TICKET_CHANNELS.map(([value, text]) => h("option", { value }, text)));
    const call = h("fieldset", { class: "call-fields", id: "new-call" },
      h("legend", {}, "The call"),
      h("div", { class: "choice" }, h("input", { type: "radio", name: "direction", id: "new-call-inbound", value: "inbound", checked: true }),
        h("label", { for: "new-call-inbound" }, "Inbound (the customer called)")),
      h("div", { class: "choice" }, h("input", { type: "radio", name: "direction", id: "new-call-outbound", value: "outbound" }),
        h("label", { for: "new-call-outbound" }, "Outbound (we called)")),
      field("new-call-number", "Caller number", input("new-call-number", "callerNumber", { type: "tel", autocomplete: "off" }),
        "Left empty, the customer's phone number is used."),
      h("div", { class: "inline-form" },
        h("label", { for: "new-call-minutes" }, "Duration: minutes"),
        h("input", { id: "new-call-minutes", name: "minutes", type: "number", min: "0", max: "1440", value: "0", class: "short" }),
        h("label", { for: "new-call-seconds" }, "seconds"),
        h("input", { id: "new-call-seconds", name: "seconds", type: "number", min: "0", max: "59", value: "0", class: "short" })),
      field("new-call-notes", "Call notes", h("textarea", { id: "new-call-notes", name: "notes", rows: "3" })));
    const form = h("form", { class: "new-ticket", "aria-labelledby": "new-ticket-heading" },
      field("new-name", "Customer name", input("new-name", "customerName", { required: true, autocomplete: "off" })),
      field("new-email", "Customer email", input("new-email", "customerEmail", { type: "email", required: true, autocomplete: "off" })),
      field("new-phone", "Customer phone", input("new-phone", "customerPhone", { type: "tel", autocomplete: "off" })),
      field("new-subject", "Subject", input("new-subject", "subject", { required: true })),
      field("new-description", "Description", h("textarea", { id: "new-description", name: "description", rows: "4" })),
      field("new-channel", "Channel", channel),
      call,
      h("div", { class: "filter-actions" },
        h("button", { type: "submit" }, "Create ticket"),
        h("button", { type: "button", class: "secondary", onclick: () => { clear(d).hidden = true; document.getElementById("new-ticket").focus(); } }, "Cancel")));
    channel.addEventListener("change", () => { call.hidden = channel.value !== "phone"; });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const text = (name) => String(data.get(name) || "").trim();
      const body = { customerName: text("customerName"), customerEmail: text("customerEmail"), subject: text("subject"),
        channel: channel.value };
      if (text("customerPhone")) body.customerPhone = text("customerPhone");
      if (text("description")) body.description = text("description");
      if (channel.value === "phone") {
        body.call = {
          direction: text("direction") || "inbound",
          durationSeconds: (Number(text("minutes")) || 0) * 60 + (Number(text("seconds")) || 0),
        };
        const number = text("callerNumber") || text("customerPhone");
        if (number) body.call.callerNumber = number;
        if (text("notes")) body.call.notes = text("notes");
      }
      try {
        const ticket = await this.api.post("/tickets", body);
        announce(`Ticket ${ticket.reference || ""} created`);
        notify(`Ticket ${ticket.reference || ""} created.`, "info");
        await this.load(false);
        history.replaceState(null, "", `#/tickets/${ticket.id}`);
        await this.open(ticket.id, { focus: true });
      } catch (error) {
        notify(`Could not create the ticket: ${error.message}`);
      }
    });
    d.append(h("h2", { id: "new-ticket-heading", tabindex: "-1" }, "New ticket"),
      h("p", { class: "muted" }, "For a phone call you took (the call is logged on the ticket) or an email you forward by hand."),
      form);
    d.querySelector("h2").focus();
  }

  async refresh(ticketId) {
    await this.open(ticketId, { focus: false });
    await this.load(false);
  }
}

/** A call entry's badge: "Phone call, inbound, 3:05, +1 555 0100". */
function callSummary(call) {
  if (!call) return "Phone call";
  const seconds = call.durationSeconds || 0;
  const length = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  return ["Phone call", call.direction, length, call.callerNumber].filter(Boolean).join(", ");
}

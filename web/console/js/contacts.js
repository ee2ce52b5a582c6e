// The contact beside a ticket or a chat: the customer's name, email addresses and phone numbers, and their other
// tickets and chats newest first, each a link (GET /contacts/{contactId}: docs/api.md, "Contacts").

import { clear, dateTime, h, label } from "./dom.js";

const SHOWN = 20;

export class ContactPanel {
  /** scope: a unique word for the element ids (a ticket's or a chat's id). */
  constructor(api, scope) {
    this.api = api;
    this.headingId = `contact-heading-${scope}`;
    this.body = h("div", { class: "contact-body", "aria-live": "polite" });
    this.element = h("section", { class: "contact-panel card", "aria-labelledby": this.headingId, "data-contact": "" },
      h("h3", { id: this.headingId }, "Customer"), this.body);
    this.shown = null;
  }

  /** Show contactId's details; `current` is the conversation beside which the panel stands (left out of the list).
   * Shown already, it is read again only when asked (`again`). */
  async show(contactId, current, { again = false } = {}) {
    const key = `${contactId}|${current}`;
    if (this.shown === key && !again) return;
    this.shown = key;
    this.element.dataset.contact = contactId || "";
    if (!contactId) {
      clear(this.body).append(h("p", { class: "muted" }, "No contact is linked to this conversation yet."));
      return;
    }
    clear(this.body).append(h("p", { class: "muted" }, "Loading the customer…"));
    try {
      const contact = await this.api.get(`/contacts/${contactId}`, { limit: SHOWN + 1 });
      this.render(contact, current);
    } catch (error) {
      this.shown = null;
      clear(this.body).append(h("p", { class: "muted" }, `Could not load the customer: ${error.message}`));
    }
  }

  render(contact, current) {
    const others = contact.conversations.filter((c) => c.id !== current).slice(0, SHOWN);
    const list = h("ol", { class: "plain contact-conversations" });
    for (const conversation of others) list.append(conversationItem(conversation));
    if (!others.length) list.append(h("li", { class: "muted" }, "No other tickets or chats."));
    const more = contact.conversationsNextCursor || contact.conversations.length > SHOWN;
    clear(this.body).append(
      h("p", { class: "contact-name" }, contact.name || "Name unknown"),
      h("dl", { class: "facts-list" },
        h("dt", {}, "Email"), h("dd", { "data-field": "emails" }, contact.emails.join(", ") || "none"),
        h("dt", {}, "Phone"), h("dd", { "data-field": "phones" }, contact.phones.join(", ") || "none")),
      h("h4", {}, "Other conversations, newest first"),
      list,
    );
    if (more) this.body.append(h("p", { class: "muted" }, `The newest ${SHOWN} are shown.`));
  }
}

function conversationItem(conversation) {
  const ticket = conversation.kind === "ticket";
  const text = ticket ? `Ticket: ${conversation.subject}` : "Chat";
  return h("li", { "data-kind": conversation.kind, "data-id": conversation.id },
    h("a", { href: ticket ? `#/tickets/${conversation.id}` : `#/chats/${conversation.id}` }, text),
    h("span", { class: "muted" }, ` · ${label(conversation.status)} · ${dateTime(conversation.createdAt)}`));
}

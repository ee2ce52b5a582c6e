// Live chats: the agent's presence, the queue of waiting chats, and a tab per chat with its conversation.
// Protocol: docs/websocket.md (actions setStatus, claimChat, sync, joinSession,
// sendMessage, typing, markRead, transfer, endChat; events queue.updated, chat.assigned, chat.transferred,
// message.new, typing, message.read, chat.ended, chat.rated, agent.status). The queue is the desk's staff broadcast
// (queue.updated: the whole queue, the newest by asOf wins), so a chat someone else claimed leaves it too.
// Beside each chat: the customer (contacts.js), "Make a ticket" (POST /chat/sessions/{id}/ticket, once per chat) and
// the suggested responses for the reply box (suggestions.js). `#/chats/{sessionId}` opens that chat (a contact's
// page links there).

import { announce, clear, duration, fileLinks, h, insertAtCaret, notify, time } from "./dom.js";
import { CannedPicker, expandShortcut } from "./canned.js";
import { ContactPanel } from "./contacts.js";
import { SuggestionsPanel } from "./suggestions.js";

const STATUSES = ["available", "busy", "away", "offline"];
const QUEUE_REFRESH_MS = 10000;
const TYPING_IDLE_MS = 3000;
const TYPING_SHOWN_MS = 8000;

// A session only moves forward (waiting, then active, then closed): a state older than the one shown is ignored.
// An answer arrives when its request's invocation ends (the route's response), so another request's event may
// overtake it.
const STAGE = { waiting: 0, active: 1, closed: 2 };
function older(next, shown) {
  return Boolean(shown) && next.id === shown.id && STAGE[next.status] < STAGE[shown.status];
}

function byTime(a, b) {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export class ChatsView {
  constructor(app) {
    this.app = app;
    this.api = app.api;
    this.live = app.live;
    this.me = app.me;
    this.queue = new Map(); // sessionId -> waiting session ({id, visitorName, createdAt, ...})
    this.queueWaiting = 0; // all waiting (the queue lists the first 100)
    this.queueAsOf = ""; // the newest queue.updated applied
    this.deskChats = new Map(); // admin: the desk's active sessions, to join
    this.chats = new Map(); // sessionId -> chat state (open tabs)
    this.selected = null;
    this.agents = [];
    this.presence = null;
    this.root = null;
    this.timers = [setInterval(() => this.tick(), 1000), setInterval(() => this.refreshLists(), QUEUE_REFRESH_MS)];
    this.listen();
    this.refreshAgents();
    this.refreshLists();
    if (this.me.agentId) {
      this.api.get(`/agents/${this.me.agentId}`).then((agent) => this.showPresence(agent.status)).catch(() => {});
    }
  }

  // --- events -------------------------------------------------------------------------------------------------

  listen() {
    if (!this.live) return;
    const on = (type, handler) => this.live.addEventListener(type, (event) => handler(event.detail));
    on("open", () => this.resync());
    on("queue.updated", ({ data }) => this.queueUpdated(data));
    on("chat.assigned", ({ data, own }) => this.assigned(data, own));
    on("chat.transferred", ({ data, own }) => this.transferred(data, own));
    on("chat.ended", ({ data }) => this.ended(data));
    on("chat.rated", ({ data }) => this.rated(data));
    on("message.new", ({ data }) => this.messageArrived(data));
    on("typing", ({ data }) => this.typingNotice(data));
    on("message.read", ({ data }) => this.readNotice(data));
    on("agent.status", ({ data }) => {
      if (data.agentId === this.me.agentId) this.showPresence(data.status);
      const agent = this.agents.find((a) => a.id === data.agentId);
      if (agent) agent.status = data.status;
    });
  }

  queueUpdated(update) {
    // Broadcasts may arrive out of order: keep the newest.
    if (update.asOf < this.queueAsOf) return;
    this.queueAsOf = update.asOf;
    this.queue = new Map(update.sessions.map((s) => [s.id, s]));
    this.queueWaiting = update.waiting;
    this.renderQueue();
  }

  assigned(session, own) {
    this.queue.delete(session.id);
    this.renderQueue();
    if (session.assignedAgentId && session.assignedAgentId === this.me.agentId) {
      const known = this.chats.has(session.id);
      this.openChat(session, { select: own || this.selected === null });
      if (!known) announce(`New chat with ${session.visitorName || "a visitor"}`);
    } else if (this.chats.has(session.id)) {
      this.updateSession(session);
    }
  }

  transferred(session, own) {
    this.queue.delete(session.id);
    this.renderQueue();
    const mine = session.assignedAgentId === this.me.agentId;
    if (mine) {
      if (!this.chats.has(session.id)) announce(`Chat with ${session.visitorName || "a visitor"} transferred to you`);
      this.openChat(session, { select: this.selected === null });
    } else if (this.chats.has(session.id)) {
      if (this.me.role === "admin") this.updateSession(session);
      else {
        const to = this.agentName(session.assignedAgentId);
        this.closeTab(session.id);
        notify(`The chat with ${session.visitorName || "the visitor"} went to ${to}.`, "info");
      }
    }
    if (own) this.refreshAgents();
  }

  ended(session) {
    this.queue.delete(session.id);
    this.renderQueue();
    this.deskChats.delete(session.id);
    if (this.chats.has(session.id)) {
      this.updateSession(session);
      announce(`The chat with ${session.visitorName || "the visitor"} has ended`);
    }
  }

  rated(session) {
    if (this.chats.has(session.id)) this.updateSession(session);
  }

  messageArrived(message) {
    const chat = this.chats.get(message.sessionId);
    if (!chat) return;
    const fresh = this.addMessage(chat, message);
    if (fresh && message.senderType === "customer") {
      chat.dom?.suggestions.soon();
      chat.visitorTyping = false;
      this.renderTyping(chat);
      if (this.selected !== chat.id || !this.visible()) {
        announce(`${message.senderName || chat.session.visitorName || "Visitor"}: ${message.message}`);
        chat.unread += 1;
        this.renderTab(chat);
      }
      this.markRead(chat);
    }
  }

  typingNotice(notice) {
    const chat = this.chats.get(notice.sessionId);
    if (!chat || notice.senderType !== "customer") return;
    chat.visitorTyping = notice.isTyping;
    clearTimeout(chat.typingTimer);
    if (notice.isTyping) chat.typingTimer = setTimeout(() => { chat.visitorTyping = false; this.renderTyping(chat); }, TYPING_SHOWN_MS);
    this.renderTyping(chat);
  }

  readNotice(notice) {
    const chat = this.chats.get(notice.sessionId);
    if (!chat) return;
    const upTo = chat.messages.find((m) => m.id === notice.upToMessageId);
    if (!upTo || upTo.senderType === "customer") return; // our own receipt for the visitor's messages
    for (const message of chat.messages) {
      if (message.senderType !== "customer" && !message.isRead && byTime(message, upTo) <= 0) {
        message.isRead = true;
        message.readAt = notice.readAt;
        this.renderMessage(chat, message);
      }
    }
  }

  // --- lists ----------------------------------------------------------------------------------------------------

  async refreshLists() {
    try {
      const waiting = await this.api.get("/chat/sessions", { status: "waiting", limit: 100 });
      this.queue = new Map(waiting.map((s) => [s.id, s]));
      this.queueWaiting = waiting.length;
      this.renderQueue();
      const active = await this.api.get("/chat/sessions", { status: "active", limit: 100 });
      if (this.me.role === "admin") {
        this.deskChats = new Map(active.map((s) => [s.id, s]));
        this.renderDeskChats();
      } else {
        for (const session of active) {
          if (session.assignedAgentId === this.me.agentId && !this.chats.has(session.id)) {
            this.openChat(session, { select: this.selected === null });
          }
        }
      }
    } catch (error) {
      if (error.status !== 401) notify(`Could not load the chats: ${error.message}`);
    }
  }

  async refreshAgents() {
    try {
      this.agents = await this.api.all("/agents", {}, 500);
      for (const chat of this.chats.values()) this.renderTransfer(chat);
      this.renderDeskChats();
    } catch (error) {
      notify(`Could not load the agents: ${error.message}`);
    }
  }

  agentName(id) {
    return this.agents.find((a) => a.id === id)?.agentName || "another agent";
  }

  resync() {
    for (const chat of this.chats.values()) this.load(chat, { again: true });
    this.refreshLists();
  }

  // --- a chat ---------------------------------------------------------------------------------------------------

  openChat(session, { select = false } = {}) {
    let chat = this.chats.get(session.id);
    if (!chat) {
      chat = {
        id: session.id, session, messages: [], pending: new Map(), unread: 0, visitorTyping: false,
        typingTimer: null, readSent: null, joined: false, dom: null, myTyping: false, myTypingTimer: null,
      };
      this.chats.set(session.id, chat);
      this.load(chat);
      if (!this.agents.length) this.refreshAgents();
    } else if (!older(session, chat.session)) {
      chat.session = session;
    }
    if (this.root) this.renderChat(chat);
    if (select) this.select(chat.id);
    else this.renderTab(chat);
    return chat;
  }

  async load(chat, { again = false } = {}) {
    if (!this.live || !this.live.online) return; // loaded when the connection opens
    const assignedToMe = chat.session.assignedAgentId && chat.session.assignedAgentId === this.me.agentId;
    try {
      let action = "sync";
      if (!assignedToMe && (!chat.joined || again)) action = "joinSession"; // joins belong to one connection
      let after = again ? this.lastStoredId(chat) : null;
      for (;;) {
        const fields = { sessionId: chat.id };
        if (action === "sync" && after) fields.afterMessageId = after;
        const answer = await this.live.request(action, fields);
        if (action === "joinSession") chat.joined = true;
        this.updateSession(answer.data.session);
        for (const message of answer.data.messages) this.addMessage(chat, message);
        if (!answer.data.hasMore || !answer.data.messages.length) break;
        action = "sync";
        after = answer.data.messages[answer.data.messages.length - 1].id;
      }
      for (const pending of chat.pending.values()) this.deliver(chat, pending);
      this.markRead(chat);
    } catch (error) {
      notify(`Could not load the chat: ${error.message}`);
    }
  }

  lastStoredId(chat) {
    const stored = chat.messages.filter((m) => !m.pending);
    return stored.length ? stored[stored.length - 1].id : null;
  }

  /** Merge a stored message: once per id; a pending one with its clientMessageId is replaced. True if new. */
  addMessage(chat, message) {
    const known = chat.messages.find((m) => m.id === message.id);
    if (known) {
      Object.assign(known, message);
      this.renderMessage(chat, known);
      return false;
    }
    if (message.clientMessageId && chat.pending.has(message.clientMessageId)) {
      const placeholder = chat.pending.get(message.clientMessageId);
      chat.pending.delete(message.clientMessageId);
      chat.messages = chat.messages.filter((m) => m !== placeholder);
      placeholder.dom?.remove();
    }
    chat.messages.push(message);
    chat.messages.sort((a, b) => (a.pending ? 1 : 0) - (b.pending ? 1 : 0) || byTime(a, b));
    this.renderMessages(chat);
    return true;
  }

  updateSession(session) {
    const chat = this.chats.get(session.id);
    if (!chat || older(session, chat.session)) return;
    chat.session = session;
    this.renderChat(chat);
  }

  markRead(chat) {
    if (this.selected !== chat.id || !this.visible() || !this.live?.online) return;
    const customer = chat.messages.filter((m) => m.senderType === "customer" && !m.pending);
    const last = customer[customer.length - 1];
    if (!last || last.isRead || chat.readSent === last.id) return;
    chat.readSent = last.id;
    this.live.request("markRead", { sessionId: chat.id, upToMessageId: last.id }).then(() => {
      for (const m of customer) m.isRead = true;
    }).catch(() => { chat.readSent = null; });
  }

  visible() {
    return this.root !== null && document.visibilityState !== "hidden";
  }

  send(chat, text) {
    if (!text.trim()) return;
    const pending = {
      id: `pending-${crypto.randomUUID()}`, clientMessageId: crypto.randomUUID(), sessionId: chat.id,
      senderType: "agent", senderName: this.me.name, message: text, createdAt: new Date().toISOString(),
      isRead: false, pending: true,
    };
    chat.pending.set(pending.clientMessageId, pending);
    chat.messages.push(pending);
    this.renderMessages(chat);
    this.deliver(chat, pending);
    this.stopTyping(chat);
  }

  deliver(chat, pending) {
    if (!this.live?.online) return; // sent again, with the same clientMessageId, when the connection is back
    this.live.request("sendMessage", { sessionId: chat.id, message: pending.message, clientMessageId: pending.clientMessageId })
      .then((answer) => this.addMessage(chat, answer.data))
      .catch((error) => {
        if (error.code) {
          chat.pending.delete(pending.clientMessageId);
          pending.failed = error.message;
          this.renderMessage(chat, pending);
          notify(`The message was not sent: ${error.message}`);
        }
      });
  }

  typed(chat) {
    if (!this.live?.online) return;
    if (!chat.myTyping) {
      chat.myTyping = true;
      this.live.send("typing", { sessionId: chat.id, isTyping: true });
    }
    clearTimeout(chat.myTypingTimer);
    chat.myTypingTimer = setTimeout(() => this.stopTyping(chat), TYPING_IDLE_MS);
  }

  stopTyping(chat) {
    clearTimeout(chat.myTypingTimer);
    if (chat.myTyping && this.live?.online) this.live.send("typing", { sessionId: chat.id, isTyping: false });
    chat.myTyping = false;
  }

  async claim(sessionId) {
    try {
      await this.live.request("claimChat", { sessionId });
    } catch (error) {
      notify(`Could not claim the chat: ${error.message}`);
      this.refreshLists();
    }
  }

  async transfer(chat, toAgentId) {
    try {
      await this.live.request("transfer", { sessionId: chat.id, toAgentId });
    } catch (error) {
      notify(`Could not transfer the chat: ${error.message}`);
      this.refreshAgents();
    }
  }

  async end(chat) {
    try {
      await this.live.request("endChat", { sessionId: chat.id });
    } catch (error) {
      notify(`Could not end the chat: ${error.message}`);
    }
  }

  async setPresence(status) {
    try {
      if (this.live?.online) await this.live.request("setStatus", { status });
      else this.showPresence((await this.api.patch(`/agents/${this.me.agentId}/status`, { status })).status);
      announce(`Your status is ${status}`);
    } catch (error) {
      notify(`Could not change your status: ${error.message}`);
      this.showPresence(this.presence);
    }
  }

  showPresence(status) {
    this.presence = status;
    for (const input of this.root?.querySelectorAll("input[name=presence]") || []) input.checked = input.value === status;
  }

  // --- rendering --------------------------------------------------------------------------------------------------

  render(main, [sessionId] = []) {
    this.root = h("div", { class: "chats-layout" });
    const heading = h("h1", { class: "visually-hidden", tabindex: "-1" }, "Live chats");
    const sidebar = h("div", { class: "sidebar" });
    if (this.me.agentId) sidebar.append(this.presenceSwitch());
    this.queueList = h("ul", { class: "queue", id: "queue-list" });
    this.queueHeading = h("h2", { id: "queue-heading" }, "Queue");
    sidebar.append(h("section", { "aria-labelledby": "queue-heading", class: "card" }, this.queueHeading, this.queueList));
    if (this.me.role === "admin") {
      this.deskList = h("ul", { class: "queue", id: "desk-list" });
      sidebar.append(h("section", { "aria-labelledby": "desk-heading", class: "card" },
        h("h2", { id: "desk-heading" }, "Active chats on the desk"), this.deskList));
    }
    this.tablist = h("div", { role: "tablist", "aria-label": "Your chats", class: "tabs", id: "chat-tabs" });
    this.panels = h("div", { class: "panels" });
    this.empty = h("p", { class: "muted empty" }, this.me.agentId
      ? "No chats yet. Set yourself available to take chats, or claim one from the queue."
      : "Join a chat from the desk's list to follow it.");
    const conversations = h("section", { class: "conversations", "aria-label": "Conversations" }, this.tablist, this.empty, this.panels);
    this.root.append(sidebar, conversations);
    main.append(heading, this.root);
    for (const chat of this.chats.values()) { chat.dom = null; this.renderChat(chat); }
    this.showPresence(this.presence);
    this.renderQueue();
    this.renderDeskChats();
    this.renderTabs();
    if (this.selected) this.select(this.selected, { focus: false });
    if (sessionId) this.openById(sessionId);
  }

  /** `#/chats/{sessionId}`: that chat's tab, opened (joined, for a chat that is not the agent's) if need be. */
  async openById(sessionId) {
    if (this.chats.has(sessionId)) {
      this.select(sessionId);
      return;
    }
    try {
      this.openChat(await this.api.get(`/chat/sessions/${sessionId}`), { select: true });
    } catch (error) {
      notify(`Could not open the chat: ${error.message}`);
    }
  }

  leave() {
    this.root = null;
  }

  /** Signed out: stop the clocks and the polling (the connection is the app's to close). */
  dispose() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    for (const chat of this.chats.values()) {
      clearTimeout(chat.typingTimer);
      clearTimeout(chat.myTypingTimer);
      chat.dom?.suggestions.dispose();
    }
    this.root = null;
  }

  presenceSwitch() {
    const fieldset = h("fieldset", { class: "presence card" }, h("legend", {}, "Your status"));
    for (const status of STATUSES) {
      const id = `presence-${status}`;
      fieldset.append(h("span", { class: "choice" },
        h("input", { type: "radio", name: "presence", id, value: status, onchange: () => this.setPresence(status) }),
        h("label", { for: id, "data-status": status }, status)));
    }
    return fieldset;
  }

  tick() {
    if (!this.root) return;
    for (const item of this.root.querySelectorAll("[data-waiting-since]")) {
      item.textContent = duration((Date.now() - Date.parse(item.dataset.waitingSince)) / 1000);
    }
  }

  renderQueue() {
    if (!this.root || !this.queueList) return;
    const waiting = [...this.queue.values()].sort(byTime);
    this.queueHeading.textContent = `Queue (${Math.max(this.queueWaiting, waiting.length)} waiting)`;
    // Rebuilt only when it changed (the wait times tick in place), so a button is not replaced under a click.
    const signature = JSON.stringify(waiting.map((s) => [s.id, s.visitorName, s.createdAt]));
    if (this.queueList.dataset.signature === signature) return;
    this.queueList.dataset.signature = signature;
    clear(this.queueList);
    if (!waiting.length) this.queueList.append(h("li", { class: "muted" }, "Nobody is waiting."));
    for (const session of waiting) {
      const name = session.visitorName || "Visitor";
      const item = h("li", { "data-session": session.id },
        h("span", { class: "name" }, name),
        h("span", { class: "muted" }, " waiting ",
          h("span", { "data-waiting-since": session.createdAt }, duration((Date.now() - Date.parse(session.createdAt)) / 1000))));
      if (this.me.agentId) {
        item.append(h("button", { type: "button", class: "small", onclick: () => this.claim(session.id) }, `Claim chat with ${name}`));
      } else {
        // The queue's entries are summaries: the chat opens with the whole session.
        const open = () => this.api.get(`/chat/sessions/${session.id}`)
          .then((full) => this.openChat(full, { select: true }))
          .catch((error) => notify(`Could not open the chat: ${error.message}`));
        item.append(h("button", { type: "button", class: "small secondary", onclick: open }, `Open chat with ${name}`));
      }
      this.queueList.append(item);
    }
  }

  renderDeskChats() {
    if (!this.root || !this.deskList) return;
    const sessions = [...this.deskChats.values()];
    const signature = JSON.stringify(sessions.map((s) => [s.id, s.visitorName, this.agentName(s.assignedAgentId)]));
    if (this.deskList.dataset.signature === signature) return;
    this.deskList.dataset.signature = signature;
    clear(this.deskList);
    if (!this.deskChats.size) this.deskList.append(h("li", { class: "muted" }, "No active chats."));
    for (const session of sessions) {
      const name = session.visitorName || "Visitor";
      this.deskList.append(h("li", { "data-session": session.id },
        h("span", { class: "name" }, name), h("span", { class: "muted" }, ` with ${this.agentName(session.assignedAgentId)} `),
        h("button", { type: "button", class: "small secondary", onclick: () => this.openChat(session, { select: true }) },
          `Join chat with ${name}`)));
    }
  }

  renderTabs() {
    if (!this.root) return;
    clear(this.tablist);
    this.empty.hidden = this.chats.size > 0;
    for (const chat of this.chats.values()) {
      chat.tab = null;
      this.renderTab(chat);
    }
  }

  renderTab(chat) {
    if (!this.root) return;
    this.empty.hidden = this.chats.size > 0;
    const selected = this.selected === chat.id;
    const name = chat.session.visitorName || "Visitor";
    const tab = chat.tab || h("button", {
      type: "button", role: "tab", id: `tab-${chat.id}`, "aria-controls": `panel-${chat.id}`,
      onclick: () => this.select(chat.id), onkeydown: (event) => this.tabKeys(event, chat.id),
    });
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    tab.dataset.status = chat.session.status;
    const unread = chat.unread ? ` (${chat.unread} new)` : "";
    tab.textContent = `${name}${chat.session.status === "closed" ? " · ended" : ""}${unread}`;
    if (!chat.tab) { chat.tab = tab; this.tablist.append(tab); }
  }

  tabKeys(event, id) {
    const ids = [...this.chats.keys()];
    const at = ids.indexOf(id);
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: ids.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    this.select(ids[(next + ids.length) % ids.length]);
  }

  select(id, { focus = true } = {}) {
    this.selected = id;
    const chat = this.chats.get(id);
    if (!chat) return;
    chat.unread = 0;
    for (const other of this.chats.values()) {
      this.renderTab(other);
      if (other.dom) other.dom.panel.hidden = other.id !== id;
    }
    if (focus && chat.tab) chat.tab.focus();
    if (chat.dom) chat.dom.log.scrollTop = chat.dom.log.scrollHeight;
    this.markRead(chat);
  }

  closeTab(id) {
    const chat = this.chats.get(id);
    if (!chat) return;
    this.stopTyping(chat);
    chat.dom?.suggestions.dispose();
    chat.dom?.panel.remove();
    chat.tab?.remove();
    this.chats.delete(id);
    if (this.selected === id) {
      const next = this.chats.keys().next();
      this.selected = next.done ? null : next.value;
      if (this.selected) this.select(this.selected, { focus: false });
    }
    this.renderTabs();
  }

  renderChat(chat) {
    if (!this.root) return;
    if (!chat.dom) {
      chat.dom = this.buildPanel(chat); // a new panel (the view is shown again): its messages go back in
      this.renderMessages(chat);
    }
    const { session } = chat;
    const name = session.visitorName || "Visitor";
    chat.dom.title.textContent = `Chat with ${name}`;
    const facts = [`status ${session.status}`, `started ${time(session.sessionStartTime)}`];
    if (session.visitorEmail) facts.push(session.visitorEmail);
    if (session.assignedAgentId && session.assignedAgentId !== this.me.agentId) facts.push(`agent ${this.agentName(session.assignedAgentId)}`);
    if (session.transferredFromAgentId) facts.push(`transferred from ${this.agentName(session.transferredFromAgentId)}`);
    chat.dom.facts.textContent = facts.join(" · ");
    chat.dom.panel.dataset.status = session.status;
    const closed = session.status === "closed";
    chat.dom.ended.hidden = !closed;
    chat.dom.ended.textContent = closed
      ? `This chat has ended after ${duration(session.duration)}.` + (session.rating ? ` The visitor rated it ${session.rating} of 5${session.feedback ? `: “${session.feedback}”` : "."}` : "")
      : "";
    chat.dom.rating.textContent = session.rating ? String(session.rating) : "";
    for (const control of chat.dom.controls) control.disabled = closed;
    chat.dom.closeTab.hidden = !closed && !(this.me.role === "admin");
    chat.dom.contact.show(session.contactId, session.id);
    this.renderTicket(chat);
    this.renderTransfer(chat);
    this.renderTyping(chat);
    this.renderTab(chat);
  }

  buildPanel(chat) {
    const id = chat.id;
    const title = h("h2", { id: `title-${id}` });
    const facts = h("p", { class: "muted facts" });
    const transferSelect = h("select", { id: `transfer-${id}`, name: "toAgentId" });
    const transferButton = h("button", { type: "submit", class: "secondary" }, "Transfer");
    const transferForm = h("form", { class: "inline-form transfer" },
      h("label", { for: `transfer-${id}` }, "Transfer to"), transferSelect, transferButton);
    transferForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (transferSelect.value) this.transfer(chat, transferSelect.value);
    });
    transferSelect.addEventListener("focus", () => this.refreshAgents(), { once: true });
    const endButton = h("button", { type: "button", class: "danger", onclick: () => this.end(chat) }, "End chat");
    const closeTab = h("button", { type: "button", class: "secondary", onclick: () => this.closeTab(id) }, "Close tab");
    // The log region (aria-live polite by its role) scrolls; the list inside keeps the messages' list semantics.
    const list = h("ol", { class: "message-list" });
    const log = h("div", { class: "messages", role: "log", "aria-labelledby": `title-${id}`, tabindex: "0" }, list);
    const typing = h("p", { class: "typing", "aria-live": "polite" });
    const ended = h("p", { class: "ended", role: "status" });
    const rating = h("span", { class: "visually-hidden", "data-rating": "" });
    const reply = h("textarea", { id: `reply-${id}`, rows: "3", name: "message", autocomplete: "off",
      "aria-describedby": `reply-help-${id}` });
    const sendButton = h("button", { type: "submit" }, "Send");
    const picker = new CannedPicker(this.api, id, (response) => insertAtCaret(reply, response.responseContent));
    const cannedButton = h("button", { type: "button", class: "secondary", "aria-expanded": "false",
      "aria-controls": picker.id, onclick: () => picker.toggle(cannedButton) }, "Canned responses");
    const composer = h("form", { class: "composer" },
      h("label", { for: `reply-${id}` }, "Reply"),
      reply,
      h("p", { id: `reply-help-${id}`, class: "muted help" },
        "Enter sends, Shift+Enter starts a new line. Type /shortcut and a space (or Tab) to insert a canned response."),
      h("div", { class: "composer-actions" }, cannedButton, sendButton),
      picker.element);
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = reply.value;
      if (!text.trim()) return;
      reply.value = "";
      this.send(chat, text);
      reply.focus();
    });
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      } else if (event.key === "Tab" && !event.shiftKey && /(^|\s)\/[A-Za-z0-9_-]{1,32}$/.test(reply.value.slice(0, reply.selectionStart))) {
        event.preventDefault();
        expandShortcut(this.api, reply, "");
      }
    });
    reply.addEventListener("input", (event) => {
      this.typed(chat);
      if (event.inputType === "insertText" && event.data === " ") expandShortcut(this.api, reply, " ");
    });
    const contact = new ContactPanel(this.api, `chat-${id}`);
    const suggestions = new SuggestionsPanel(this.api, `/chat/sessions/${id}/suggested-responses`, reply, `chat-${id}`);
    const ticket = h("section", { class: "chat-ticket card", "aria-labelledby": `ticket-heading-${id}` },
      h("h3", { id: `ticket-heading-${id}` }, "Ticket"));
    const panel = h("div", { role: "tabpanel", id: `panel-${id}`, "aria-labelledby": `tab-${id}`, class: "chat-panel",
      "data-session": id, hidden: this.selected !== id },
      h("div", { class: "chat-main" },
        h("div", { class: "chat-header" }, h("div", {}, title, facts),
          h("div", { class: "chat-actions" }, transferForm, endButton, closeTab)),
        log, typing, ended, rating, composer),
      h("div", { class: "chat-aside" }, suggestions.element, ticket, contact.element));
    this.panels.append(panel);
    suggestions.load();
    return { panel, title, facts, log, list, typing, ended, rating, transferSelect, closeTab, contact, suggestions, ticket,
      controls: [transferSelect, transferButton, endButton, reply, sendButton, cannedButton] };
  }

  /** The chat's ticket: a link to it once made, else the "Make a ticket" form (an email asked for when the visitor
   * gave none: a ticket always has one). */
  renderTicket(chat) {
    const section = chat.dom.ticket;
    const { session } = chat;
    const state = session.ticketId ? `made:${session.ticketId}:${chat.ticketReference || ""}` : `form:${Boolean(session.visitorEmail)}`;
    if (section.dataset.state === state) return;
    section.dataset.state = state;
    const heading = section.firstElementChild;
    clear(section).append(heading);
    if (session.ticketId) {
      const reference = chat.ticketReference;
      section.append(h("p", { role: "status", class: "chat-ticket-made" }, "This chat is ticket ",
        h("a", { href: `#/tickets/${session.ticketId}`, class: "ticket-reference" }, reference || "(opening…)"), "."));
      if (!reference) {
        this.api.get(`/tickets/${session.ticketId}`).then((ticket) => {
          chat.ticketReference = ticket.reference || "without a reference yet";
          this.renderTicket(chat);
        }).catch((error) => notify(`Could not read the chat's ticket: ${error.message}`));
      }
      return;
    }
    const id = chat.id;
    const subject = h("input", { id: `ticket-subject-${id}`, name: "subject", type: "text", autocomplete: "off",
      "aria-describedby": `ticket-subject-hint-${id}` });
    const fields = [h("label", { for: `ticket-subject-${id}` }, "Subject"), subject,
      h("p", { class: "muted help", id: `ticket-subject-hint-${id}` }, "Optional: the visitor's first words otherwise.")];
    let email = null;
    if (!session.visitorEmail) {
      email = h("input", { id: `ticket-email-${id}`, name: "customerEmail", type: "email", required: true, autocomplete: "off" });
      fields.push(h("label", { for: `ticket-email-${id}` }, "Customer email (the visitor gave none)"), email);
    }
    const button = h("button", { type: "submit", class: "secondary" }, "Make a ticket");
    const form = h("form", { class: "make-ticket" }, ...fields, button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      if (subject.value.trim()) body.subject = subject.value.trim();
      if (email) body.customerEmail = email.value.trim();
      button.disabled = true;
      try {
        const ticket = await this.api.post(`/chat/sessions/${id}/ticket`, body);
        chat.ticketReference = ticket.reference || "without a reference yet";
        chat.session = { ...chat.session, ticketId: ticket.id };
        this.renderTicket(chat);
        chat.dom.contact.show(chat.session.contactId, chat.id, { again: true }); // the new ticket joins their list
        announce(`Ticket ${ticket.reference || ""} made from the chat`);
        section.querySelector("a")?.focus();
      } catch (error) {
        button.disabled = false;
        notify(`Could not make a ticket: ${error.message}`);
      }
    });
    section.append(form);
  }

  renderTransfer(chat) {
    if (!chat.dom) return;
    const select = chat.dom.transferSelect;
    const choices = this.agents.filter((agent) => agent.id !== chat.session.assignedAgentId).map((agent) => {
      const full = agent.currentChats >= agent.maxConcurrentChats;
      const text = `${agent.agentName} · ${agent.status} · ${agent.currentChats} of ${agent.maxConcurrentChats} chats${full ? " (full)" : ""}`;
      return { id: agent.id, full, text };
    });
    const signature = JSON.stringify(choices);
    if (select.dataset.signature === signature) return; // unchanged: leave an open list alone
    select.dataset.signature = signature;
    const chosen = select.value;
    clear(select).append(h("option", { value: "" }, "Choose an agent"),
      ...choices.map((c) => h("option", { value: c.id, disabled: c.full }, c.text)));
    select.value = choices.some((c) => c.id === chosen && !c.full) ? chosen : "";
  }

  renderTyping(chat) {
    if (!chat.dom) return;
    const text = chat.visitorTyping ? `${chat.session.visitorName || "The visitor"} is typing…` : "";
    if (chat.dom.typing.textContent !== text) chat.dom.typing.textContent = text;
  }

  renderMessages(chat) {
    if (!chat.dom) return;
    const { log, list } = chat.dom;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    chat.messages.forEach((message, index) => {
      this.renderMessage(chat, message);
      if (list.children[index] !== message.dom) list.insertBefore(message.dom, list.children[index] || null);
    });
    if (atBottom || this.selected === chat.id) log.scrollTop = log.scrollHeight;
  }

  renderMessage(chat, message) {
    if (!chat.dom) return;
    if (!message.dom) {
      message.dom = h("li", { class: "message" },
        h("p", { class: "meta" }, h("span", { class: "sender" }), " ", h("time", {})),
        h("p", { class: "text" }), h("p", { class: "receipt" }));
    }
    const li = message.dom;
    li.dataset.sender = message.senderType;
    li.dataset.id = message.pending ? "" : message.id;
    if (message.clientMessageId) li.dataset.clientMessageId = message.clientMessageId;
    const sender = message.senderType === "customer" ? (message.senderName || chat.session.visitorName || "Visitor")
      : message.senderType === "system" ? "System" : (message.senderName || "Agent");
    li.querySelector(".sender").textContent = sender;
    const at = li.querySelector("time");
    at.dateTime = message.createdAt;
    at.textContent = time(message.createdAt);
    li.querySelector(".text").textContent = message.message;
    li.querySelector(".files")?.remove();
    const files = fileLinks(this.api, message.attachments);
    if (files) li.querySelector(".text").after(files);
    const receipt = li.querySelector(".receipt");
    let state = "";
    if (message.senderType !== "customer") {
      state = message.failed ? "not sent" : message.pending ? "sending" : message.isRead ? "read" : "delivered";
    }
    receipt.textContent = { "": "", "not sent": `Not sent: ${message.failed}`, sending: "Sending…", delivered: "Delivered", read: "Read" }[state];
    li.dataset.state = state;
  }
}

/*! Support desk chat widget. One script tag on any page:
 *  <script src="https://<desk>/widget/widget.js" data-widget-key="wk_..." data-ws-url="wss://<websocket api>" async></script>
 * data-api-url: the HTTP API (default: where this file comes from); data-ws-url: the WebSocket API (default: the
 * HTTP API's origin with ws:/wss:); data-max-wait: seconds in the queue before it says the desk is offline (180);
 * data-form-category: the category of the tickets its "Leave a message" form makes (optional).
 * No framework, no request to anyone but the desk, everything inside a shadow root. See docs/browser.md, "The chat widget".
 */
(() => {
  "use strict";
  const script = document.currentScript || document.querySelector("script[data-widget-key]");
  if (!script || window.__supportWidget) return;
  const data = script.dataset;
  const KEY = data.widgetKey || "";
  const API = (data.apiUrl || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  const WS = data.wsUrl || API.replace(/^http/, "ws");
  const seconds = (name, fallback, least) => Math.max(least, Number(data[name]) || fallback) * 1000;
  const PING_MS = seconds("pingSeconds", 240, 1); // API Gateway closes a connection idle for 10 minutes
  const LIFE_MS = seconds("maxConnectionSeconds", 6600, 5); // and any connection after 2 hours: renew at 1 h 50
  const MAX_WAIT_MS = seconds("maxWait", 180, 1);
  const TYPING_MS = 3000;
  const MAX_CHARS = 8000; // a browser sends a message as one frame, and API Gateway takes 32 KB a frame
  const FORM_CHARS = 12000; // the form's message: within the desk's 50 KB whatever the script (4 bytes a character)
  const STORE = "support-widget:" + KEY;

  // --- State kept in this browser (localStorage), so a returning visitor sees their conversation -----------
  const load = () => {
    try {
      return JSON.parse(localStorage.getItem(STORE) || "{}") || {};
    } catch (e) {
      return {};
    }
  };
  const saved = load();
  const state = {
    resumeToken: saved.resumeToken || null,
    sessionId: saved.sessionId || null,
    name: saved.name || "",
    pending: Array.isArray(saved.pending) ? saved.pending : [], // [{clientMessageId, message}] not yet stored
    rated: !!saved.rated,
    closed: !!saved.closed,
  };
  const persist = () => {
    try {
      const { resumeToken, sessionId, name, pending, rated, closed } = state;
      localStorage.setItem(STORE, JSON.stringify({ resumeToken, sessionId, name, pending, rated, closed }));
    } catch (e) {
      /* private mode: the chat still works, only not across page loads */
    }
  };

  let session = null; // the chat session as the server last told it
  const messages = []; // stored messages, oldest first
  const byId = new Map();
  let queue = { position: null, asOf: "" };
  let ticketed = null; // chat.ticketed: the chat waited too long and became a ticket (the email it asks for, if any)
  let agentName = "";
  let ws = null;
  let attempt = 0;
  let refused = false;
  let startWanted = false;
  let startId = null; // this attempt's clientStartId: a startChat resent after a drop answers the same session
  let timers = {};
  let requestCount = 0;
  const requests = new Map(); // requestId -> what it was for
  const clear = (name) => {
    clearTimeout(timers[name]);
    clearInterval(timers[name]);
    delete timers[name];
  };

  // --- The page: a shadow root the host page's styles cannot reach ----------------------------------------
  const host = document.createElement("support-chat-widget");
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `<style>
:host{all:initial!important;position:fixed!important;right:16px!important;bottom:16px!important;z-index:2147483000!important;display:block!important}
*{box-sizing:border-box}
.w{display:flex;flex-direction:column;align-items:flex-end;--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--accent:#0b5cad;--accent-fg:#fff;--me:#0b5cad;--me-fg:#fff;--them:#eef1f4;--warn:#8a4b00;--warn-bg:#fff4e0;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);letter-spacing:normal;text-align:left}
@media (prefers-color-scheme:dark){.w{--bg:#161b22;--fg:#e6edf3;--muted:#9da7b3;--line:#30363d;--accent:#4493f8;--accent-fg:#0d1117;--me:#1f6feb;--me-fg:#fff;--them:#21262d;--warn:#f0b72f;--warn-bg:#2d2208}}
button,input,textarea{font:inherit;color:inherit;letter-spacing:inherit}
button{cursor:pointer;border:0;border-radius:8px;padding:8px 14px;background:var(--accent);color:var(--accent-fg);font-weight:600}
button:focus-visible,input:focus-visible,textarea:focus-visible,.log:focus-visible,label:focus-within{outline:3px solid var(--accent);outline-offset:2px}
.launcher{display:inline-flex;align-items:center;gap:8px;border-radius:999px;padding:12px 18px;box-shadow:0 4px 14px rgba(0,0,0,.25)}
.launcher svg{width:20px;height:20px;fill:currentColor}
.panel{width:min(370px,calc(100vw - 32px));height:min(560px,calc(100vh - 96px));margin-bottom:12px;display:flex;flex-direction:column;background:var(--bg);border:1px solid var(--line);border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}
.panel[hidden],[hidden]{display:none!important}
header{display:flex;align-items:center;gap:8px;padding:12px 14px;background:var(--accent);color:var(--accent-fg)}
header div{flex:1;min-width:0}
h2{margin:0;font-size:16px}
.sub{margin:0;font-size:13px;opacity:.9}
.close{background:transparent;color:inherit;font-size:22px;line-height:1;padding:2px 8px}
.notice{margin:0;padding:8px 14px;font-size:13px;background:var(--warn-bg);color:var(--warn);border-bottom:1px solid var(--line)}
.log{flex:1;overflow-y:auto;margin:0;padding:12px 14px;display:flex;flex-direction:column;gap:8px}
.msg{max-width:85%;display:flex;flex-direction:column}
.msg p{margin:0;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere;background:var(--them)}
.msg.customer{align-self:flex-end;align-items:flex-end}
.msg.customer p{background:var(--me);color:var(--me-fg)}
.msg.system{align-self:center;font-size:13px;color:var(--muted)}
.msg.system p{background:transparent;padding:0}
.meta{font-size:12px;color:var(--muted);margin-top:2px}
.msg.failed .meta{color:#c62828}
.typing{margin:0;padding:0 14px 6px;font-size:13px;color:var(--muted);font-style:italic}
form{padding:10px 14px;border-top:1px solid var(--line);display:flex;flex-direction:column;gap:8px}
.row{display:flex;gap:8px;align-items:flex-end}
.file{display:block;margin-top:4px;font-size:13px;color:inherit}
label{font-size:13px;color:var(--muted)}
input,textarea{width:100%;border:1px solid var(--line);border-radius:8px;padding:8px 10px;background:var(--bg)}
textarea{resize:none;min-height:42px;max-height:120px}
fieldset{border:0;margin:0;padding:0;display:flex;gap:4px;flex-wrap:wrap}
legend{font-weight:600;margin-bottom:6px;padding:0}
.stars label{display:inline-flex;align-items:center;justify-content:center;min-width:40px;padding:6px 8px;border:1px solid var(--line);border-radius:8px;color:var(--fg);cursor:pointer}
.stars input{position:absolute;opacity:0;width:1px;height:1px}
.stars input:checked+span{font-weight:700;color:var(--accent)}
.sr{position:absolute!important;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}
.hp{position:absolute!important;left:-10000px!important;width:1px;height:1px;overflow:hidden}
#mail{flex:1;overflow-y:auto;gap:4px}
#mail h3{margin:0 0 4px;font-size:15px}
#mail input,#mail textarea{margin-bottom:6px}
#mail [aria-invalid=true],#ticketed [aria-invalid=true]{border-color:#c62828}
.err{margin:0;font-size:13px;color:#c62828}
#sent{flex:1;padding:14px;display:flex;flex-direction:column;gap:10px;align-items:flex-start}
#sent p{margin:0}
.end{background:transparent;color:var(--accent);padding:4px 0;align-self:flex-start;font-weight:500;text-decoration:underline}
@media (prefers-reduced-motion:no-preference){.panel{animation:rise .18s ease-out}@keyframes rise{from{opacity:0;transform:translateY(8px)}}.launcher{transition:transform .15s}.launcher:hover{transform:scale(1.04)}}
</style>
<div class="w">
<section class="panel" id="panel" role="dialog" aria-labelledby="title" hidden>
<header><div><h2 id="title">Chat with us</h2><p class="sub" id="who">We usually answer within minutes</p></div>
<button type="button" class="close" id="close" aria-label="Close the chat">&times;</button></header>
<p class="notice" id="notice" hidden></p>
<div class="log" id="log" role="log" aria-live="polite" aria-relevant="additions" aria-label="Conversation" tabindex="0"></div>
<p class="typing" id="typing" hidden></p>
<form id="start"><label for="name">Your name (optional)</label><input id="name" autocomplete="name" maxlength="200">
<button type="submit">Start chat</button>
<button type="button" class="end" id="leave">Leave a message instead</button></form>
<form id="compose" hidden><label for="text" class="sr">Message</label>
<div class="row"><textarea id="text" rows="1" maxlength="${MAX_CHARS}" placeholder="Type a message"></textarea><button type="button" id="attach" aria-label="Attach a file">+</button><button type="submit">Send</button></div>
<input type="file" id="file" aria-label="File to send" hidden>
<button type="button" class="end" id="end">End chat</button>
<button type="button" class="end" id="offer" hidden>Leave a message instead</button></form>
<form id="rate" hidden><fieldset class="stars"><legend>How was this chat?</legend>
${[1, 2, 3, 4, 5].map((n) => `<label><input type="radio" name="rating" value="${n}" required><span>${n}<span class="sr"> out of 5</span></span></label>`).join("")}
</fieldset><label for="comment">Comment (optional)</label><textarea id="comment" maxlength="5000" rows="2"></textarea>
<button type="submit">Send rating</button></form>
<form id="ticketed" hidden><label for="t-email">Your email</label><input id="t-email" name="email" type="email" autocomplete="email" maxlength="320" required>
<button type="submit">Send my email</button></form>
<form id="again" hidden><p id="thanks" hidden>Thank you for your rating.</p><button type="submit">Start a new chat</button></form>
<form id="mail" aria-labelledby="mail-title" hidden><h3 id="mail-title">Leave a message</h3>
<p class="sub" id="mail-hint">We answer by email. All fields are required.</p>
<label for="m-name">Your name</label><input id="m-name" name="name" autocomplete="name" maxlength="200" required>
<label for="m-email">Your email</label><input id="m-email" name="email" type="email" autocomplete="email" maxlength="320" required>
<label for="m-subject">Subject</label><input id="m-subject" name="subject" maxlength="500" required>
<label for="m-message">Message</label><textarea id="m-message" name="message" rows="5" maxlength="${FORM_CHARS}" required></textarea>
<div class="hp" aria-hidden="true"><label for="m-website">Leave this field empty</label><input id="m-website" name="website" tabindex="-1" autocomplete="off"></div>
<p class="err" id="m-error" role="alert" hidden></p>
<button type="submit" id="m-send">Send message</button>
<button type="button" class="end" id="m-back">Back to the chat</button></form>
<div id="sent" hidden><p id="sent-text" tabindex="-1"></p><button type="button" id="sent-back">Back to the chat</button></div>
</section>
<button type="button" class="launcher" id="launcher" aria-expanded="false" aria-controls="panel">
<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"/></svg><span>Chat</span></button>
<div class="sr" id="status" role="status" aria-live="polite"></div>
</div>`;
  const $ = (id) => root.getElementById(id);
  const ui = {
    panel: $("panel"),
    launcher: $("launcher"),
    close: $("close"),
    who: $("who"),
    notice: $("notice"),
    log: $("log"),
    typing: $("typing"),
    start: $("start"),
    name: $("name"),
    compose: $("compose"),
    text: $("text"),
    attach: $("attach"),
    file: $("file"),
    end: $("end"),
    rate: $("rate"),
    comment: $("comment"),
    again: $("again"),
    ticketed: $("ticketed"),
    ticketEmail: $("t-email"),
    thanks: $("thanks"),
    status: $("status"),
    leave: $("leave"),
    offer: $("offer"),
    mail: $("mail"),
    mailError: $("m-error"),
    mailSend: $("m-send"),
    mailBack: $("m-back"),
    sent: $("sent"),
    sentText: $("sent-text"),
    sentBack: $("sent-back"),
  };

  const announce = (text) => {
    ui.status.textContent = "";
    setTimeout(() => (ui.status.textContent = text), 50);
  };
  const notice = (text) => {
    ui.notice.textContent = text || "";
    ui.notice.hidden = !text;
  };
  const setConnection = (value) => host.setAttribute("data-connection", value);
  const isOpen = () => !ui.panel.hidden;
  const time = (iso) => {
    const d = iso ? new Date(iso) : new Date();
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  };

  // --- The conversation's view ---------------------------------------------------------------------------
  let view = "chat"; // or "mail" (the web form) or "sent" (its answer)
  let offline = false; // told the desk is offline or busy: the chat offers the form
  const render = () => {
    const status = session ? session.status : null;
    const closed = status === "closed";
    const chat = view === "chat";
    ui.start.hidden = !chat || !!(state.sessionId || startWanted) || refused;
    ui.compose.hidden = !chat || !(state.sessionId || startWanted) || closed || refused;
    ui.rate.hidden = !chat || !closed || state.rated || !!ticketed; // no agent answered: nothing to rate
    ui.again.hidden = !chat || !closed || !(state.rated || ticketed);
    ui.ticketed.hidden = !chat || !ticketed || !ticketed.emailRequested;
    ui.log.hidden = !chat;
    ui.mail.hidden = view !== "mail" || refused;
    ui.sent.hidden = view !== "sent";
    ui.offer.hidden = !offline || closed;
    ui.thanks.hidden = !state.rated;
    ui.launcher.hidden = false;
    if (status === "active") ui.who.textContent = agentName ? `You are chatting with ${agentName}` : "An agent has joined";
    else if (status === "waiting") ui.who.textContent = "Waiting for an agent";
    else if (closed) ui.who.textContent = "This chat has ended";
    else ui.who.textContent = "We usually answer within minutes";
    host.setAttribute("data-status", status || "none");
    host.setAttribute("data-view", view);
  };

  const metaText = (m) => {
    if (m.senderType !== "customer") return `${m.senderName || (m.senderType === "agent" ? "Agent" : "")} · ${time(m.createdAt)}`;
    if (m.failed) return `Not sent: ${m.failed}`;
    if (m.pending) return "Sending…";
    return `${time(m.createdAt)} · ${m.isRead ? "Read" : "Delivered"}`;
  };
  const stateOf = (m) => (m.failed ? "failed" : m.pending ? "sending" : m.isRead ? "read" : "delivered");

  const drawMessage = (m, li) => {
    li = li || document.createElement("div");
    li.className = `msg ${m.senderType}${m.failed ? " failed" : ""}`;
    li.dataset.state = stateOf(m);
    if (m.id) li.dataset.id = m.id;
    if (m.clientMessageId) li.dataset.clientMessageId = m.clientMessageId;
    li.replaceChildren();
    const who = document.createElement("span");
    who.className = "sr";
    who.textContent = m.senderType === "customer" ? "You: " : m.senderType === "agent" ? `${m.senderName || "Agent"}: ` : "";
    const text = document.createElement("p");
    text.append(who, m.message);
    const files = (m.attachments || []).map((a) => {
      const link = document.createElement("a"); // its presigned URL is asked for on click: it lives 5 minutes
      link.className = "file";
      link.href = "#";
      link.textContent = `${a.fileName} (${Math.max(1, Math.round(a.sizeBytes / 1024))} KB)`;
      link.addEventListener("click", (e) => (e.preventDefault(), download(a.id)));
      return link;
    });
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = metaText(m);
    if (m.senderType === "system") li.append(text);
    else li.append(text, ...files, meta);
    return li;
  };
  const liFor = (m) =>
    ui.log.querySelector(m.id ? `.msg[data-id="${m.id}"]` : `.msg[data-client-message-id="${CSS.escape(m.clientMessageId)}"]`);
  const scrollDown = () => (ui.log.scrollTop = ui.log.scrollHeight);

  const systemLine = (text) => {
    const li = drawMessage({ senderType: "system", message: text });
    ui.log.append(li);
    scrollDown();
  };

  const addMessage = (m) => {
    if (!m || m.sessionId !== state.sessionId || byId.has(m.id)) return; // nothing shown twice
    byId.set(m.id, m);
    messages.push(m);
    if (m.senderType === "agent" && m.senderName && !agentName) {
      agentName = m.senderName;
      render();
    }
    const waiting = m.clientMessageId ? state.pending.findIndex((p) => p.clientMessageId === m.clientMessageId) : -1;
    let li = null;
    if (waiting >= 0) {
      state.pending.splice(waiting, 1); // stored: it was sent once, and it is shown once
      persist();
      li = ui.log.querySelector(`.msg[data-client-message-id="${CSS.escape(m.clientMessageId)}"]`);
    }
    const node = drawMessage(m, li || undefined);
    if (!li) {
      const firstPending = ui.log.querySelector('.msg[data-state="sending"],.msg[data-state="failed"]');
      ui.log.insertBefore(node, firstPending);
      if (m.senderType === "agent") setTyping(false);
    }
    scrollDown();
    markReadSoon();
    if (m.senderType === "agent" && !m.isRead && !isOpen()) {
      unread += 1;
      launcherLabel();
      announce(`New message from ${m.senderName || "the agent"}`);
    }
  };

  let unread = 0;
  const launcherLabel = () => {
    const label = isOpen() ? "Close chat" : unread ? `Chat (${unread} new)` : "Chat";
    ui.launcher.querySelector("span").textContent = label;
  };

  const lastMessageId = () => (messages.length ? messages[messages.length - 1].id : undefined);

  const applyRead = (upTo) => {
    const index = messages.findIndex((m) => m.id === upTo.upToMessageId);
    if (index < 0) return;
    const side = messages[index].senderType;
    for (const m of messages.slice(0, index + 1)) {
      if (m.senderType === side && !m.isRead) {
        m.isRead = true;
        m.readAt = upTo.readAt;
        const li = liFor(m);
        if (li) drawMessage(m, li);
      }
    }
    if (side === "customer") announce("Your messages have been read");
  };

  let typingHide = 0;
  const setTyping = (on) => {
    clearTimeout(typingHide);
    ui.typing.hidden = !on;
    ui.typing.textContent = on ? `${agentName || "The agent"} is typing…` : "";
    if (on) typingHide = setTimeout(() => setTyping(false), 8000);
  };

  // A session only moves forward (waiting, then active, then closed): an older state that arrives after a newer one
  // is ignored. The answer to a request comes when its invocation ends (the route's response), after what it
  // posted, so an event of another request (an agent taking the chat) may overtake it.
  const STAGE = { waiting: 0, active: 1, closed: 2 };
  const applySession = (s) => {
    if (!s || (state.sessionId && s.id !== state.sessionId)) return;
    if (session && session.id === s.id && STAGE[s.status] < STAGE[session.status]) return;
    const before = session ? session.status : null;
    const agentBefore = session ? session.assignedAgentId : null;
    session = s;
    if ((s.rating && !state.rated) || (s.status === "closed") !== state.closed) {
      state.rated = state.rated || !!s.rating;
      state.closed = s.status === "closed";
      persist();
    }
    if (!state.sessionId) {
      state.sessionId = s.id;
      persist();
    }
    startWanted = false;
    if (s.status === "waiting") {
      if (!timers.wait) timers.wait = setTimeout(deskOffline, MAX_WAIT_MS);
    } else {
      clear("wait");
      queue = { position: null, asOf: queue.asOf };
      offline = false; // an agent came after all
      if (!refused) notice("");
    }
    // Every session the server sends names its agent (assignedAgentName): shown at once, the new one after a
    // transfer. A message's senderName still fills it in should a session come without it.
    if (s.assignedAgentId !== agentBefore) agentName = s.assignedAgentName || "";
    else if (s.assignedAgentName) agentName = s.assignedAgentName;
    if (s.status === "active" && s.assignedAgentId !== agentBefore) {
      const line = agentBefore
        ? agentName ? `You were transferred to ${agentName}` : "You were transferred to another agent"
        : agentName ? `${agentName} has joined the chat` : "An agent has joined the chat";
      systemLine(line);
      announce(line);
    }
    const ended = s.status === "closed" && before && before !== "closed";
    if (ended) {
      systemLine("The chat has ended");
      announce("The chat has ended. You can rate it.");
      setTyping(false);
    }
    render();
    if (ended && isOpen() && !state.rated) {
      const focus = root.activeElement;
      if (!focus || focus.closest("[hidden]")) ui.rate.querySelector("input").focus(); // keyboard users go on
    }
  };

  const deskOffline = () => {
    if (session && session.status === "waiting") {
      offline = true;
      notice("No agent is free right now: the desk is offline. Leave your message here and we will answer when we are back, or leave a message for an answer by email.");
      render();
    }
  };

  // --- The connection ------------------------------------------------------------------------------------
  const send = (action, fields, purpose) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return null;
    const requestId = `w${++requestCount}`;
    if (purpose) requests.set(requestId, purpose);
    ws.send(JSON.stringify({ action, requestId, ...fields }));
    clear("ping");
    timers.ping = setTimeout(ping, PING_MS); // any message resets the idle timer; ping after PING_MS of silence
    return requestId;
  };
  const ping = () => send("ping", {});

  const sendPending = (p) =>
    state.sessionId &&
    send("sendMessage", { sessionId: state.sessionId, message: p.message, clientMessageId: p.clientMessageId, ...(p.attachments ? { attachmentIds: p.attachments.map((a) => a.id) } : {}) }, { pending: p.clientMessageId });

  const startChat = () => send("startChat", { clientStartId: startId, ...(state.name ? { visitorName: state.name } : {}) });

  const onOpen = () => {
    attempt = 0;
    setConnection("open");
    if (ui.notice.textContent.startsWith("Connection lost")) notice("");
    timers.life = setTimeout(() => renew(), LIFE_MS * (0.95 + Math.random() * 0.05));
    if (state.sessionId) send("sync", lastMessageId() ? { sessionId: state.sessionId, afterMessageId: lastMessageId() } : { sessionId: state.sessionId }, { sync: true });
    else if (startWanted) startChat();
  };

  let connecting = false; // one connection attempt at a time (a retry and the browser's "online" may meet)
  const connect = async () => {
    clear("retry");
    if (refused || connecting || (ws && ws.readyState <= WebSocket.OPEN)) return;
    connecting = true;
    try {
      await openConnection();
    } finally {
      connecting = false;
    }
  };
  // The visitor session route: the key and this page's origin admitted (its tokens), refused (null), or an error.
  let admitted = null; // the answer asked at load, used by the first connection while its token is fresh
  const visitorSession = async () => {
    const body = { widgetKey: KEY };
    if (state.resumeToken) body.resumeToken = state.resumeToken;
    const reply = await fetch(API + "/api/support/widget/session", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    if (reply.status === 403 || reply.status === 422) return null;
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const visitor = (await reply.json()).data;
    state.resumeToken = visitor.resumeToken;
    persist();
    return visitor;
  };
  // At load: a page the key does not allow says so at once, not after the visitor typed a name and pressed Start.
  const checkAdmission = async () => {
    try {
      const visitor = await visitorSession();
      if (!visitor) return refuse();
      admitted = visitor;
    } catch (e) {
      /* unreachable now: Start tries again */
    }
  };
  const openConnection = async () => {
    setConnection("connecting");
    let visitor = admitted && Date.parse(admitted.expiresAt) - Date.now() > 60000 ? admitted : null;
    admitted = null; // a connect token is presented once
    try {
      visitor ||= await visitorSession();
    } catch (e) {
      return retry();
    }
    if (!visitor) return refuse();
    const url = new URL(WS);
    url.searchParams.set("visitorToken", visitor.connectToken); // short-lived: a fresh one for each connection
    let socket;
    try {
      socket = new WebSocket(url.href);
    } catch (e) {
      return retry();
    }
    ws = socket;
    socket.onopen = () => ws === socket && onOpen();
    socket.onmessage = (e) => {
      try {
        if (ws === socket) handle(JSON.parse(e.data));
      } catch (err) {
        /* not JSON: ignore */
      }
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      clear("ping");
      clear("life");
      if (wanted()) retry();
      else setConnection("idle");
    };
  };

  // A connection is kept while there is a chat to follow: one starting, going on, or ended and not yet rated.
  const wanted = () => startWanted || (!!state.sessionId && !(state.closed && state.rated));
  const disconnect = () => {
    const old = ws;
    ws = null;
    clear("ping");
    clear("life");
    clear("retry");
    if (old) old.close(1000, "done");
    setConnection("idle");
  };

  const retry = () => {
    if (refused || timers.retry) return;
    setConnection("offline");
    if (state.sessionId || startWanted) notice("Connection lost: reconnecting… Messages you type now are sent when it is back.");
    const ceiling = Math.min(30000, 500 * 2 ** attempt++);
    timers.retry = setTimeout(() => {
      delete timers.retry;
      connect();
    }, ceiling / 2 + Math.random() * (ceiling / 2)); // exponential backoff, half of it jitter
  };

  const renew = () => {
    // Before API Gateway's 2-hour limit: a new connection, then `sync` from the last message (nothing missed).
    const old = ws;
    ws = null;
    clear("ping");
    if (old) old.close(1000, "renewing");
    attempt = 0;
    connect();
  };

  const refuse = () => {
    refused = true;
    if (view === "mail") view = "chat";
    setConnection("refused");
    notice("Chat is not available on this site: the widget key does not allow this page's address.");
    announce("Chat is not available on this site");
    render();
  };

  const handle = (event) => {
    const d = event.data || {};
    const purpose = event.requestId ? requests.get(event.requestId) : undefined;
    if (event.requestId) requests.delete(event.requestId);
    switch (event.type) {
      case "chat.started":
      case "chat.assigned":
      case "chat.transferred":
      case "chat.ended":
        applySession(d);
        if (event.type === "chat.started") state.pending.forEach(sendPending);
        break;
      case "chat.rated":
        if (d.id === state.sessionId) {
          state.rated = true;
          persist();
          applySession(d);
          announce("Thank you for your rating");
          ui.again.querySelector("button").focus();
          disconnect(); // nothing more to follow until the visitor starts another chat
        }
        break;
      case "chat.queued":
        if (!state.sessionId && startWanted) {
          state.sessionId = d.sessionId; // it may come before chat.started
          persist();
        }
        if (d.sessionId === state.sessionId && d.asOf >= queue.asOf) {
          queue = { position: d.position, asOf: d.asOf };
          const text = d.position === 1 ? "You are next in the queue" : `You are number ${d.position} in the queue`;
          if (!ui.notice.textContent.startsWith("No agent")) notice(text);
          announce(text);
        }
        break;
      case "chat.ticketed":
        if (d.sessionId === state.sessionId) {
          const was = ticketed;
          ticketed = d;
          const ref = d.reference ? ` ${d.reference}` : "";
          const text = d.emailRequested
            ? `No agent could answer in time, so your chat is now ticket${ref}. Leave your email and we will answer there.`
            : `Thank you: we will answer ticket${ref} by email.`;
          notice(text);
          announce(text);
          render();
          if (d.emailRequested && !was && isOpen()) ui.ticketEmail.focus();
        }
        break;
      case "message.new":
        addMessage(d);
        break;
      case "sync":
        applySession(d.session);
        (d.messages || []).forEach(addMessage);
        if (d.hasMore) send("sync", { sessionId: state.sessionId, afterMessageId: lastMessageId() }, { sync: true });
        else state.pending.forEach(sendPending); // after the gap is filled: what was typed offline, same ids
        break;
      case "typing":
        if (d.sessionId === state.sessionId && d.senderType === "agent") setTyping(!!d.isTyping);
        break;
      case "message.read":
        if (d.sessionId === state.sessionId) applyRead(d);
        break;
      case "error":
        if (d.code === "desk_busy") {
          // The queue is full: nothing was started. The visitor may try again later, or use the web form.
          startWanted = false;
          offline = true;
          render();
          notice(d.webFormUrl ? `${d.message}: ${d.webFormUrl}` : d.message);
          announce(`${d.message}. You can leave a message instead.`);
          if (isOpen()) ui.leave.focus(); // the Start button's form is back: on to the form's offer
        } else if (purpose && purpose.sync && d.code === "not_found") {
          resetChat(); // the chat is gone (another tenant's data was never ours): start afresh
        } else if (purpose && purpose.pending) {
          const p = state.pending.find((x) => x.clientMessageId === purpose.pending);
          if (p && d.code !== "conflict") {
            p.failed = d.message || d.code;
            const li = liFor({ clientMessageId: p.clientMessageId });
            if (li) drawMessage({ ...p, senderType: "customer", pending: true }, li);
          } else if (p) {
            state.pending = state.pending.filter((x) => x !== p); // the chat has ended: it cannot be sent
            persist();
          }
        } else if (d.message) {
          notice(d.message);
        }
        break;
      default:
        break;
    }
  };

  // --- What the visitor does -----------------------------------------------------------------------------
  let readTimer = 0;
  const markReadSoon = () => {
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      if (!isOpen() || document.visibilityState === "hidden") return;
      const unread = messages.filter((m) => m.senderType === "agent" && !m.isRead);
      if (unread.length) send("markRead", { sessionId: state.sessionId, upToMessageId: unread[unread.length - 1].id });
    }, 300);
  };

  let typingSentAt = 0;
  let typingStop = 0;
  const typing = (on) => {
    if (!state.sessionId || !session || session.status === "closed") return;
    clearTimeout(typingStop);
    if (on) {
      if (Date.now() - typingSentAt > TYPING_MS) {
        typingSentAt = Date.now();
        send("typing", { sessionId: state.sessionId, isTyping: true });
      }
      typingStop = setTimeout(() => typing(false), TYPING_MS + 1000);
    } else if (typingSentAt) {
      typingSentAt = 0;
      send("typing", { sessionId: state.sessionId, isTyping: false });
    }
  };

  const newId = () =>
    crypto.randomUUID ? crypto.randomUUID() : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

  // Attachments (docs/api.md, "Attachments"): an upload URL for this chat, the file straight to S3, then the message.
  const widgetPost = async (path, body) => {
    const reply = await fetch(API + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ widgetKey: KEY, resumeToken: state.resumeToken, ...body }),
      credentials: "omit",
      cache: "no-store",
    });
    const answer = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error((answer.error && answer.error.message) || `HTTP ${reply.status}`);
    return answer.data;
  };
  const sendFile = async (file) => {
    if (!file || !state.sessionId) return;
    ui.attach.disabled = true;
    notice(`Uploading ${file.name}…`);
    try {
      const upload = await widgetPost("/api/support/widget/attachments/upload-url", {
        sessionId: state.sessionId, fileName: file.name, contentType: file.type || "application/octet-stream", sizeBytes: file.size,
      });
      const form = new FormData();
      for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
      form.append("file", file);
      const stored = await fetch(upload.url, { method: "POST", body: form, credentials: "omit" });
      if (!stored.ok) throw new Error(`the upload was refused (HTTP ${stored.status})`);
      notice("");
      const attachments = [{ id: upload.attachmentId, fileName: file.name, contentType: file.type, sizeBytes: file.size }];
      sendText(attachments);
    } catch (e) {
      notice(`Could not send ${file.name}: ${e.message}`);
    } finally {
      ui.attach.disabled = false;
      ui.file.value = "";
    }
  };
  const download = async (attachmentId) => {
    try {
      const file = await widgetPost(`/api/support/widget/attachments/${attachmentId}/download-url`, {});
      window.open(file.url, "_blank", "noopener");
    } catch (e) {
      notice(`Could not open the file: ${e.message}`);
    }
  };

  const sendText = (attachments) => {
    const text = ui.text.value;
    if (!text.trim() && !attachments) return;
    const p = { clientMessageId: newId(), message: text.trim() ? text : attachments[0].fileName, ...(attachments ? { attachments } : {}) };
    state.pending.push(p);
    persist();
    ui.text.value = "";
    const li = drawMessage({ ...p, senderType: "customer", pending: true });
    ui.log.append(li);
    scrollDown();
    typing(false);
    if (session) sendPending(p); // before chat.started the id is not known yet: sent once it is
  };

  const resetChat = () => {
    state.sessionId = null;
    state.pending = [];
    state.rated = false;
    state.closed = false;
    session = null;
    messages.length = 0;
    byId.clear();
    agentName = "";
    queue = { position: null, asOf: "" };
    ticketed = null;
    offline = false;
    clear("wait");
    persist();
    ui.log.replaceChildren();
    notice("");
    setTyping(false);
    render();
  };

  const open = (on) => {
    ui.panel.hidden = !on;
    ui.launcher.setAttribute("aria-expanded", String(on));
    if (on) unread = 0;
    launcherLabel();
    if (on) {
      const target = view === "mail" ? firstEmpty() : view === "sent" ? ui.sentText : !ui.start.hidden ? ui.name : !ui.compose.hidden ? ui.text : !ui.rate.hidden ? ui.rate.querySelector("input") : ui.close;
      target.focus();
      scrollDown();
      markReadSoon();
    } else {
      ui.launcher.focus();
    }
  };

  // --- The web form: a ticket by email when no one can chat (POST /api/support/widget/tickets) -------------
  const fields = { name: $("m-name"), email: $("m-email"), subject: $("m-subject"), message: $("m-message"), website: $("m-website") };
  const FIELD = { "body.name": "name", "body.email": "email", "body.subject": "subject", "body.message": "message" };
  const firstEmpty = () => ["name", "email", "subject", "message"].map((n) => fields[n]).find((f) => !f.value.trim()) || fields.message;
  const mailError = (text, field) => {
    ui.mailError.textContent = text || "";
    ui.mailError.hidden = !text;
    for (const name of Object.values(FIELD)) {
      fields[name].removeAttribute("aria-invalid");
      fields[name].removeAttribute("aria-describedby");
    }
    if (field) {
      fields[field].setAttribute("aria-invalid", "true");
      fields[field].setAttribute("aria-describedby", "m-error");
      fields[field].focus();
    }
  };
  const showMail = () => {
    view = "mail";
    if (!fields.name.value) fields.name.value = state.name;
    mailError("");
    render();
    firstEmpty().focus();
  };
  const backToChat = () => {
    view = "chat";
    render();
    const target = !ui.start.hidden ? ui.name : !ui.compose.hidden ? ui.text : !ui.rate.hidden ? ui.rate.querySelector("input") : ui.close;
    target.focus();
  };
  const inTime = (value) => {
    const n = Math.max(1, Number(value) || 60);
    return n < 90 ? `${n} seconds` : `${Math.ceil(n / 60)} minutes`;
  };
  let mailing = false;
  const sendMail = async () => {
    if (mailing) return;
    const body = { widgetKey: KEY };
    for (const name of ["name", "email", "subject"]) body[name] = fields[name].value.trim();
    body.message = fields.message.value;
    if (fields.website.value) body.website = fields.website.value; // a person never sees it: only a bot fills it in
    if (data.formCategory) body.category = data.formCategory;
    mailing = true;
    ui.mailSend.disabled = true;
    ui.mailSend.textContent = "Sending…";
    mailError("");
    let reply;
    let answer = {};
    try {
      reply = await fetch(API + "/api/support/widget/tickets", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
      answer = await reply.json().catch(() => ({}));
    } catch (e) {
      reply = null;
    } finally {
      mailing = false;
      ui.mailSend.disabled = false;
      ui.mailSend.textContent = "Send message";
    }
    if (!reply) return mailError("The desk could not be reached: check your connection and send again.");
    if (reply.status === 201 && answer.data) {
      view = "sent";
      ui.sentText.textContent = `Thank you: we have your message. Your reference is ${answer.data.reference}. We will answer by email at ${body.email}.`;
      ui.sentText.dataset.reference = answer.data.reference;
      for (const name of ["subject", "message"]) fields[name].value = "";
      render();
      ui.sentText.focus();
      announce(`Message sent. Your reference is ${answer.data.reference}.`);
      return;
    }
    if (reply.status === 403) return refuse();
    if (reply.status === 429) return mailError(`Too many messages from here just now: please send again in ${inTime(reply.headers.get("retry-after"))}.`);
    const detail = ((answer.error || {}).details || [])[0] || {};
    if (reply.status === 422 || reply.status === 413) {
      const field = FIELD[detail.field];
      const label = field ? root.querySelector(`label[for="m-${field}"]`).textContent : "";
      return mailError(label ? `${label}: ${detail.message || "please check it"}` : (answer.error || {}).message || "Please check the form.", field);
    }
    mailError("Something went wrong on our side: please send again in a moment.");
  };

  ui.leave.addEventListener("click", showMail);
  ui.offer.addEventListener("click", showMail);
  ui.mailBack.addEventListener("click", backToChat);
  ui.sentBack.addEventListener("click", backToChat);
  ui.mail.addEventListener("submit", (e) => {
    e.preventDefault();
    sendMail();
  });

  ui.launcher.addEventListener("click", () => open(ui.panel.hidden));
  ui.close.addEventListener("click", () => open(false));
  ui.panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") open(false);
  });
  ui.start.addEventListener("submit", (e) => {
    e.preventDefault();
    state.name = ui.name.value.trim();
    persist();
    startWanted = true;
    render();
    ui.text.focus();
    startId = newId(); // a new attempt; its resends (after a drop) keep the id
    if (ws && ws.readyState === WebSocket.OPEN) startChat();
    else connect();
  });
  ui.compose.addEventListener("submit", (e) => {
    e.preventDefault();
    sendText();
  });
  ui.attach.addEventListener("click", () => ui.file.click());
  ui.file.addEventListener("change", () => sendFile(ui.file.files[0]));
  ui.text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendText();
    }
  });
  ui.text.addEventListener("input", () => typing(!!ui.text.value));
  ui.end.addEventListener("click", () => {
    if (state.sessionId) send("endChat", { sessionId: state.sessionId });
  });
  ui.rate.addEventListener("submit", (e) => {
    e.preventDefault();
    const chosen = ui.rate.querySelector("input[name=rating]:checked");
    if (!chosen) return;
    const fields = { sessionId: state.sessionId, rating: Number(chosen.value) };
    if (ui.comment.value.trim()) fields.feedback = ui.comment.value.trim();
    send("rateChat", fields);
  });
  ui.ticketed.addEventListener("submit", (e) => {
    e.preventDefault();
    const email = ui.ticketEmail.value.trim();
    if (!email || !ui.ticketEmail.checkValidity()) {
      ui.ticketEmail.setAttribute("aria-invalid", "true");
      notice("Please enter a valid email address.");
      return;
    }
    ui.ticketEmail.removeAttribute("aria-invalid");
    send("leaveEmail", { sessionId: state.sessionId, email });
  });
  ui.again.addEventListener("submit", (e) => {
    e.preventDefault();
    resetChat();
    ui.name.value = state.name;
    ui.name.focus();
  });
  window.addEventListener("online", () => {
    if (!ws && !refused) {
      attempt = 0;
      connect();
    }
  });
  document.addEventListener("visibilitychange", markReadSoon);

  window.__supportWidget = { host, version: 1 };
  for (const p of state.pending) ui.log.append(drawMessage({ ...p, senderType: "customer", pending: true }));
  render();
  setConnection("idle");
  (document.body || document.documentElement).append(host);
  if (!KEY) refuse();
  else if (state.sessionId && !(state.closed && state.rated)) connect(); // a returning visitor: their conversation
  else {
    if (state.sessionId) resetChat(); // done with: a new chat next time
    checkAdmission();
  }
})();

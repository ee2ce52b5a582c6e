// The agent console: sign-in, then the views (live chats, tickets, dashboard, the SLA policy, routing settings; an
// admin's automation rules) chosen by the URL's hash.
//
// Where it talks to: config.json beside index.html names the HTTP API (`apiBaseUrl`) and the WebSocket API
// (`websocketUrl`). Left empty, the console asks the server that serves it (`GET /_local/config`, the local
// gateway of make run); hosted anywhere else, fill them in (docs/browser.md, "The agent console").

import { Api, unreachableMessage } from "./api.js";
import { claimsOf, completeHostedSignIn, forgetToken, renderSignIn, storeToken, storedToken } from "./auth.js";
import { ChatsView } from "./chats.js";
import { renderDashboard } from "./dashboard.js";
import { renderSettings } from "./settings.js";
import { clear, h, notify } from "./dom.js";
import { Live } from "./live.js";
import { RulesView } from "./rules.js";
import { renderRouting } from "./routing.js";
import { TicketsView } from "./tickets.js";

const main = document.getElementById("main");

async function loadConfig() {
  let config = {};
  try {
    const response = await fetch("config.json", { cache: "no-cache" });
    if (response.ok) config = await response.json();
  } catch { /* no config.json: the serving gateway's defaults */ }
  config = { apiBaseUrl: "", websocketUrl: "", hostedSignIn: null, localSignIn: false, ...config };
  if (!config.apiBaseUrl || !config.websocketUrl) {
    try {
      const response = await fetch(new URL("/_local/config", location.href));
      if (response.ok) {
        const local = (await response.json()).data;
        config.apiBaseUrl ||= local.apiBaseUrl;
        config.websocketUrl ||= local.websocketUrl;
        config.localSignIn = Boolean(local.localSignIn);
        config.localSignInBase = location.origin; // the server that serves the console signs in
      }
    } catch { /* not the local gateway */ }
  }
  config.apiBaseUrl = (config.apiBaseUrl || location.origin).replace(/\/$/, "");
  return config;
}

class Console {
  constructor(config) {
    this.config = config;
    this.token = null;
    this.views = {};
  }

  async start() {
    const fromRedirect = await completeHostedSignIn(this.config.hostedSignIn);
    if (fromRedirect) storeToken(fromRedirect);
    const token = storedToken();
    if (token) this.signedIn(token);
    else this.signIn();
    document.getElementById("sign-out").addEventListener("click", () => this.signOut());
    window.addEventListener("hashchange", () => this.route());
  }

  signIn() {
    document.getElementById("views").hidden = true;
    document.getElementById("who").hidden = true;
    renderSignIn(main, this.config, (token) => this.signedIn(token));
  }

  async signedIn(token) {
    storeToken(token);
    this.token = token;
    const claims = claimsOf(token);
    this.me = { tenantId: claims.tenant_id, role: claims.role, agentId: claims.agent_id || null, name: null };
    this.api = new Api(this.config.apiBaseUrl, () => this.token, () => this.expired(), (up) => this.reachable(up));
    if (this.me.agentId) {
      try {
        this.me.name = (await this.api.get(`/agents/${this.me.agentId}`)).agentName;
      } catch (error) {
        notify(`Could not read your agent record: ${error.message}`);
      }
    }
    this.me.name ||= this.me.role === "admin" ? "Admin" : "Agent";
    document.getElementById("who-name").textContent = `${this.me.name} (${this.me.role})`;
    document.getElementById("views").hidden = false;
    for (const item of document.querySelectorAll("#views [data-admin]")) item.hidden = this.me.role !== "admin";
    document.getElementById("who").hidden = false;
    const status = document.getElementById("connection");
    if (this.config.websocketUrl) {
      this.live = new Live(this.config.websocketUrl, () => this.token);
      this.live.addEventListener("state", (event) => {
        status.textContent = event.detail === "online" ? "live" : event.detail;
        status.dataset.state = event.detail;
      });
      this.live.start();
    } else {
      status.textContent = "no WebSocket URL configured";
    }
    this.views = {
      chats: new ChatsView(this),
      tickets: new TicketsView(this),
      rules: new RulesView(this),
    };
    if (!location.hash.startsWith("#/")) location.hash = "#/chats";
    else this.route();
  }

  /** The API stopped answering (up = false) or answers again: a banner that stays while it is down (not a notice
   * that fades), a probe every few seconds, and the current view drawn afresh once it is back. */
  reachable(up) {
    const banner = document.getElementById("offline");
    clearInterval(this.probeTimer);
    this.probeTimer = null;
    if (!up) {
      banner.textContent = unreachableMessage(this.api.base);
      banner.hidden = false;
      this.probeTimer = setInterval(() => this.api?.probe(), 3000);
      return;
    }
    banner.hidden = true;
    banner.textContent = "";
    notify("The support API answers again.", "info");
    this.route();
  }

  expired() {
    if (!this.token) return;
    notify("Your sign-in has expired: sign in again.");
    this.signOut();
  }

  signOut() {
    clearInterval(this.probeTimer);
    this.probeTimer = null;
    document.getElementById("offline").hidden = true;
    forgetToken();
    this.token = null;
    if (this.live) this.live.stop();
    this.live = null;
    for (const view of Object.values(this.views)) view.dispose?.();
    this.views = {};
    this.signIn();
  }

  route() {
    if (!this.token) return;
    const [name, ...rest] = location.hash.replace(/^#\//, "").split("/");
    const view = ["chats", "tickets", "dashboard", "settings", "routing", "rules"].includes(name) ? name : "chats";
    for (const link of document.querySelectorAll("#views a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    for (const [key, other] of Object.entries(this.views)) if (key !== view) other.leave?.();
    clear(main);
    main.dataset.view = view;
    if (view === "dashboard") renderDashboard(main, this);
    else if (view === "settings") renderSettings(main, this);
    else if (view === "routing") renderRouting(main, this);
    else this.views[view].render(main, rest);
    const titles = {
      chats: "Live chats",
      tickets: "Tickets",
      dashboard: "Dashboard",
      settings: "SLA policy",
      routing: "Routing",
      rules: "Automation rules",
    };
    document.title = `${titles[view]} · Support console`;
  }
}

loadConfig().then((config) => {
  window.supportConsole = new Console(config);
  return window.supportConsole.start();
}).catch((error) => {
  clear(main).append(h("p", {}, `The console could not start: ${error.message}`));
});

// Sign-in. The console acts with a JWT whose claims the API reads: tenant_id, role (admin | agent), agent_id.
//
// - Locally (make run), the gateway's development-only sign-in lists the desk's people (GET /_local/agents)
//   and signs a token for the one picked (POST /_local/token), as `make token` does.
// - In AWS, paste a token from your identity provider, or, when config.json names one (`hostedSignIn`),
//   use its hosted sign-in: the console sends the browser to it and reads the token it returns in the
//   URL fragment (OAuth 2.0 implicit grant, as Cognito's hosted UI offers). This is the hook the deployment's
//   Cognito user pool plugs into: `hostedSignIn: {"authorizeUrl", "clientId", "scope"?, "tokenParameter"?}`.

import { h, clear, notify } from "./dom.js";

const STORAGE_KEY = "support-console.token";

/** The claims of a JWT (not verified here: the API verifies every request). */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    const json = decodeURIComponent(Array.from(atob(part), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export function usable(token) {
  const claims = token ? claimsOf(token) : null;
  return Boolean(claims && claims.tenant_id && claims.role && (!claims.exp || claims.exp * 1000 > Date.now() + 5000));
}

export function storedToken() {
  const token = sessionStorage.getItem(STORAGE_KEY);
  return usable(token) ? token : null;
}

export function storeToken(token) {
  sessionStorage.setItem(STORAGE_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** A token handed back by the hosted sign-in in the URL fragment (#access_token=...), taken out of the URL. */
export function tokenFromRedirect(hosted) {
  if (!hosted || !location.hash.includes("=")) return null;
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get(hosted.tokenParameter || "access_token");
  if (!token) return null;
  history.replaceState(null, "", location.pathname + location.search);
  return token;
}

function hostedSignInUrl(hosted) {
  const url = new URL(hosted.authorizeUrl);
  url.searchParams.set("response_type", "token");
  url.searchParams.set("client_id", hosted.clientId);
  url.searchParams.set("redirect_uri", hosted.redirectUri || location.origin + location.pathname);
  if (hosted.scope) url.searchParams.set("scope", hosted.scope);
  return url.toString();
}

/** The sign-in view in `main`; calls signedIn(token) once a usable token is chosen. */
export function renderSignIn(main, config, signedIn) {
  clear(main);
  const heading = h("h1", { tabindex: "-1" }, "Sign in to the support console");
  main.append(heading);

  if (config.localSignIn) main.append(localSignIn(config, signedIn));
  if (config.hostedSignIn) {
    main.append(h("section", { class: "card", "aria-labelledby": "hosted-heading" },
      h("h2", { id: "hosted-heading" }, "Your organisation's sign-in"),
      h("a", { class: "button", href: hostedSignInUrl(config.hostedSignIn) }, "Sign in")));
  }
  main.append(pasteToken(signedIn));
  heading.focus();
}

function pasteToken(signedIn) {
  const area = h("textarea", { id: "token-input", rows: "3", required: true, spellcheck: "false", autocomplete: "off" });
  const form = h("form", { class: "card", "aria-labelledby": "paste-heading" },
    h("h2", { id: "paste-heading" }, "Sign in with a token"),
    h("p", {}, "Paste a JWT from the desk's identity provider (with the tenant_id and role claims)."),
    h("label", { for: "token-input" }, "Token"),
    area,
    h("button", { type: "submit" }, "Sign in with this token"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = area.value.trim();
    if (!usable(token)) {
      notify("That is not a usable token: it must be a JWT with tenant_id and role claims that has not expired.");
      return;
    }
    signedIn(token);
  });
  return form;
}

function localSignIn(config, signedIn) {
  const section = h("section", { class: "card", "aria-labelledby": "local-heading" },
    h("h2", { id: "local-heading" }, "Local desk (development sign-in)"),
    h("p", {}, "make run's gateway signs a token for the person you pick. Nothing deployed offers this."));
  const people = h("div", { id: "local-people" }, h("p", {}, "Loading the desk's people…"));
  const tenantInput = h("input", { id: "local-tenant", name: "tenantId", type: "text", autocomplete: "off",
    placeholder: "a0000000-0000-4000-8000-00000000000a" });
  const other = h("form", { class: "inline-form" },
    h("label", { for: "local-tenant" }, "Another tenant's id"), tenantInput,
    h("button", { type: "submit", class: "secondary" }, "Show its people"));
  other.addEventListener("submit", (event) => {
    event.preventDefault();
    load(tenantInput.value.trim());
  });
  section.append(people, other);

  let asked = 0; // only the latest request's answer is shown (the first list may arrive after a tenant's)
  async function load(tenantId) {
    const mine = ++asked;
    const url = new URL(config.localSignInBase + "/_local/agents");
    if (tenantId) url.searchParams.set("tenantId", tenantId);
    try {
      const response = await fetch(url);
      const payload = await response.json();
      if (mine !== asked) return;
      if (!payload.success) throw new Error(payload.error?.message || "refused");
      clear(people).append(...payload.data.tenants.map((tenant) => tenantPeople(tenant)));
    } catch (error) {
      if (mine === asked) clear(people).append(h("p", {}, `The local sign-in did not answer: ${error.message}`));
    }
  }

  function tenantPeople(tenant) {
    const title = tenant.name || `Tenant ${tenant.tenantId}`;
    const list = h("ul", { class: "people" },
      h("li", {}, h("button", { type: "button", "data-role": "admin", "data-tenant": tenant.tenantId,
        onclick: () => signIn(tenant.tenantId, "admin") }, `Admin of ${title}`)),
      ...tenant.agents.map((agent) => h("li", {},
        h("button", { type: "button", "data-role": "agent", "data-agent": agent.id, "data-tenant": tenant.tenantId,
          onclick: () => signIn(tenant.tenantId, "agent", agent.id) }, agent.agentName),
        h("span", { class: "muted" }, ` ${agent.department || "no department"} · ${agent.status}`))));
    return h("div", { class: "tenant" }, h("h3", {}, title), list);
  }

  async function signIn(tenantId, role, agentId) {
    try {
      const response = await fetch(config.localSignInBase + "/_local/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ tenantId, role, ...(agentId ? { agentId } : {}) }),
      });
      const payload = await response.json();
      if (!payload.success) throw new Error(payload.error?.message || "refused");
      signedIn(payload.data.token);
    } catch (error) {
      notify(`Sign-in failed: ${error.message}`);
    }
  }

  load("");
  return section;
}

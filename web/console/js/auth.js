// Sign-in. The console acts with a JWT whose claims the API reads: tenant_id, role (admin | agent), agent_id.
//
// - Locally (make run), the gateway's development-only sign-in lists the desk's people (GET /_local/agents)
//   and signs a token for the one picked (POST /_local/token), as `make token` does.
// - In AWS, paste a token from your identity provider, or, when config.json names one (`hostedSignIn`),
//   use its hosted sign-in: OAuth 2.0's authorization code grant with PKCE (RFC 7636), as Cognito offers it to a
//   public client (no secret). The console sends the browser to `authorizeUrl` with a random `state` and the S256
//   challenge of a random verifier, both kept in this tab's sessionStorage; back with `?code=&state=`, it accepts
//   the answer only if `state` is the one this tab sent (once), then trades the code and the verifier for tokens
//   at `tokenUrl`. A link made by someone else (their code, or an `#access_token=` of the implicit grant, which
//   the console no longer reads) signs nobody in: without the tab's state it is refused before any exchange, and
//   the token endpoint would refuse a code without its verifier anyway. This is the hook the deployment's Cognito
//   user pool plugs into: `hostedSignIn: {"authorizeUrl", "tokenUrl"?, "clientId", "scope"?, "redirectUri"?}`
//   (tokenUrl defaults to authorizeUrl with /authorize replaced by /token, Cognito's layout).

import { h, clear, notify } from "./dom.js";

const STORAGE_KEY = "support-console.token";
const PENDING_KEY = "support-console.hosted-sign-in"; // {state, verifier, redirectUri} of the sign-in under way

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

function randomText(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function redirectUriOf(hosted) {
  return hosted.redirectUri || location.origin + location.pathname;
}

function tokenUrlOf(hosted) {
  return hosted.tokenUrl || hosted.authorizeUrl.replace(/\/authorize$/, "/token");
}

/** Start the hosted sign-in: a fresh state and verifier for this tab, then the provider's page. */
async function startHostedSignIn(hosted) {
  const pending = { state: randomText(32), verifier: randomText(32), redirectUri: redirectUriOf(hosted) };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier)));
  const url = new URL(hosted.authorizeUrl);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", hosted.clientId);
  url.searchParams.set("redirect_uri", pending.redirectUri);
  if (hosted.scope) url.searchParams.set("scope", hosted.scope);
  url.searchParams.set("state", pending.state);
  url.searchParams.set("code_challenge", challenge);
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/**
 * The end of a hosted sign-in, if this page load is one: the access token for `?code=&state=` when the state is
 * the one this tab sent, else null (with the reason shown). The answer and any implicit-grant token in the
 * fragment are taken out of the address first, so neither stays in the history.
 */
export async function completeHostedSignIn(hosted) {
  if (/(^|[#&])(access_token|id_token)=/.test(location.hash)) {
    history.replaceState(null, "", location.pathname + location.search);
    notify("That link carried a token in its address, which this console does not accept: sign in here instead.");
  }
  const query = new URLSearchParams(location.search);
  if (!query.has("code") && !query.has("error")) return null;
  const code = query.get("code");
  const state = query.get("state");
  const error = query.get("error_description") || query.get("error");
  for (const name of ["code", "state", "error", "error_description"]) query.delete(name);
  const rest = query.toString();
  history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);

  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || "null");
  sessionStorage.removeItem(PENDING_KEY); // one answer per sign-in, whatever it is
  if (!hosted || !pending || !state || state !== pending.state) {
    notify("Refused a sign-in answer that this tab did not ask for (its state does not match): sign in here.");
    return null;
  }
  if (error) {
    notify(`The sign-in page refused: ${error}`);
    return null;
  }
  try {
    const response = await fetch(tokenUrlOf(hosted), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: hosted.clientId,
        code,
        redirect_uri: pending.redirectUri,
        code_verifier: pending.verifier,
      }),
    });
    const tokens = await response.json();
    if (!response.ok || !tokens.access_token) throw new Error(tokens.error_description || tokens.error || `HTTP ${response.status}`);
    return tokens.access_token; // the refresh token is not kept: a new sign-in after the hour, as before
  } catch (failure) {
    notify(`The sign-in could not be completed: ${failure.message}`);
    return null;
  }
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
      h("button", { type: "button", id: "hosted-sign-in", onclick: () => startHostedSignIn(config.hostedSignIn) },
        "Sign in")));
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

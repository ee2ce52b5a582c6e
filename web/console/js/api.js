// The HTTP API: every answer is {"success", "data", "nextCursor"?} or {"success": false, "error": {...}}.

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** What a person reads when the API cannot be reached (fetch itself only says "Failed to fetch"). */
export function unreachableMessage(base) {
  return `The support API at ${base} does not answer: it may be stopped (is make run running?), or the network ` +
    "is down. The console keeps trying and carries on once it answers.";
}

export class Api {
  /** base: the HTTP API's URL (e.g. http://127.0.0.1:3000); token(): the current bearer token;
   * onReachable(boolean): told when the API stops answering at all, and when it answers again. */
  constructor(base, token, onUnauthorized = () => {}, onReachable = () => {}) {
    this.base = base.replace(/\/$/, "");
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.onReachable = onReachable;
    this.reachable = true;
  }

  setReachable(reachable) {
    if (reachable === this.reachable) return;
    this.reachable = reachable;
    this.onReachable(reachable);
  }

  /** Whether the API answers at all (any HTTP answer counts), without acting on what it says. */
  async probe() {
    try {
      await fetch(this.base + "/api/support/agents?limit=1", { headers: { Authorization: `Bearer ${this.token()}` }, cache: "no-store" });
    } catch {
      return false;
    }
    this.setReachable(true);
    return true;
  }

  async request(method, path, { query, body } = {}) {
    const url = new URL(this.base + "/api/support" + path);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Authorization: `Bearer ${this.token()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      // No answer at all (the API is down, the network is, or CORS refused it): fetch's TypeError has no words.
      this.setReachable(false);
      throw new ApiError(0, "unreachable", unreachableMessage(this.base));
    }
    this.setReachable(true);
    let payload = null;
    try { payload = await response.json(); } catch { payload = null; }
    if (response.status === 401) {
      this.onUnauthorized();
      throw new ApiError(401, "unauthorized", "Your sign-in has expired or is not valid: sign in again.");
    }
    if (!response.ok || !payload || payload.success === false) {
      const error = payload?.error || {};
      const detail = (error.details || []).map((d) => `${d.field}: ${d.message}`).join("; ");
      throw new ApiError(response.status, error.code || "error",
        (error.message || payload?.message || `HTTP ${response.status}`) + (detail ? ` (${detail})` : ""), error.details);
    }
    return payload;
  }

  async get(path, query) { return (await this.request("GET", path, { query })).data; }
  page(path, query) { return this.request("GET", path, { query }); }
  async post(path, body) { return (await this.request("POST", path, { body })).data; }
  async patch(path, body) { return (await this.request("PATCH", path, { body })).data; }
  async put(path, body) { return (await this.request("PUT", path, { body })).data; }

  /** Every item of a paginated list, following nextCursor up to `most` items. */
  async all(path, query = {}, most = 500) {
    const items = [];
    let cursor = null;
    do {
      const page = await this.page(path, { ...query, limit: 100, cursor });
      items.push(...page.data);
      cursor = page.nextCursor;
    } while (cursor && items.length < most);
    return items;
  }
}

// Canned responses in the composer: `/shortcut` then a space (or Tab) expands the response with that key
// (GET /canned-responses/by-shortcut/{key}) and counts a use (POST /canned-responses/{id}/use); the picker
// searches the library (GET /canned-responses?search=&sort=usage) and inserts the one chosen, counting a use too.

import { announce, clear, h, notify } from "./dom.js";

const SHORTCUT_BEFORE_CARET = /(^|\s)\/([A-Za-z0-9_-]{1,32})$/;

export async function countUse(api, response) {
  try {
    await api.post(`/canned-responses/${response.id}/use`);
  } catch (error) {
    notify(`The use of “${response.responseTitle}” was not counted: ${error.message}`);
  }
}

/** If the text before the caret (less `typed`, the space just typed) ends with /key of a canned response,
 * replace "/key" + typed with the response's content and count a use. */
export async function expandShortcut(api, textarea, typed) {
  const caret = textarea.selectionStart;
  const before = textarea.value.slice(0, caret - typed.length);
  const found = SHORTCUT_BEFORE_CARET.exec(before);
  if (!found) return false;
  const key = found[2];
  let response;
  try {
    response = await api.get(`/canned-responses/by-shortcut/${encodeURIComponent(key)}`);
  } catch (error) {
    if (error.status !== 404) notify(`Could not look up /${key}: ${error.message}`);
    return false;
  }
  // The text may have changed while we asked: expand only if "/key" + typed is still where it was.
  const start = before.length - key.length - 1;
  if (textarea.value.slice(start, caret) !== `/${key}${typed}`) return false;
  textarea.setRangeText(response.responseContent, start, caret, "end");
  announce(`Inserted the canned response “${response.responseTitle}”`);
  await countUse(api, response);
  return true;
}

let pickers = 0;

export class CannedPicker {
  constructor(api, scope, insert) {
    this.api = api;
    this.insert = insert;
    this.id = `canned-${scope}-${++pickers}`;
    this.search = h("input", { type: "search", id: `${this.id}-search`, autocomplete: "off" });
    this.results = h("ul", { class: "canned-results", id: `${this.id}-results`, "aria-live": "polite" });
    this.element = h("div", { class: "canned-picker card", id: this.id, hidden: true },
      h("label", { for: `${this.id}-search` }, "Search canned responses"), this.search, this.results);
    let timer = null;
    this.search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.load(), 200);
    });
    this.element.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); this.close(); }
    });
  }

  toggle(button) {
    this.button = button;
    if (this.element.hidden) this.open();
    else this.close();
  }

  open() {
    this.element.hidden = false;
    this.button?.setAttribute("aria-expanded", "true");
    this.search.focus();
    this.load();
  }

  close() {
    this.element.hidden = true;
    this.button?.setAttribute("aria-expanded", "false");
    this.button?.focus();
  }

  async load() {
    const query = { sort: "usage", limit: 20, search: this.search.value.trim() || undefined };
    try {
      const found = await this.api.get("/canned-responses", query);
      clear(this.results);
      if (!found.length) this.results.append(h("li", { class: "muted" }, "No canned response matches."));
      for (const response of found) {
        this.results.append(h("li", {},
          h("button", { type: "button", class: "canned-choice", "data-shortcut": response.shortcutKey,
            onclick: async () => {
              this.insert(response);
              this.element.hidden = true;
              this.button?.setAttribute("aria-expanded", "false");
              await countUse(this.api, response);
            } },
          h("span", { class: "shortcut" }, `/${response.shortcutKey}`), " ", h("strong", {}, response.responseTitle)),
          h("p", { class: "muted preview" }, response.responseContent.slice(0, 140))));
      }
    } catch (error) {
      notify(`Could not search the canned responses: ${error.message}`);
    }
  }
}

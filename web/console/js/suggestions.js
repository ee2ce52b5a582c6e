// Suggested responses beside a reply box: the tenant's canned responses that match the customer's recent words
// (GET /tickets/{id}/suggested-responses, GET /chat/sessions/{id}/suggested-responses: docs/api.md, "Canned
// responses"), each with the words that matched. Choosing one inserts its text into the reply box at the caret and
// counts a use, as the canned picker does.

import { countUse } from "./canned.js";
import { announce, clear, h, insertAtCaret } from "./dom.js";

export class SuggestionsPanel {
  /** path: the conversation's suggested-responses route (under /api/support); textarea: its reply box. */
  constructor(api, path, textarea, scope) {
    this.api = api;
    this.path = path;
    this.textarea = textarea;
    this.headingId = `suggestions-heading-${scope}`;
    this.list = h("ul", { class: "suggestion-list plain", "aria-live": "polite" });
    this.refresh = h("button", { type: "button", class: "secondary small", onclick: () => this.load() }, "Refresh suggestions");
    this.element = h("section", { class: "suggestions card", "aria-labelledby": this.headingId },
      h("div", { class: "suggestions-header" }, h("h3", { id: this.headingId }, "Suggested responses"), this.refresh),
      this.list);
    this.timer = null;
  }

  /** Load again soon (a burst of the customer's messages asks once). */
  soon(ms = 800) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), ms);
  }

  async load() {
    let found;
    try {
      found = await this.api.get(this.path);
    } catch (error) {
      clear(this.list).append(h("li", { class: "muted" }, `No suggestions: ${error.message}`));
      return;
    }
    const signature = JSON.stringify(found.map((r) => [r.id, r.matchedWords]));
    if (this.list.dataset.signature === signature) return;
    this.list.dataset.signature = signature;
    clear(this.list);
    if (!found.length) this.list.append(h("li", { class: "muted" }, "No canned response matches the customer's words."));
    for (const response of found) {
      const words = response.matchedWords.length ? response.matchedWords.join(", ") : "none";
      this.list.append(h("li", {},
        h("button", { type: "button", class: "suggestion", "data-response": response.id,
          "aria-describedby": `matched-${this.headingId}-${response.id}`,
          onclick: () => this.choose(response) },
        h("strong", {}, response.responseTitle),
        h("span", { class: "preview" }, response.responseContent.slice(0, 140))),
        h("p", { class: "muted matched", id: `matched-${this.headingId}-${response.id}` }, `Matched: ${words}`)));
    }
  }

  async choose(response) {
    insertAtCaret(this.textarea, response.responseContent);
    announce(`Inserted the suggested response “${response.responseTitle}”`);
    await countUse(this.api, response);
  }

  dispose() {
    clearTimeout(this.timer);
  }
}

// Small DOM helpers: element creation, formatting, announcements. No framework.

/** h("button", {type: "button", onclick}, "Text", child...) -> an element. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An SVG element: svg("rect", {x: 1}). */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

/** A whole number of seconds as people read it: "45 s", "3 min 5 s", "2 h 4 min", "1 d 3 h". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ""}`;
  return `${Math.floor(s / 86400)} d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)} h` : ""}`;
}

export function time(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function dateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** "in_progress" -> "in progress". */
export function label(value) {
  return String(value ?? "").replaceAll("_", " ");
}

/** Tell screen-reader users (the page's aria-live region). */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.append(h("p", {}, text));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

let noticeTimer = null;
/** A visible message at the bottom of the page (errors, confirmations). */
export function notify(text, kind = "error") {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; box.textContent = ""; }, 8000);
}

/** Put `text` in a textarea where its caret is (replacing a selection), and leave the caret after it. */
export function insertAtCaret(textarea, text) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? start;
  textarea.setRangeText(text, start, end, "end");
  textarea.dispatchEvent(new Event("change"));
  textarea.focus();
}

/** A message's uploaded files (docs/api.md, "Attachments") as download links: each asks the API for its presigned
 * URL on click (it lives 5 minutes) and opens it. Files hosted elsewhere (`url`) link straight there. */
export function fileLinks(api, files) {
  if (!files || !files.length) return null;
  return h("ul", { class: "files" }, files.map((file) => h("li", {},
    h("a", {
      href: file.url || "#", class: "file", target: file.url ? "_blank" : null, rel: "noopener",
      "data-attachment-id": file.id || null,
      onclick: file.id ? async (event) => {
        event.preventDefault();
        try {
          window.open((await api.get(`/attachments/${file.id}`)).url, "_blank", "noopener");
        } catch (error) {
          notify(`Could not open ${file.fileName}: ${error.message}`);
        }
      } : null,
    }, `${file.fileName} (${Math.max(1, Math.round((file.sizeBytes || 0) / 1024))} KB)`))));
}

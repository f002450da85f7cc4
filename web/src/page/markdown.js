// Model output is untrusted text: rendered as markdown by marked, with any raw HTML in it shown as text,
// then sanitized by DOMPurify (links to javascript: and the like) before it touches the DOM.
import DOMPurify from "dompurify";
import { Marked } from "marked";

const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]);

// Escaping raw HTML (instead of leaving it to DOMPurify) also keeps inline handlers such as onerror= out of
// DOMPurify's parse, where Chromium reports them as CSP violations.
const markdown = new Marked({ async: false, gfm: true, breaks: true, renderer: { html: ({ text }) => escapeHtml(text) } });

// Images and inline styles are dropped: the CSP blocks them anyway, and a remote image would leak the chat.
const SANITIZE_OPTIONS = { USE_PROFILES: { html: true }, FORBID_TAGS: ["img", "style", "form", "input"], FORBID_ATTR: ["style"] };

// A link opens in a new tab: following it in this one would drop the loaded model.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

export function renderMarkdown(text) {
  return DOMPurify.sanitize(markdown.parse(text), SANITIZE_OPTIONS);
}

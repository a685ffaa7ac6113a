/** Small DOM helpers for the explorer page (no framework: a handful of panels). */
import { ApiCallError } from "./api.ts";

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`The page has no #${id}`);
  return el as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; title?: string } = {},
  children: (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  if (props.title) node.title = props.title;
  for (const c of children) node.append(c);
  return node;
}

/** Replaces a panel's output with an error box: what went wrong, and the fix when the server gave one. */
export function showError(target: HTMLElement, err: unknown): void {
  const box = el("div", { className: "error" });
  box.setAttribute("role", "alert");
  box.append(el("strong", { text: "Error: " }), err instanceof Error ? err.message : String(err));
  if (err instanceof ApiCallError && err.fix) box.append(el("div", { className: "fix", text: err.fix }));
  target.replaceChildren(box);
}

export function showBusy(target: HTMLElement, text: string): void {
  target.replaceChildren(el("div", { className: "busy", text }));
}

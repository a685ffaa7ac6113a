import { formatValue } from "../color-scale.ts";
import type { TokenViewData } from "../figure.ts";
import { displayToken } from "../token-labels.ts";
import { tokenViewSvg } from "../views/token-svg.ts";

/** The paper SVG of the token view plus a hover tooltip with the token, its position and exact value. */
export function mountTokenView(el: HTMLElement, data: TokenViewData, title: string): void {
  el.innerHTML = tokenViewSvg(data, title);
  const tip = el.appendChild(document.createElement("div"));
  tip.className = "cs-tip";
  tip.hidden = true;
  el.addEventListener("mouseover", (e) => {
    const g = (e.target as Element).closest<SVGGElement>(".cs-token");
    for (const f of el.querySelectorAll(".cs-token.cs-focus")) f.classList.remove("cs-focus");
    if (!g) {
      tip.hidden = true;
      return;
    }
    g.classList.add("cs-focus");
    const sample = data.samples[Number(g.dataset.sample)];
    const i = Number(g.dataset.index);
    tip.textContent = `${sample.label ? `${sample.label}\n` : ""}${i}: ${displayToken(sample.tokens[i])}\n${data.valueLabel} = ${formatValue(sample.values[i])}`;
    tip.hidden = false;
  });
  el.addEventListener("mousemove", (e) => {
    tip.style.left = `${e.clientX + 12}px`;
    tip.style.top = `${e.clientY + 12}px`;
  });
  el.addEventListener("mouseleave", () => {
    tip.hidden = true;
    for (const f of el.querySelectorAll(".cs-token.cs-focus")) f.classList.remove("cs-focus");
  });
}

/** A neuron page as plain terminal text (the max-activating token of each example in [[brackets]]). */
import { formatToken } from "../tokenizer/format-token.ts";
import type { NeuronPageData } from "./neuron-page.ts";

export function formatNeuronPage(page: NeuronPageData): string {
  const lines = [`Neuron L${page.layer} N${page.neuron} of ${page.model}`];
  if (page.index) {
    const ix = page.index;
    lines.push(
      `Index ${ix.dir}: ${ix.tokens} tokens of ${ix.corpus}; density ${(100 * ix.density).toFixed(2)}% of tokens > 0`,
      "Top examples:",
    );
    ix.examples.forEach((e, i) => {
      const [start, end] = e.window;
      const text = e.strTokens
        .slice(start, end)
        .map((s, j) => (start + j === e.position ? `[[${s}]]` : s))
        .join("")
        .replace(/\n/g, "\\n");
      lines.push(`  ${String(i + 1).padStart(2)}  ${e.value.toFixed(3).padStart(7)}  ${text}`);
    });
  }
  const effect = (t: { str: string; value: number }) => `${formatToken(t.str)} ${t.value.toFixed(3)}`;
  lines.push(`Promotes:   ${page.logitEffect.top.map(effect).join(", ")}`);
  lines.push(`Suppresses: ${page.logitEffect.bottom.map(effect).join(", ")}`);
  if (page.ownText) {
    lines.push("Your text:");
    page.ownText.strTokens.forEach((s, i) => {
      lines.push(
        `  ${String(i).padStart(3)}  ${page.ownText!.activations[i].toFixed(3).padStart(7)}  ${formatToken(s)}`,
      );
    });
  }
  return `${lines.join("\n")}\n`;
}

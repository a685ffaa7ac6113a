import type { AttentionData, AttentionFigure, TokenFigure, TokenViewData } from "../figure.ts";
import { validateAttention } from "./attention-svg.ts";
import { validateTokenView } from "./token-svg.ts";

/** The CircuitsVis-style attention view: pick a head, hover tokens to see what they attend to and from. */
export function attentionView(opts: { title: string } & AttentionData): AttentionFigure {
  const data: AttentionData = { tokens: opts.tokens, heads: opts.heads };
  validateAttention(data);
  return { kind: "attention", title: opts.title, data };
}

/** Text coloured by per-token values (a neuron's activation, a per-position effect), several samples. */
export function tokenView(
  opts: { title: string } & Omit<TokenViewData, "scale"> & { scale?: TokenViewData["scale"] },
): TokenFigure {
  const data: TokenViewData = {
    samples: opts.samples,
    scale: opts.scale ?? "diverging",
    valueLabel: opts.valueLabel,
    ...(opts.domain ? { domain: opts.domain } : {}),
  };
  validateTokenView(data);
  return { kind: "tokens", title: opts.title, data };
}

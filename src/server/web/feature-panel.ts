/**
 * SAE features in the explorer (when the server was started with --sae): a feature's page, feature search
 * by token or by text, and the list of features the prediction view shows — each feature a button that
 * opens its page.
 */
import { displayToken } from "../../viz/token-labels.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { showUnitPage } from "./neuron-panel.ts";

export function showFeature(out: HTMLElement, feature: number, text: string): Promise<void> {
  return showUnitPage(out, {
    path: `/api/features/${feature}`,
    text,
    busy: `Loading feature ${feature}…`,
    noIndex: "No feature index loaded (start the server with --feature-index DIR for top examples).",
  });
}

/** A transcoder feature's page (a computed graph's feature node): the page `feature --transcoders` shows. */
export function showTranscoderFeature(
  out: HTMLElement,
  layer: number,
  feature: number,
  text: string,
): Promise<void> {
  return showUnitPage(out, {
    path: `/api/transcoder-features/${layer}/${feature}`,
    text,
    busy: `Loading transcoder feature L${layer} F${feature}…`,
    noIndex: "No transcoder feature index: examples, histogram and density are not computed.",
  });
}

export interface FeatureListItem {
  feature: number;
  /** "activation 3.21 at ·Lily", "logit effect 0.52" */
  detail: string;
}

/** A list of features, each a button calling `open(feature)`. */
export function featureList(items: FeatureListItem[], open: (feature: number) => void): HTMLElement {
  const list = el("ol", { className: "feature-list" });
  for (const it of items) {
    const button = el("button", { className: "feature-link", text: `F${it.feature}` });
    button.type = "button";
    button.dataset.feature = String(it.feature);
    button.addEventListener("click", () => open(it.feature));
    list.append(el("li", {}, [button, ` ${it.detail}`]));
  }
  return list;
}

interface SearchResponse {
  by: "token" | "text";
  features: { feature: number; logitEffect?: number; activation?: number; token?: string }[];
  /** By token, for a soft-capped model: the effects are on the pre-cap logit (preCapNote); else absent or "". */
  preCapNote?: string;
}

export async function searchFeatures(
  out: HTMLElement,
  query: { token: string } | { text: string },
  open: (feature: number) => void,
): Promise<void> {
  delete out.dataset.ready;
  showBusy(out, "Searching the SAE's features…");
  try {
    const res = await api.post<SearchResponse>("/api/features/search", { ...query, top: 10 });
    const preCap = res.preCapNote ? "pre-cap " : "";
    const heading =
      res.by === "token"
        ? `Features whose decoder direction raises ${displayToken((query as { token: string }).token)} most (direct ${preCap}logit effect)`
        : "Features most active on the text (largest activation, and where)";
    const items = res.features.map((f) => ({
      feature: f.feature,
      detail:
        res.by === "token"
          ? `${preCap}logit effect ${f.logitEffect!.toFixed(3)}`
          : `activation ${f.activation!.toFixed(3)} at ${displayToken(f.token!)}`,
    }));
    out.replaceChildren(
      el("h3", { text: heading }),
      ...(res.preCapNote ? [el("p", { className: "hint pre-cap-note", text: res.preCapNote.trim() })] : []),
      featureList(items, open),
    );
    out.dataset.ready = "true";
  } catch (err) {
    showError(out, err);
  }
}

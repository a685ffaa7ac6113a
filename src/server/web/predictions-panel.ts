/** Prompt → its tokens and the model's top next-token predictions (answer/wrong reports when given). */
import { displayToken } from "../../viz/token-labels.ts";
import { api } from "./api.ts";
import { el, showBusy, showError } from "./dom.ts";
import { featureList } from "./feature-panel.ts";

interface Prediction {
  token: number;
  str: string;
  logit: number;
  prob: number;
  rank?: number;
}

export interface PredictResponse {
  tokens: number[];
  strTokens: string[];
  top: Prediction[];
  answer?: Prediction & { rank: number };
  wrong?: Prediction & { rank: number };
  logitDiff?: number;
  /** With an SAE (serve --sae): the most active features at the final position. */
  features?: { hook: string; pos: number; top: { feature: number; activation: number }[] };
}

function tokenStrip(strTokens: string[], tokens: number[]): HTMLElement {
  const strip = el("div", { className: "token-strip" });
  strTokens.forEach((s, i) => {
    strip.append(
      el("span", { className: "tok", text: displayToken(s), title: `position ${i}, id ${tokens[i]}` }),
    );
  });
  return strip;
}

function predictionTable(top: Prediction[]): HTMLElement {
  const table = el("table", { className: "predictions" });
  table.append(
    el("thead", {}, [
      el(
        "tr",
        {},
        ["#", "token", "logit", "prob"].map((h) => el("th", { text: h })),
      ),
    ]),
  );
  const body = table.appendChild(el("tbody"));
  top.forEach((p, i) => {
    const bar = el("span", { className: "prob-bar" });
    bar.style.width = `${Math.max(1, Math.round(p.prob * 60))}px`;
    body.append(
      el("tr", {}, [
        el("td", { text: String(i) }),
        el("td", { className: "tok-cell" }, [el("span", { className: "tok", text: displayToken(p.str) })]),
        el("td", { className: "num", text: p.logit.toFixed(3) }),
        el("td", { className: "num" }, [bar, `${(p.prob * 100).toFixed(2)}%`]),
      ]),
    );
  });
  return table;
}

function answerLine(label: string, r: Prediction & { rank: number }): HTMLElement {
  return el("div", {
    className: "answer-line",
    text: `${label} ${displayToken(r.str)}: rank ${r.rank}, logit ${r.logit.toFixed(3)}, prob ${(r.prob * 100).toFixed(2)}%`,
  });
}

export async function showPredictions(
  out: HTMLElement,
  params: { prompt: string; answer?: string; wrong?: string },
  openFeature?: (feature: number) => void,
): Promise<PredictResponse | null> {
  showBusy(out, "Running the model…");
  try {
    const res = await api.post<PredictResponse>("/api/predict", { ...params, topK: 10 });
    const parts: HTMLElement[] = [
      el("h3", { text: `Tokens (${res.tokens.length})` }),
      tokenStrip(res.strTokens, res.tokens),
    ];
    if (res.answer) parts.push(answerLine("Answer", res.answer));
    if (res.wrong) parts.push(answerLine("Wrong", res.wrong));
    if (res.logitDiff !== undefined) {
      parts.push(
        el("div", {
          className: "answer-line",
          text: `Logit difference (answer − wrong): ${res.logitDiff.toFixed(3)}`,
        }),
      );
    }
    parts.push(el("h3", { text: "Top predictions at the final position" }), predictionTable(res.top));
    if (res.features && openFeature) {
      const f = res.features;
      parts.push(
        el("h3", {
          text: `Most active SAE features at the final position (${displayToken(res.strTokens[f.pos])}, ${f.hook})`,
        }),
        f.top.length
          ? featureList(
              f.top.map((t) => ({ feature: t.feature, detail: `activation ${t.activation.toFixed(3)}` })),
              openFeature,
            )
          : el("p", { className: "hint", text: "No feature is active at this position." }),
      );
    }
    out.replaceChildren(...parts);
    out.dataset.ready = "true";
    return res;
  } catch (err) {
    showError(out, err);
    return null;
  }
}

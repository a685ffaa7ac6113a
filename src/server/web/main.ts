/**
 * The explorer page: wires the panels to the form fields and keeps the view in the URL, so reloading
 * or sharing the link fills in the same view. Only a click runs the model: an address (a link on another
 * site, a page framing or opening this one) must not start model runs by itself.
 */
import { displayToken } from "../../viz/token-labels.ts";
import { api } from "./api.ts";
import { showAttentionGrid } from "./attention-panel.ts";
import { showAttribution } from "./attribution-panel.ts";
import { runCircuit } from "./circuit-panel.ts";
import { byId, showError } from "./dom.ts";
import { searchFeatures, showFeature } from "./feature-panel.ts";
import { runGraph, showGraph } from "./graph-panel.ts";
import { showNeuron } from "./neuron-panel.ts";
import { runPatching } from "./patching-panel.ts";
import { showPredictions } from "./predictions-panel.ts";
import { FIELDS, parsePair, readState, type ViewState, writeState } from "./url-state.ts";

interface Info {
  model: string;
  cfg: { nLayers: number; nHeads: number; nCtx: number; dMlp: number };
  patchTargets: string[];
  neuronIndex: boolean;
  graph: boolean;
  /** The server's tasks: "graph" when it was started with --transcoders. */
  features: string[];
  /** The SAE given to serve --sae (null without one). */
  sae: { hook: string; dSae: number } | null;
  /** Whether the transcoders have a feature index: a computed graph's feature nodes then open their pages. */
  transcoderIndex: boolean;
}

type Field = HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;

/** Form fields ↔ ViewState (the ids match the state's field names). */
const FIELD_IDS = FIELDS;

/** Opens a feature's page (from a search result or the prediction view) and records it in the URL. */
function openFeature(feature: number): void {
  byId<HTMLInputElement>("feature").value = String(feature);
  const s = formState();
  writeState(s);
  void lookUpFeature(s);
}

async function lookUpFeature(state: ViewState): Promise<void> {
  if (!state.feature) return;
  const out = byId("feature-out");
  if (!/^\d+$/.test(state.feature.trim()))
    return showError(out, new Error(`Feature "${state.feature}" is not a whole number, e.g. 185`));
  await showFeature(out, Number(state.feature), state.prompt);
}

let saeLoaded = false;

function formState(): ViewState {
  const s = {} as ViewState;
  for (const f of FIELD_IDS) s[f] = byId<Field>(f).value;
  s.prompt = s.prompt.trim() === "" ? "" : s.prompt;
  return s;
}

function fillForm(state: ViewState): void {
  for (const f of FIELD_IDS) if (state[f] !== "") byId<Field>(f).value = state[f];
}

/** The all-heads grid for the prompt, with the URL's head (if any) opened; a picked head goes into the URL. */
async function showHead(state: ViewState): Promise<void> {
  const out = byId("attention-out");
  if (!state.prompt) return;
  const pair = state.head ? parsePair(state.head) : null;
  if (state.head && !pair)
    return showError(out, new Error(`Head "${state.head}" is not LAYER.HEAD, e.g. 1.2`));
  await showAttentionGrid(out, {
    prompt: state.prompt,
    head: pair,
    onSelect: (layer, head) => {
      byId<HTMLInputElement>("head").value = `${layer}.${head}`;
      writeState(formState());
    },
  });
}

async function analysePrompt(state: ViewState): Promise<void> {
  if (!state.prompt) return;
  const answers = state.answer && state.wrong ? { answer: state.answer, wrong: state.wrong } : null;
  const predicted = await showPredictions(
    byId("predictions-out"),
    { prompt: state.prompt, ...answers },
    saeLoaded ? openFeature : undefined,
  );
  if (predicted && answers) {
    await showAttribution(byId("attribution-out"), { prompt: state.prompt, ...answers }, (layer, head) => {
      byId<HTMLInputElement>("head").value = `${layer}.${head}`;
      const s = formState();
      writeState(s);
      void showHead(s);
    });
  }
  await showHead(state);
}

async function lookUpNeuron(state: ViewState): Promise<void> {
  if (!state.neuron) return;
  const out = byId("neuron-out");
  const pair = parsePair(state.neuron);
  if (!pair) return showError(out, new Error(`Neuron "${state.neuron}" is not LAYER.INDEX, e.g. 0.12`));
  await showNeuron(out, pair[0], pair[1], state.prompt);
}

function canPatch(s: ViewState): boolean {
  return Boolean(s.clean && s.corrupted && s.answer && s.wrong && s.target);
}

function onSubmit(formId: string, action: (s: ViewState) => Promise<void>): void {
  byId(formId).addEventListener("submit", (e) => {
    e.preventDefault();
    const s = formState();
    writeState(s);
    void action(s);
  });
}

/**
 * Under the answer and wrong boxes: the token as every figure writes it, so a leading space (" are")
 * is visible as `·are` while typing.
 */
function showTokenPreviews(): void {
  for (const id of ["answer", "wrong"]) {
    const input = byId<HTMLInputElement>(id);
    const preview = document.createElement("span");
    preview.className = "token-preview";
    preview.id = `${id}-preview`;
    const update = () => {
      preview.textContent = input.value === "" ? "" : `token: ${displayToken(input.value)}`;
    };
    input.addEventListener("input", update);
    input.after(preview);
    update();
  }
}

async function main(): Promise<void> {
  const info = await api.get<Info>("/api/info");
  byId("model-name").textContent =
    `${info.model} · ${info.cfg.nLayers} layers × ${info.cfg.nHeads} heads · context ${info.cfg.nCtx} tokens`;
  const targetSelect = byId<HTMLSelectElement>("target");
  for (const t of info.patchTargets) targetSelect.append(new Option(t, t));
  const state = readState();
  fillForm(state);
  showTokenPreviews();

  onSubmit("prompt-form", analysePrompt);
  onSubmit("head-form", showHead);
  onSubmit("neuron-form", lookUpNeuron);
  if (info.sae) {
    saeLoaded = true;
    byId("feature-panel").hidden = false;
    byId("feature-sae").textContent = `SAE at ${info.sae.hook}, ${info.sae.dSae} features.`;
    onSubmit("feature-form", lookUpFeature);
    onSubmit("feature-search-form", async () => {
      await searchFeatures(
        byId("feature-search-out"),
        { token: byId<HTMLInputElement>("feature-token").value },
        openFeature,
      );
    });
    byId("search-text").addEventListener("click", () => {
      const s = formState();
      if (!s.prompt)
        return showError(
          byId("feature-search-out"),
          new Error("Write a prompt (in the Prompt panel) to search its text."),
        );
      void searchFeatures(byId("feature-search-out"), { text: s.prompt }, openFeature);
    });
  }
  onSubmit("patching-form", async (s) => {
    if (!canPatch(s))
      return showError(
        byId("patching-out"),
        new Error(
          "Patching needs a clean and a corrupted prompt and the answer and wrong tokens (in the Prompt panel).",
        ),
      );
    await runPatching(byId("patching-out"), s);
  });

  byId("circuit-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const s = formState();
    const out = byId("circuit-out");
    if (!(s.clean && s.corrupted && s.answer && s.wrong))
      return showError(
        out,
        new Error(
          "A circuit needs a clean and a corrupted prompt (in the Activation patching panel) and the answer and wrong tokens (in the Prompt panel).",
        ),
      );
    const method = byId<HTMLSelectElement>("circuit-method").value as "eap" | "eap-ig";
    const faithfulness = Number(byId<HTMLInputElement>("circuit-faithfulness").value);
    void runCircuit(out, {
      clean: s.clean,
      corrupted: s.corrupted,
      answer: s.answer,
      wrong: s.wrong,
      method,
      faithfulness,
    });
  });

  // A graph given to the server is shown at once: it is a file, not a model run.
  if (info.graph) void showGraph(byId("graph-out"));
  // With transcoders the panel computes graphs: its form is shown, the prompt panel's prompt fills it.
  if (info.features.includes("graph")) {
    byId("graph-form").hidden = false;
    byId("graph-form-hint").hidden = false;
    byId("graph-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const out = byId("graph-out");
      const input = byId<HTMLInputElement>("graph-prompt");
      if (input.value.trim() === "") input.value = formState().prompt;
      if (input.value.trim() === "")
        return showError(out, new Error("The graph needs a prompt: type one in the graph panel."));
      const target = byId<HTMLInputElement>("graph-target").value;
      void runGraph(
        out,
        {
          prompt: input.value,
          targets: target === "" ? [] : [target],
          nodeThreshold: Number(byId<HTMLInputElement>("graph-node-threshold").value),
          edgeThreshold: Number(byId<HTMLInputElement>("graph-edge-threshold").value),
        },
        info.transcoderIndex ? byId("graph-feature-out") : null,
      );
    });
  }

  // The view the URL describes is filled in, not run: the user's click starts it.
  if (FIELD_IDS.some((f) => state[f] !== "")) {
    byId("page-note").textContent = "Filled in from the address: press Run (or Look up) to compute it.";
  }
  document.body.dataset.ready = "true";
}

main().catch((err) => showError(byId("page-error"), err));

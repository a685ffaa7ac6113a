/**
 * The view lives in the query string, so a link (or a reload) reproduces it: the page recomputes every
 * panel from these fields.
 */
export interface ViewState {
  prompt: string;
  answer: string;
  wrong: string;
  /** Selected head as "L.H". */
  head: string;
  clean: string;
  corrupted: string;
  target: string;
  /** Neuron as "L.N". */
  neuron: string;
  /** SAE feature number. */
  feature: string;
}

/** The state's fields, in order; the page's form fields have these ids. */
export const FIELDS: readonly (keyof ViewState)[] = [
  "prompt",
  "answer",
  "wrong",
  "head",
  "clean",
  "corrupted",
  "target",
  "neuron",
  "feature",
];

export function readState(search: string = location.search): ViewState {
  const q = new URLSearchParams(search);
  const state = {} as ViewState;
  for (const f of FIELDS) state[f] = q.get(f) ?? "";
  return state;
}

export function stateToSearch(state: ViewState): string {
  const q = new URLSearchParams();
  for (const f of FIELDS) if (state[f] !== "") q.set(f, state[f]);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Records the state in the URL without a reload (replaceState: the back button is not flooded). */
export function writeState(state: ViewState): void {
  const search = stateToSearch(state);
  if (search !== location.search)
    history.replaceState(null, "", `${location.pathname}${search}${location.hash}`);
}

/** "3.7" → [3, 7]; null when the text is not LAYER.INDEX. */
export function parsePair(text: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2])] : null;
}

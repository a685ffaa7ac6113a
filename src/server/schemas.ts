/**
 * JSON schemas of the API's request bodies (fastify validates them before a handler runs). Strings are
 * capped well above what any model context holds, so the tokenizer never sees megabytes; the exact
 * context check is in validate.ts.
 */
export const MAX_PROMPT_CHARS = 8000;
export const MAX_TOKEN_TEXT_CHARS = 64;

const prompt = { type: "string", minLength: 1, maxLength: MAX_PROMPT_CHARS } as const;
const tokenText = { type: "string", minLength: 1, maxLength: MAX_TOKEN_TEXT_CHARS } as const;
const index = { type: "integer", minimum: 0, maximum: 1_000_000 } as const;

function body(properties: Record<string, object>, required: string[]) {
  return { type: "object", additionalProperties: false, properties, required } as const;
}

export const tokensBody = body({ prompt }, ["prompt"]);
export const predictBody = body(
  {
    prompt,
    topK: { type: "integer", minimum: 1, maximum: 100, default: 10 },
    answer: tokenText,
    wrong: tokenText,
    featurePos: index,
  },
  ["prompt"],
);
/** One head (`layer`, `head`) or every head (`heads: "all"`); which combination is given is checked in the route. */
export const attentionBody = body(
  { prompt, layer: index, head: index, heads: { type: "string", const: "all" } },
  ["prompt"],
);
export const attributionBody = body({ prompt, answer: tokenText, wrong: tokenText }, [
  "prompt",
  "answer",
  "wrong",
]);
/** The prompt pair and answer tokens every background job reads. */
const pairFields = { clean: prompt, corrupted: prompt, answer: tokenText, wrong: tokenText } as const;

export const patchingJobBody = body(
  {
    kind: { type: "string", const: "patching" },
    ...pairFields,
    target: { type: "string", minLength: 1, maxLength: 64 },
  },
  ["kind", "clean", "corrupted", "answer", "wrong", "target"],
);
export const circuitJobBody = body(
  {
    kind: { type: "string", const: "circuit" },
    ...pairFields,
    // Optional (eap-ig, 0.8): defaults inside oneOf are not applied, so the handler fills them in.
    method: { type: "string", enum: ["eap", "eap-ig"] },
    faithfulness: { type: "number", exclusiveMinimum: 0, maximum: 1 },
  },
  ["kind", "clean", "corrupted", "answer", "wrong"],
);
/** Most logit targets a graph request names (the default choice also stops at 10). */
export const MAX_GRAPH_TARGETS = 10;
export const graphJobBody = body(
  {
    kind: { type: "string", const: "graph" },
    prompt,
    targets: { type: "array", items: tokenText, maxItems: MAX_GRAPH_TARGETS },
    // Optional (0.8, 0.98, as `circuitscope graph`): the handler fills them in.
    nodeThreshold: { type: "number", minimum: 0, maximum: 1 },
    edgeThreshold: { type: "number", minimum: 0, maximum: 1 },
  },
  ["kind", "prompt"],
);
/** A background job: activation patching, a circuit or an attribution graph (told apart by `kind`). */
export const jobBody = { oneOf: [patchingJobBody, circuitJobBody, graphJobBody] } as const;
export const jobIdParams = {
  type: "object",
  properties: { id: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" } },
  required: ["id"],
} as const;
/** URL parameters arrive as strings; the handler parses them (validate.ts pathIndex) with a clear error. */
const indexText = { type: "string", minLength: 1, maxLength: 16 } as const;
export const neuronParams = {
  type: "object",
  properties: { layer: indexText, neuron: indexText },
  required: ["layer", "neuron"],
} as const;
export const neuronQuery = {
  type: "object",
  additionalProperties: false,
  properties: { text: prompt },
} as const;
export const featureParams = {
  type: "object",
  properties: { feature: indexText },
  required: ["feature"],
} as const;
export const transcoderFeatureParams = {
  type: "object",
  properties: { layer: indexText, feature: indexText },
  required: ["layer", "feature"],
} as const;
/** Feature search: by `token` (one token's text) or by `text`; which one is checked in the route. */
export const featureSearchBody = body(
  { token: tokenText, text: prompt, top: { type: "integer", minimum: 1, maximum: 100, default: 10 } },
  [],
);

/** Public API: a local Neuroscope — corpora, the neuron index (max-activating examples), neuron pages. */
export { type DocumentSource, type OpenCorpusOptions, openCorpus } from "../corpus/sources.ts";
export { type BuildIndexOptions, type BuildIndexResult, buildIndex } from "./build-index.ts";
export { type FeaturePageData, featureActivations, featurePageData } from "./feature-page.ts";
export { featureReport, writeFeatureReport } from "./feature-report.ts";
export type { IndexManifest } from "./index-store.ts";
export { mergeIndexes } from "./merge-indexes.ts";
export { NeuronIndex, type NeuronSummary, type QuantileGroup } from "./neuron-index.ts";
export {
  type NeuronExample,
  type NeuronPageData,
  type NeuronPageOptions,
  neuronActivations,
  neuronLogitEffect,
  neuronPageData,
  type TokenEffect,
} from "./neuron-page.ts";
export { writeNeuronReport } from "./neuron-report.ts";
export { formatNeuronPage } from "./neuron-text.ts";
export { mlpUnitSource, saeUnitSource, type UnitSource } from "./unit-source.ts";

/** Figures for circuitscope: charts (Vega-Lite), attention and token views, HTML reports, SVG/PNG export. */

export { type BarChartOptions, barChart } from "./charts/bar-chart.ts";
export {
  type HeatmapOptions,
  type HeatmapPanelsOptions,
  heatmap,
  heatmapPanels,
  sharedHeatmapDomain,
} from "./charts/heatmap.ts";
export { type LineChartOptions, type LineSeries, lineChart } from "./charts/line-chart.ts";
export { type ScatterChartOptions, type ScatterPoint, scatterChart } from "./charts/scatter-chart.ts";
export { figureToSvg } from "./export/figure-to-svg.ts";
export { svgToPng } from "./export/svg-to-png.ts";
export { writeFigureFiles, writeFileAtomic } from "./export/write-files.ts";
export type {
  AttentionData,
  AttentionFigure,
  ChartFigure,
  ChartKind,
  Figure,
  TokenFigure,
  TokenViewData,
} from "./figure.ts";
export {
  GRAPH_PAGE_CSP,
  type GraphPageOptions,
  graphPageCsp,
  graphPageInputs,
  renderGraphPage,
  writeGraphPage,
} from "./graph-page.ts";
export { browserBundleJs } from "./html/browser-bundle.ts";
export {
  jsonForScript,
  type ReportFigure,
  type ReportInputs,
  type ReportOptions,
  type ReportSection,
  type ReportTable,
  renderHtmlReport,
  writeHtmlReport,
} from "./html/report.ts";
export {
  SHARED_VIZ_PREFIX,
  type SharedVizScript,
  sharedVizFileName,
  writeSharedVizScript,
} from "./html/viz-script.ts";
export {
  type AttributionFigures,
  type AttributionInputs,
  attributionFigures,
} from "./presets/attribution-figures.ts";
export {
  comparisonFigures,
  FRACTION_RESTORED,
  type PatchInputs,
  patchFigures,
} from "./presets/patch-figures.ts";
export {
  displayToken,
  distinctLabels,
  formatToken,
  pairPositionLabels,
  tokenPositionLabels,
} from "./token-labels.ts";
export { attentionGridSvg, attentionSvg } from "./views/attention-svg.ts";
export { tokenViewSvg } from "./views/token-svg.ts";
export { attentionView, tokenView } from "./views/view-figures.ts";

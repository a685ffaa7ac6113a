import { writeFileAtomic } from "../export/write-files.ts";
import type { Figure } from "../figure.ts";
import { escapeXml as escapeHtml } from "../views/svg-parts.ts";
import { type SharedVizScript, vizScriptTags } from "./viz-script.ts";

export interface ReportFigure {
  figure: Figure;
  caption?: string;
}

/** A plain table (e.g. the largest disagreements): a header row and rows of cell text. */
export interface ReportTable {
  caption?: string;
  columns: string[];
  rows: string[][];
}

/** Key/value list of the inputs a page was made from (prompts, tokens, metric, n). */
export type ReportInputs = { label: string; value: string | string[] }[];

export interface ReportSection {
  heading: string;
  /** Plain text; blank lines separate paragraphs. */
  text?: string;
  /** Shown before the text: what the section's figures were computed from. */
  inputs?: ReportInputs;
  figures: ReportFigure[];
  tables?: ReportTable[];
}

export interface ReportOptions {
  title: string;
  /** Shown under the title, e.g. the command and model that produced the report. */
  subtitle?: string;
  sections: ReportSection[];
  /** One of a set of pages in a directory: load the bundle from their shared file (default: inline it). */
  vizScript?: SharedVizScript;
}

/**
 * JSON that is safe inside `<script type="application/json">`: `<` is escaped so neither `</script>` nor
 * `<!--` can end or confuse the element, and U+2028/2029 are escaped for old JS parsers.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

export const PAGE_CSS = `
body { font-family: 'DejaVu Sans', 'Liberation Sans', Helvetica, Arial, sans-serif; color: #1a1a1a; max-width: 1100px; margin: 24px auto; padding: 0 20px; line-height: 1.45; }
h1 { font-size: 24px; margin-bottom: 2px; } .cs-subtitle { color: #555; margin-top: 0; }
h2 { font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
figure.cs-figure { margin: 18px 0 28px; padding: 12px; border: 1px solid #e4e4e4; border-radius: 6px; }
figure.cs-figure figcaption { color: #444; font-size: 13px; margin-top: 8px; }
.cs-figure-body { overflow-x: auto; }
dl.cs-inputs { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; font-size: 14px; margin: 10px 0 16px; }
dl.cs-inputs dt { color: #555; } dl.cs-inputs dd { margin: 0; }
dl.cs-inputs dd ol { margin: 0; padding-left: 1.4em; } .cs-tok-text { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; background: #f1f1f1; padding: 0 3px; border-radius: 2px; }
table.cs-table { border-collapse: collapse; font-size: 13px; margin: 10px 0 24px; }
table.cs-table th, table.cs-table td { border-bottom: 1px solid #e4e4e4; padding: 3px 10px; text-align: left; }
table.cs-table td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.cs-table caption { text-align: left; color: #444; font-size: 13px; margin-bottom: 4px; }
`;

export function inputsHtml(inputs: ReportInputs): string {
  const dd = (v: string | string[]) =>
    Array.isArray(v)
      ? `<ol start="0">${v.map((x) => `<li>${escapeHtml(x)}</li>`).join("")}</ol>`
      : escapeHtml(v);
  return `<dl class="cs-inputs">${inputs.map((i) => `<dt>${escapeHtml(i.label)}</dt><dd>${dd(i.value)}</dd>`).join("")}</dl>`;
}

function tableHtml(t: ReportTable): string {
  const numeric = (c: string) => /^[-+−]?[\d.]+(e[-+]?\d+)?$/i.test(c.trim());
  const head = `<tr>${t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("")}</tr>`;
  const rows = t.rows
    .map(
      (r) =>
        `<tr>${r.map((c) => `<td${numeric(c) ? ' class="num"' : ""}>${escapeHtml(c)}</td>`).join("")}</tr>`,
    )
    .join("");
  return `<table class="cs-table">${t.caption ? `<caption>${escapeHtml(t.caption)}</caption>` : ""}<thead>${head}</thead><tbody>${rows}</tbody></table>`;
}

function paragraphs(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map((p) => `<p>${escapeHtml(p.trim())}</p>`)
    .join("\n");
}

/**
 * One self-contained HTML file (no network): figure data as JSON, the viz bundle inlined (or, one of a set
 * of pages, loaded from their shared file: `vizScript`), figures drawn on load with tooltips and hover
 * interaction.
 */
export function renderHtmlReport(opts: ReportOptions): string {
  const figures: Figure[] = [];
  const body = opts.sections
    .map((section) => {
      const figs = section.figures
        .map(({ figure, caption }) => {
          const k = figures.push(figure) - 1;
          const cap = caption ? `<figcaption>${escapeHtml(caption)}</figcaption>` : "";
          return `<figure class="cs-figure" id="figure-${k + 1}"><div class="cs-figure-body" data-cs-figure="${k}"></div>${cap}</figure>`;
        })
        .join("\n");
      const inputs = section.inputs ? inputsHtml(section.inputs) : "";
      const tables = (section.tables ?? []).map(tableHtml).join("\n");
      return `<section><h2>${escapeHtml(section.heading)}</h2>\n${inputs}${section.text ? paragraphs(section.text) : ""}\n${figs}\n${tables}</section>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(opts.title)}</title>
<style>${PAGE_CSS}</style>
</head>
<body>
<h1>${escapeHtml(opts.title)}</h1>
${opts.subtitle ? `<p class="cs-subtitle">${escapeHtml(opts.subtitle)}</p>` : ""}
${body}
<script type="application/json" id="cs-figures">${jsonForScript(figures)}</script>
${vizScriptTags("circuitscopeViz.mountAll(document);", opts.vizScript)}
</body>
</html>
`;
}

/** Renders the report and writes it atomically (temp file, then rename). */
export function writeHtmlReport(path: string, opts: ReportOptions): void {
  writeFileAtomic(path, renderHtmlReport(opts));
}

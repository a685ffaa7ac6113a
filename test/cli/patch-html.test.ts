import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCli } from "../helpers/cli.ts";
import { fixturePatchArgs } from "../helpers/reference.ts";

const tmp = mkdtempSync(join(tmpdir(), "cs-patch-html-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface HeatmapFigure {
  kind: string;
  title: string;
  data: { rowLabels: string[]; colLabels: string[]; values: number[][] };
}

/** The figures a report embeds (`<script type="application/json" id="cs-figures">`). */
function embeddedFigures(html: string): HeatmapFigure[] {
  const m = /<script type="application\/json" id="cs-figures">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, "the report embeds its figure data");
  return JSON.parse(m[1]);
}

test("patch --html draws the layer x position map with token labels and exactly the --json values", async () => {
  const html = join(tmp, "patch.html");
  const res = await runCli([...fixturePatchArgs(), "--target", "resid_pre", "--json", "--html", html]);
  assert.equal(res.code, 0, res.stderr);
  const values = JSON.parse(res.stdout).values as number[][];
  const [fig] = embeddedFigures(readFileSync(html, "utf8")).filter((f) => f.kind === "heatmap");
  assert.ok(fig, "a heatmap figure");
  // Token labels on the position axis, one row per layer, and the very values of the JSON result.
  const { rowLabels, colLabels } = fig.data;
  assert.equal(colLabels.length, values[0].length);
  assert.ok(colLabels[2].includes("'re"), colLabels.join(" | "));
  assert.ok(colLabels[colLabels.length - 1].includes("they"), colLabels.join(" | "));
  assert.deepEqual(
    rowLabels,
    values.map((_, l) => `L${l}`),
  );
  for (const [l, row] of fig.data.values.entries()) {
    for (const [p, v] of row.entries()) assert.ok(Math.abs(v - values[l][p]) < 1e-9, `L${l} pos ${p}`);
  }
});
